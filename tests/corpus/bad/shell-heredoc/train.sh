cat <<EOF > cfg
accelerate launch flux_train_network.py --seed 1
EOF
accelerate launch flux_train_network.py --network_dim 4
