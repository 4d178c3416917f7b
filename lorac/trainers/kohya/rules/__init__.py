"""Rules that read what lorac knows about sd-scripts: options (LRC601–607), compatibility
(LRC610–699), memory (LRC4xx)."""
