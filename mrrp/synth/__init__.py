"""Synthetic reference data with known ground truth (slides, cohorts)."""
