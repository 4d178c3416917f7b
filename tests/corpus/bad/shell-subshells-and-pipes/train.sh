( cd /tmp && accelerate launch flux_train_network.py --seed 1 | tee log ) 2>&1 &
wait
