"""Frozen encoders, tile-feature extraction and the on-disk feature cache."""
