"""musubi-tuner (kohya-ss/musubi-tuner): video and image DiT LoRAs, three steps a run."""
