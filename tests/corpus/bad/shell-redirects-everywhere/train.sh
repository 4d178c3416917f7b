accelerate launch flux_train_network.py --seed 1 >log 2>&1 <in <<<here 3>&- --network_dim 4
