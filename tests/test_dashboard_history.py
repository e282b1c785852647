"""Case history: what is stored (and what is not), pseudonymity, concurrent sessions, a damaged file."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from mrrp.dashboard.history import CaseHistory, HistoryError, history_path


def _prediction(pid: str = "MRN-123456", group: str = "high", version: str = "mrrp-demo@1ada8474e016") -> dict:
    return {
        "patient_id": pid,
        "risk_group": group,
        "log_risk": 1.2,
        "model_version": version,
        "recurrence": {"60": 0.4},
    }


EXPLANATION = {
    "present": {"slide": True, "ultrasound": True, "path_report": True, "clinical": True},
    "shapley": {"slide": 0.5},
    "us_report": [{"sentence": "Irregular hypoechoic mass of 23 mm.", "attribution": 0.12}],
    "path_report": [{"sentence": "Grade 3 invasive carcinoma.", "attribution": 0.3}],
}


def test_history_path_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MRRP_HISTORY_DB", str(tmp_path / "h.sqlite"))
    assert history_path() == tmp_path / "h.sqlite"
    monkeypatch.delenv("MRRP_HISTORY_DB")
    monkeypatch.setenv("MRRP_CACHE_DIR", str(tmp_path / "cache"))
    assert history_path() == tmp_path / "cache" / "history.sqlite"


def test_round_trip_is_pseudonymous_and_keeps_no_free_text(tmp_path: Path) -> None:
    h = CaseHistory(tmp_path / "h.sqlite")
    assert h.list_cases() == [] and h.get("C-0000000000") is None  # no file yet: empty, not an error
    hashes = {"slide": "a" * 64, "clinical": "b" * 64}
    case_id = h.record(_prediction(), hashes, inputs={"us_report": "free text"}, explanation=EXPLANATION)
    assert case_id.startswith("C-") and len(case_id) == 12
    rec = h.get(case_id)
    assert rec is not None
    assert rec.prediction["patient_id"] == case_id  # the hospital's identifier is not kept
    assert rec.prediction["risk_group"] == "high" and rec.model_version == "mrrp-demo@1ada8474e016"
    assert rec.input_hashes == hashes
    assert rec.inputs is None  # not opted in
    assert [s["sentence"] for s in rec.explanation["us_report"] + rec.explanation["path_report"]] == [None, None]
    assert rec.explanation["path_report"][0]["attribution"] == 0.3
    raw = (tmp_path / "h.sqlite").read_bytes()
    assert b"MRN-123456" not in raw and b"hypoechoic" not in raw and b"free text" not in raw
    assert rec.created_at.endswith("+00:00")
    assert "high risk" in rec.label


def test_opt_in_stores_inputs_and_same_case_is_one_row(tmp_path: Path) -> None:
    h = CaseHistory(tmp_path / "h.sqlite")
    hashes = {"slide": "c" * 64}
    first = h.record(_prediction("DEMO-02"), hashes, explanation=EXPLANATION)
    again = h.record(
        _prediction("DEMO-02"),
        hashes,
        inputs={"us_report": "Irregular mass."},
        explanation=EXPLANATION,
        store_inputs=True,
    )
    assert again == first and len(h.list_cases()) == 1
    rec = h.get(first)
    assert rec.prediction["patient_id"] == "DEMO-02"  # synthetic demo ids are kept
    assert rec.inputs == {"us_report": "Irregular mass."}
    assert rec.explanation["us_report"][0]["sentence"] == "Irregular hypoechoic mass of 23 mm."
    # another model version is another case
    other = h.record(_prediction("DEMO-02", version="site@0123456789ab"), hashes)
    assert other != first
    assert [r.case_id for r in h.list_cases()] == [other, first]
    assert h.delete(other) and h.get(other) is None


def test_concurrent_sessions_all_land(tmp_path: Path) -> None:
    """Eight sessions saving at once (threads, as a Streamlit server runs them): every case is stored."""
    path = tmp_path / "h.sqlite"
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def session(k: int) -> None:
        try:
            h = CaseHistory(path)
            for j in range(10):
                cid = h.record(_prediction(f"P{k}-{j}"), {"clinical": f"{k:02d}{j:02d}" * 16})
                h.list_cases(limit=5)
                with lock:
                    ids.append(cid)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(ids)) == 80
    assert {r.case_id for r in CaseHistory(path).list_cases(limit=100)} == set(ids)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("content", [b"this is not a database" * 50, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_damaged_file_gives_one_clear_message(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "h.sqlite"
    path.write_bytes(content)
    h = CaseHistory(path)
    for call in (h.list_cases, lambda: h.get("C-0000000000"), lambda: h.record(_prediction(), {"x": "y"})):
        with pytest.raises(HistoryError) as err:
            call()
        message = str(err.value)
        assert "damaged" in message and str(path) in message and "move the file aside" in message
        assert "Traceback" not in message and "sqlite3" not in message and "DatabaseError" not in message


def test_foreign_database_is_reported_not_overwritten(tmp_path: Path) -> None:
    """A valid SQLite file that is some other application's database: listing says damaged; rows are not lost."""
    path = tmp_path / "h.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE cases (x TEXT)")
        conn.execute("INSERT INTO cases VALUES ('keep me')")
    with pytest.raises(HistoryError, match="damaged"):
        CaseHistory(path).list_cases()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT x FROM cases").fetchall() == [("keep me",)]


def test_stored_prediction_is_plain_json(tmp_path: Path) -> None:
    h = CaseHistory(tmp_path / "h.sqlite")
    cid = h.record(_prediction(), {"slide": "d" * 64})
    with sqlite3.connect(tmp_path / "h.sqlite") as conn:
        row = conn.execute("SELECT prediction, inputs FROM cases WHERE case_id = ?", (cid,)).fetchone()
    assert json.loads(row[0])["recurrence"] == {"60": 0.4} and row[1] is None
