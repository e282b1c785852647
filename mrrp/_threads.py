"""How many torch threads a piece of work gets, and one process-wide turn at torch.

Small models (the fusion head, MiniLM on a few sentences) are fastest on one thread: on a 2-core
machine that is busy elsewhere, two spinning OpenMP threads made a training epoch 60x slower (1.9 s vs
0.03 s). The tile encoder in the dashboard gets all cores but one (:func:`encoder_threads`).

Streamlit runs every browser session's script in its own thread of one process, and the heavy torch
objects are shared by all of them: the encoders and the model bundle are loaded once per process. Run by
several sessions at once they mixed: the Grad-CAM hooks on the one eager ultrasound encoder caught another
session's activations (eight sessions at once: five failed with "stack expects each tensor to be equal
size", "zip() argument 2 is longer than argument 1" and the like), and the thread count reaches
process-wide libraries (MKL keeps one per process). So every :func:`torch_threads` block is one turn at
torch (:func:`torch_turn`, a process-wide re-entrant lock): a shared module never serves two sessions at
once and no thread count changes under another session's work. A session that has to wait is told so
(``on_wait``) and queued, never failed.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator

from mrrp.settings import load_settings

__all__ = ["BUSY_QUEUED", "encoder_threads", "torch_threads", "torch_turn"]

BUSY_QUEUED = "The computer is busy with another patient's analysis: yours is queued and starts next…"

# Re-entrant: a turn holds it across nested torch_threads blocks (the text encoder inside the intake).
_TORCH_TURN = threading.RLock()


def _fresh_turn_in_child() -> None:
    # A worker process forked (mrrp._parallel) while another thread held the turn would inherit it held,
    # by a thread that does not exist there, and wait forever: the child starts with its own, free.
    global _TORCH_TURN
    _TORCH_TURN = threading.RLock()


os.register_at_fork(after_in_child=_fresh_turn_in_child)


@contextlib.contextmanager
def torch_turn(on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold this process's one turn at torch for the block; ``on_wait()`` is called once if another thread
    holds it (so a page can say "busy, queued"), then the block waits its turn."""
    if not _TORCH_TURN.acquire(blocking=False):
        if on_wait is not None:
            on_wait()
        _TORCH_TURN.acquire()
    try:
        yield
    finally:
        _TORCH_TURN.release()


@contextlib.contextmanager
def torch_threads(n: int, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads, in this process's turn at torch (:func:`torch_turn`),
    then restore the previous setting."""
    import torch

    with torch_turn(on_wait):
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
