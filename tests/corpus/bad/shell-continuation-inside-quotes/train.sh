accelerate launch flux_train_network.py --output_name "a\
b" --seed 1
