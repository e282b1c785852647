"""Whole-slide pipeline: tissue detection and tile grids at a physical resolution."""
