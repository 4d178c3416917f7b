"""kohya sd-scripts: its emitter, rules, inventory and network-module generators, memory
model and synthetic weights."""
