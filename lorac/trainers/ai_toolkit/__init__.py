"""ostris/ai-toolkit: its emitter and its job-YAML importer."""
