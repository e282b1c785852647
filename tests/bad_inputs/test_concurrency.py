"""Several people using one dashboard at once (issue 13, under load).

Streamlit runs every browser session's script in its own thread of one server process. Eight analyses at
once failed five times with the generic apology: the torch objects are shared by every session, and the one
eager ultrasound encoder carried Grad-CAM hooks that caught another session's activations ("stack expects
each tensor to be equal size", "The differentiated Tensor ... not used in the graph", "zip() argument 2 is
longer than argument 1"). Every torch block is now one turn at torch (``mrrp._threads.torch_turn``); these
tests run sessions as threads, as the server does (without the turn the four-session test fails with the
apology).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mrrp._threads import BUSY_QUEUED, torch_threads, torch_turn
from mrrp.dashboard.intake import build_case, demo_inputs
from mrrp.dashboard.models import BUNDLED_MODEL_DIR, load_model
from mrrp.dashboard.review import AnalysisFailure, Review, analyse, review_case

CACHE = Path(os.environ["MRRP_CACHE_DIR"])  # the suite's shared cache (conftest): the demo files
SESSIONS = 4
PATIENTS = ("DEMO-01", "DEMO-02", "DEMO-03", "DEMO-05")  # three with ultrasound images (Grad-CAM), one slide-only
JOIN_TIMEOUT_S = 600  # generous: a loaded 2-core box; a hang fails instead of blocking the suite


def _run_at_once(fn, items: list) -> tuple[dict[int, object], dict[int, BaseException]]:
    """fn(item) for every item, each in its own thread, all released at the same moment."""
    results: dict[int, object] = {}
    errors: dict[int, BaseException] = {}
    start = threading.Barrier(len(items))

    def work(i: int, item) -> None:
        try:
            start.wait()
            results[i] = fn(item)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors[i] = exc

    threads = [threading.Thread(target=work, args=(i, item), daemon=True) for i, item in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads), "an analysis hung (a lock taken in two orders?)"
    return results, errors


def test_torch_blocks_of_several_threads_take_turns() -> None:
    import torch

    before = torch.get_num_threads()
    inside: list[int] = []  # how many threads are in a torch block, sampled by each one while in it
    active = [0]
    guard = threading.Lock()

    def body(n: int) -> None:
        for _ in range(20):
            with torch_threads(n):
                with guard:
                    active[0] += 1
                time.sleep(0.001)  # a second thread would enter here without the turn
                with guard:
                    inside.append(active[0])
                    active[0] -= 1
                assert torch.get_num_threads() == n

    _, errors = _run_at_once(body, [1, 2, 3, 1, 2, 3])
    assert not errors, errors
    assert len(inside) == 120 and max(inside) == 1, max(inside)
    assert torch.get_num_threads() == before


def test_a_nested_block_in_the_same_thread_does_not_wait_on_itself() -> None:
    import torch

    with torch_threads(2), torch_threads(1):
        assert torch.get_num_threads() == 1
    waited: list[bool] = []
    with torch_turn(on_wait=lambda: waited.append(True)), torch_turn(on_wait=lambda: waited.append(True)):
        pass
    assert not waited


def test_a_worker_forked_while_another_thread_holds_the_turn_gets_a_free_one() -> None:
    import multiprocessing

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with torch_turn():
            held.set()
            release.wait(JOIN_TIMEOUT_S)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(JOIN_TIMEOUT_S)
    try:
        child = multiprocessing.get_context("fork").Process(target=_one_turn)
        child.start()
        child.join(120)
        alive = child.is_alive()
        if alive:
            child.kill()
        assert not alive and child.exitcode == 0, "the forked worker waited on a turn nobody can give back"
    finally:
        release.set()
        holder.join(JOIN_TIMEOUT_S)


def _one_turn() -> None:
    with torch_turn():
        pass


@pytest.fixture(scope="module")
def bundle():
    return load_model(str(BUNDLED_MODEL_DIR))


@pytest.fixture(scope="module")
def sequential(bundle) -> dict[str, Review]:
    """Each patient analysed alone, one after another: the reference every concurrent session must match."""
    return {pid: review_case(bundle, build_case(demo_inputs(CACHE, pid), cache_dir=CACHE)) for pid in PATIENTS}


def _same_result(got: Review, want: Review) -> None:
    assert got.prediction.patient_id == want.prediction.patient_id
    assert got.prediction.log_risk == pytest.approx(want.prediction.log_risk, abs=1e-6)
    assert got.prediction.risk_group == want.prediction.risk_group
    for m, phi in want.explanation.shapley.items():
        assert got.explanation.shapley[m] == pytest.approx(phi, abs=1e-6), m
    assert len(got.explanation.us_overlays) == len(want.explanation.us_overlays)
    for a, b in zip(got.explanation.us_overlays, want.explanation.us_overlays, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)  # Grad-CAM saw this patient's images, not another's


@pytest.mark.slow
def test_sessions_analysing_at_once_each_get_their_own_result(bundle, sequential, tmp_path: Path) -> None:
    """Four sessions at once on four patients, with a fresh feature cache (tiles, ultrasound and report
    tokens encoded and written by all four together): no failure, each her own patient and the result of
    the sequential run."""
    inputs = [demo_inputs(CACHE, pid) for pid in PATIENTS[:SESSIONS]]
    progress_texts: dict[str, list[str]] = {pid: [] for pid in PATIENTS}

    def one_session(case_inputs):
        texts = progress_texts[case_inputs.patient_id]
        return analyse(
            bundle, case_inputs, cache_dir=tmp_path / "cache", progress=lambda f, t, texts=texts: texts.append(t)
        )

    results, errors = _run_at_once(one_session, inputs)
    assert not errors, errors
    assert len(results) == SESSIONS
    for i, outcome in results.items():
        pid = PATIENTS[i]
        assert not isinstance(outcome, AnalysisFailure), (pid, outcome)
        _same_result(outcome, sequential[pid])
    # all four were released at once: every session but the first had to wait, and was told so
    assert sum(BUSY_QUEUED in texts for texts in progress_texts.values()) >= 1


@pytest.mark.slow
def test_a_session_that_waits_is_told_busy_queued_and_then_analysed(bundle, sequential) -> None:
    pid = PATIENTS[1]
    texts: list[str] = []
    queued = threading.Event()
    done: dict[str, object] = {}

    def progress(fraction: float, text: str) -> None:
        texts.append(text)
        if text == BUSY_QUEUED:
            queued.set()

    def session() -> None:
        done["outcome"] = analyse(bundle, demo_inputs(CACHE, pid), cache_dir=CACHE, progress=progress)

    with torch_turn():  # another session's analysis holds the machine
        worker = threading.Thread(target=session, daemon=True)
        worker.start()
        assert queued.wait(JOIN_TIMEOUT_S), texts
        assert texts == [BUSY_QUEUED]  # told it is queued, nothing else done yet, no failure
    worker.join(JOIN_TIMEOUT_S)
    assert not worker.is_alive()
    outcome = done["outcome"]
    assert not isinstance(outcome, AnalysisFailure), outcome
    _same_result(outcome, sequential[pid])
    assert texts[-1] == "Done."


def test_sessions_saving_at_once_each_get_their_case_in_the_history(sequential, tmp_path: Path) -> None:
    from mrrp.dashboard.history import CaseHistory

    db = tmp_path / "history.sqlite"
    reviews = [sequential[pid] for pid in PATIENTS] * 2  # eight sessions; each patient saved twice

    def save(review: Review) -> str:
        return CaseHistory(db).record(review.prediction, review.input_hashes, explanation=review.explanation.to_dict())

    results, errors = _run_at_once(save, reviews)
    assert not errors, errors
    ids = {PATIENTS[i % len(PATIENTS)]: set() for i in range(len(reviews))}
    for i, case_id in results.items():
        ids[PATIENTS[i % len(PATIENTS)]].add(case_id)
    assert all(len(v) == 1 for v in ids.values()), ids  # the same inputs twice: one row, one id
    stored = CaseHistory(db).list_cases()
    assert len(stored) == len(PATIENTS)
    by_id = {c.case_id: c for c in stored}
    for pid, (case_id,) in ids.items():
        assert by_id[case_id].prediction["log_risk"] == pytest.approx(sequential[pid].prediction.log_risk)
