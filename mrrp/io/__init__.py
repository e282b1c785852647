"""Readers for every input modality. Validation happens here, so downstream code can trust it."""
