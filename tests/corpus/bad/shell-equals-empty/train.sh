accelerate launch flux_train_network.py --seed= --output_name= --network_dim=
