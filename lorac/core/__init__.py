"""What every stage shares: the finding type, exit codes and the user-facing error;
credential detection and masking; atomic writes."""
