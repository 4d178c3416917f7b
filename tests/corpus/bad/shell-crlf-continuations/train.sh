accelerate launch flux_train_network.py \
  --seed 1 \
  --network_dim 4
