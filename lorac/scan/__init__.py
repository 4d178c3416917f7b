"""Readers of the rest of a repository: shell scripts and env files, Markdown, datasets."""
