accelerate launch flux_train_network.py --train_data_dir ~/data/* --output_dir ~nobody/out --seed {1..3}
