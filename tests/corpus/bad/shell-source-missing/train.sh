source /nonexistent/env.sh
. ./nope.sh
accelerate launch flux_train_network.py --seed 1
