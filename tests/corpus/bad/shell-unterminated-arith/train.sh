accelerate launch flux_train_network.py --seed $((1+
