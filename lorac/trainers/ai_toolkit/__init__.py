"""ostris/ai-toolkit: its emitter."""
