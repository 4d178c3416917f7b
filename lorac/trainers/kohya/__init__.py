"""kohya sd-scripts: its emitter, importers (config TOML, kohya_ss GUI preset, training
script), rules, network-module generator, memory model and synthetic weights."""
