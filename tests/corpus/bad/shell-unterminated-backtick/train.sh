accelerate launch flux_train_network.py --output_name `abc
