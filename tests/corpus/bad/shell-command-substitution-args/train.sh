accelerate launch flux_train_network.py --seed $(date +%s) --output_name `hostname` --network_dim $(( 4 * 4 ))
