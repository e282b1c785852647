"""Survival modelling: the Cox partial likelihood, baseline hazards, risk groups and ensemble uncertainty."""
