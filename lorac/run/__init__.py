"""``lorac run``: launching a trainer, its process, progress, GPU telemetry and the run manifest."""
