"""Explanations and their rendering (slide heatmaps).

``explain_case`` is imported lazily (it needs torch and captum) so that ``import mrrp.explain.heatmap``
stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["explain_case"]


def __getattr__(name: str) -> Any:
    if name == "explain_case":
        from mrrp.explain.explain import explain_case

        return explain_case
    raise AttributeError(f"module 'mrrp.explain' has no attribute {name!r}")
