"""Rules that read what lorac knows about ai-toolkit (LRC680–699)."""
