SEED='unterminated
export
=5
1A=2
SEED=$(cat /etc/passwd)
