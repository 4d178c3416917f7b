python -c 'print(1)'
python
accelerate launch
