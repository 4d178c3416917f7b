accelerate launch flux_train_network.py --dataset_config ds.toml
