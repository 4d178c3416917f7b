"""Rules LRC650–LRC679: musubi-tuner's start-up checks and silent traps, for profiles of a family
musubi trains (``backends/musubi/families.toml``)."""
