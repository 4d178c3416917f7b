"""Reading a configuration: TOML with positions, profile resolution, settings, the
trainers' option inventories, the generated JSON Schema and its validator."""
