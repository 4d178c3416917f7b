train() {
  accelerate launch flux_train_network.py --seed $1
}
for s in 1 2 3; do
  train $s
done
case $X in
  a) accelerate launch flux_train_network.py --seed 9;;
esac
