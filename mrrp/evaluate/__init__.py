"""Offline studies of a trained bundle: how far its explanations can be trusted, written to docs/.

These jobs may import everything below them (``mrrp.explain``, ``mrrp.model``, ``mrrp.features``,
``mrrp.train``); nothing on the runtime path (``mrrp.explain``, ``mrrp.model``, ``mrrp.dashboard``, the
pages) imports ``mrrp.evaluate``. The dashboard reads the results from the JSON files in docs/ instead.

- :mod:`mrrp.evaluate.faithfulness`: deletion, localisation, modality ranking and model randomisation
  of the explanations on a synthetic cohort (``python -m mrrp.evaluate.faithfulness``).
"""
