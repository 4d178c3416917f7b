accelerate launch flux_train_network.py --frobnicate --seed=1 --=x -- --network_dim 4 ---x
