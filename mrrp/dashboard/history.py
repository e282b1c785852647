"""The case history: one SQLite row per reviewed case, so a tumor board can reopen it.

What is stored (``cases`` table): a pseudonymous case id, the time (ISO 8601 UTC), the model version,
a sha256 per input, the prediction and the numeric explanation. Images, report text and the clinical
record are stored only when the user opts in (``store_inputs=True``); without it, report sentences are
dropped from the stored explanation too, so no free text reaches the file. A patient identifier from a
manifest is replaced by the case id (demo patients keep their synthetic DEMO-xx ids).

Several dashboard sessions (threads of one server, or several servers on one disk) write at once:
every operation opens its own connection with a busy timeout, and the database runs in WAL mode so
readers never block the writer. A damaged file gives one :class:`HistoryError` whose message says
what to do; it never costs the user the prediction on screen. One unreadable row costs only itself: a
listing (:meth:`CaseHistory.listing`) skips it and names it, and every other case stays visible. A file
that cannot be written is opened read-only: past cases are listed, and saving says why it cannot.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mrrp._hashing import sha256_text
from mrrp.errors import InputError
from mrrp.settings import load_settings

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 15.0
DEMO_PREFIX = "DEMO-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    case_id       TEXT PRIMARY KEY,
    created_at    TEXT NOT NULL,
    model_version TEXT NOT NULL,
    content_key   TEXT NOT NULL,
    input_hashes  TEXT NOT NULL,
    prediction    TEXT NOT NULL,
    explanation   TEXT,
    inputs        TEXT
);
CREATE INDEX IF NOT EXISTS cases_created ON cases (created_at DESC);
CREATE UNIQUE INDEX IF NOT EXISTS cases_content ON cases (content_key);
"""


class HistoryError(InputError):
    """The case history file cannot be used (damaged, not a database, or not writable)."""


class HistoryReadOnlyError(HistoryError):
    """The case history file (or its folder) cannot be written: cases are listed but not saved."""


def history_path() -> Path:
    """``$MRRP_HISTORY_DB``, else ``<MRRP_CACHE_DIR>/history.sqlite`` (mrrp.settings)."""
    return load_settings().history_db


@dataclass
class CaseRecord:
    case_id: str
    created_at: str  # ISO 8601, UTC
    model_version: str
    input_hashes: dict
    prediction: dict  # Prediction.to_dict(), patient id pseudonymised
    explanation: dict | None
    inputs: dict | None  # only when the user opted in

    @property
    def label(self) -> str:
        """What a list shows: case id, risk group and time, e.g. 'C-3F9A… · high · 2026-05-01 10:02'."""
        group = self.prediction.get("risk_group", "?")
        pid = self.prediction.get("patient_id", "")
        who = f"{pid} ({self.case_id})" if pid and pid != self.case_id else self.case_id
        return f"{who} · {group} risk · {self.created_at[:16].replace('T', ' ')} UTC"


@dataclass(frozen=True)
class HistoryListing:
    """The most recent cases, and what could not be shown: rows that cannot be read are skipped, not fatal."""

    cases: list[CaseRecord]
    skipped: list[str]  # case ids (or "row N" where the id itself is unreadable) of rows left out
    read_only: bool
    path: Path

    @property
    def notice(self) -> str | None:
        """One or two sentences for the screen about skipped rows and a read-only file; None when all is well."""
        parts = []
        if self.skipped:
            n = len(self.skipped)
            shown = ", ".join(self.skipped[:5]) + (f" and {n - 5} more" if n > 5 else "")
            parts.append(
                f"{n} saved case{'s' if n > 1 else ''} could not be read and {'are' if n > 1 else 'is'} not shown "
                f"({shown}); every other case is listed."
            )
        if self.read_only:
            parts.append(
                f"The case history file {self.path} is read-only: past cases are listed, but new cases cannot be saved."
            )
        return " ".join(parts) or None


def content_key(input_hashes: dict[str, str], model_version: str) -> str:
    """One key per (inputs, model): the same case reviewed twice with the same model is one row."""
    payload = json.dumps({"inputs": input_hashes, "model": model_version}, sort_keys=True)
    return sha256_text(payload)


