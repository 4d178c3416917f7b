accelerate launch flux_train_network.py --config_file train.sh
