A=$B
B=$A
accelerate launch flux_train_network.py --output_name $A
