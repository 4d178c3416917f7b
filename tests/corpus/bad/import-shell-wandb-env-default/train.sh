accelerate launch flux_train_network.py --network_module networks.lora_flux --network_dim 4 \
  --wandb_api_key $WANDB_API_KEY --log_tracker_config "cfg-$WANDB_API_KEY" --output_dir out
