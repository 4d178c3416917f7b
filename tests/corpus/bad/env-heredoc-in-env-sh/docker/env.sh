cat <<EOF
A=1
EOF
B=2
