"""Image preprocessing and training-label generation (crops, anchor assignment)."""