def new_case_id() -> str:
    """A random pseudonymous id (40 bits): carries nothing about the patient or the inputs."""
    return "C-" + secrets.token_hex(5).upper()


def _without_free_text(explanation: dict) -> dict:
    """The explanation with report sentences removed (their attributions kept, without the words)."""
    out = dict(explanation)
    for key in ("us_report", "path_report"):
        items = out.get(key) or []
        out[key] = [{"sentence": None, "attribution": s.get("attribution")} for s in items]
    return out


class CaseHistory:
    """The case history at ``path`` (created on first write)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else history_path()

    # -- connection --------------------------------------------------------------------------

    def _damaged(self, exc: Exception) -> HistoryError:
        return HistoryError(
            f"The case history file {self.path} is damaged or is not a case history database, so past cases "
            "cannot be listed or saved; move the file aside (a new history starts on the next save). "
            "Predictions still work."
        )

    def _read_only_error(self) -> HistoryReadOnlyError:
        return HistoryReadOnlyError(
            f"The case history file {self.path} is read-only, so this case cannot be saved; past cases can still be "
            "listed and opened."
        )

    def is_read_only(self) -> bool:
        """True when the file exists but this process cannot write it, or its folder (SQLite keeps its
        journal files beside the database)."""
        return self.path.exists() and not (
            os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK | os.X_OK)
        )

    def _open(self, write: bool) -> sqlite3.Connection:
        if not write:
            # Read-only first (listing works on a file this process cannot write); a WAL database in a
            # folder it cannot write either has no place for its shared-memory file, so it is then read
            # as an immutable snapshot.
            uri = f"file:{quote(str(self.path.absolute()))}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
                if not self.is_read_only():
                    raise
            return sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)

    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        if write:
            if self.is_read_only():
                raise self._read_only_error()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"The case history folder {self.path.parent} cannot be created.") from exc
        try:
            conn = self._open(write)
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc).lower() or "malformed" in str(exc).lower():
                raise self._damaged(exc) from exc
            raise HistoryError(f"The case history file {self.path} cannot be opened.") from exc
        if not write:
            # Text comes back as bytes and is decoded row by row (_parse_row), so one row with broken
            # text is skipped instead of ending the whole query.
            conn.text_factory = bytes
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if write:
                # WAL: readers never block the writer and a crash mid-write leaves the file intact.
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            yield conn
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if "locked" in message or "busy" in message:
                raise HistoryError(
                    "The case history is busy (another session is saving); try again in a moment."
                ) from exc
            if "readonly" in message or "read-only" in message:
                raise self._read_only_error() from exc
            if "unable to open" in message:
                raise HistoryError(f"The case history file {self.path} cannot be opened.") from exc
            raise self._damaged(exc) from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            raise self._damaged(exc) from exc
        finally:
            conn.close()

    # -- API ---------------------------------------------------------------------------------

    def record(
        self,
        prediction: Any,
        input_hashes: dict[str, str],
        inputs: dict | None = None,
        explanation: dict | None = None,
        store_inputs: bool = False,
    ) -> str:
        """Save a reviewed case; returns its pseudonymous case id.

        ``prediction`` is a :class:`mrrp.model.predict.Prediction` (or its ``to_dict()``). Saving the same
        inputs with the same model again returns the existing id instead of adding a row (and stores the
        inputs then if the user has opted in since).
        """
        pred = dict(prediction.to_dict() if hasattr(prediction, "to_dict") else prediction)
        version = str(pred.get("model_version", ""))
        key = content_key(input_hashes, version)
        case_id = new_case_id()
        if not str(pred.get("patient_id", "")).startswith(DEMO_PREFIX):
            pred["patient_id"] = case_id
        expl = explanation if explanation is None or store_inputs else _without_free_text(explanation)
        row = (
            case_id,
            datetime.now(UTC).isoformat(timespec="seconds"),
            version,
            key,
            json.dumps(input_hashes, sort_keys=True),
            json.dumps(pred),
            None if expl is None else json.dumps(expl),
            json.dumps(inputs) if (store_inputs and inputs is not None) else None,
        )
        with self._connect(write=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                existing = conn.execute("SELECT case_id FROM cases WHERE content_key = ?", (key,)).fetchone()
                if existing is not None:
                    if store_inputs and inputs is not None:  # opting in later adds what was left out
                        conn.execute(
                            "UPDATE cases SET inputs = ?, explanation = ? WHERE case_id = ?",
                            (row[7], row[6], existing[0]),
                        )
                    conn.execute("COMMIT")
                    return str(existing[0])
                conn.execute("INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return case_id

    def listing(self, limit: int = 50) -> HistoryListing:
        """The most recent ``limit`` readable cases, newest first, with the rows that were skipped because
        they cannot be read (an empty listing when no history exists yet)."""
        read_only = self.is_read_only()
        if not self.path.exists():
            return HistoryListing([], [], read_only, self.path)
        cases: list[CaseRecord] = []
        skipped: list[str] = []
        with self._connect(write=False) as conn:
            if self._has_table(conn):
                rows = conn.execute(f"SELECT rowid, {_COLUMNS} FROM cases ORDER BY created_at DESC, rowid DESC")
                for row in rows:
                    record = _parse_row(row[1:])
                    if record is None:
                        skipped.append(_row_name(row))
                    else:
                        cases.append(record)
                        if len(cases) >= int(limit):
                            break
        return HistoryListing(cases, skipped, read_only, self.path)

    def list_cases(self, limit: int = 50) -> list[CaseRecord]:
        """The most recent ``limit`` readable cases, newest first (see :meth:`listing` for what was skipped)."""
        return self.listing(limit).cases

    def get(self, case_id: str) -> CaseRecord | None:
        if not self.path.exists():
            return None
        with self._connect(write=False) as conn:
            if not self._has_table(conn):
                return None
            r = conn.execute(f"SELECT {_COLUMNS} FROM cases WHERE case_id = ?", (case_id,)).fetchone()
        if r is None:
            return None
        record = _parse_row(r)
        if record is None:
            raise HistoryError(
                f"The saved case {case_id} cannot be read (its stored record is damaged); the other cases are not "
                "affected."
            )
        return record

    def delete(self, case_id: str) -> bool:
        """Remove one case (e.g. saved by mistake). True if it existed."""
        if not self.path.exists():
            return False
        with self._connect(write=True) as conn:
            cur = conn.execute("DELETE FROM cases WHERE case_id = ?", (case_id,))
            return cur.rowcount > 0

    @staticmethod
    def _has_table(conn: sqlite3.Connection) -> bool:
        return (
            conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cases'").fetchone() is not None
        )


_COLUMNS = "case_id, created_at, model_version, input_hashes, prediction, explanation, inputs"


def _text(value: object) -> str | None:
    """A TEXT cell (read as bytes) as a string; None for NULL. Raises ValueError on anything else."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise ValueError("not text")


def _json_object(value: object, *, optional: bool = False) -> dict | None:
    text = _text(value)
    if text is None and optional:
        return None
    obj = json.loads(text) if text is not None else None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def _parse_row(r: tuple) -> CaseRecord | None:
    """One stored row as a CaseRecord, or None when any cell is not what the history writes."""
    try:
        case_id, created_at, model_version = (_text(v) for v in r[:3])
        if not case_id or created_at is None or model_version is None:
            return None
        return CaseRecord(
            case_id=case_id,
            created_at=created_at,
            model_version=model_version,
            input_hashes=_json_object(r[3]),
            prediction=_json_object(r[4]),
            explanation=_json_object(r[5], optional=True),
            inputs=_json_object(r[6], optional=True),
        )
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _row_name(row: tuple) -> str:
    """How a skipped row is named on screen: its case id when readable, else its row number."""
    try:
        case_id = _text(row[1])
    except ValueError:
        case_id = None
    if case_id and len(case_id) <= 40 and case_id.isprintable():
        return case_id
    return f"row {row[0]}"
