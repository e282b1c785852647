"""How many torch threads a piece of work gets.

Small models (the fusion head, MiniLM on a few sentences) are fastest on one thread: on a 2-core
machine that is busy elsewhere, two spinning OpenMP threads made a training epoch 60x slower (1.9 s vs
0.03 s). The tile encoder in the dashboard gets all cores but one (:func:`encoder_threads`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from mrrp.settings import load_settings

__all__ = ["encoder_threads", "torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads, then restore the previous setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encoder_threads() -> int:
    """Torch threads for encoding a patient's slide and images in the dashboard: ``$MRRP_TORCH_THREADS``, else
    all cores but one.

    The dashboard shares the machine with its own web server and the clinician's browser. Measured on the
    2-core development machine with other work running (benchmarks/results.md, Dashboard): 200 tiles took
    3.6 s on one thread and 11.4-12.9 s on two, because OpenMP threads that spin on a core someone else holds
    stall each other. Leaving one core free keeps the encoder off that cliff.
    """
    configured = load_settings().torch_threads
    if configured is not None:
        return configured
    return max(1, (os.cpu_count() or 1) - 1)
