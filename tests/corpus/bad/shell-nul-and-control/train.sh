accelerate launch flux_train_network.py --output_name abc --seed 1
