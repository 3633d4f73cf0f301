"""Datasets: the RetinaFace ``label.txt`` format, loaders and synthetic data."""
