ARGS=(--seed 1 --network_dim 4 "--output_name" 'x y')
accelerate launch flux_train_network.py "${ARGS[@]}" ${ARGS[*]} "$@"
