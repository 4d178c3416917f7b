accelerate launch flux_train_network.py --seed 1
accelerate launch sdxl_train_network.py --seed 2
