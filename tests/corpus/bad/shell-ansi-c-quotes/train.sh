accelerate launch flux_train_network.py --output_name $'a\nb\x00c' --seed $"1"
