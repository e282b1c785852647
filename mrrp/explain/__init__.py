"""Explanations and their rendering (slide heatmaps)."""
