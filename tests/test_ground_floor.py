"""The ground floor every room shares: atomic writes, sha256, uploads, build-once, parallel map, threads,
settings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from mrrp._fs import (
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    build_dir_atomically,
    replace_dir_atomically,
)
from mrrp._hashing import sha256_bytes, sha256_file, sha256_text
from mrrp._locks import build_once
from mrrp._parallel import default_workers, parallel_map
from mrrp._threads import encoder_threads, torch_threads
from mrrp._uploads import UploadedFileData, save_content_addressed, save_uploads
from mrrp.errors import InputError
from mrrp.settings import load_settings


class Boom(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------------


def test_atomic_writes_store_exactly_what_was_given(tmp_path: Path) -> None:
    assert atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01") == tmp_path / "a" / "b.bin"
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "t.txt", "Präparat\r\nzwei\n")
    assert (tmp_path / "t.txt").read_bytes() == "Präparat\r\nzwei\n".encode()  # no newline translation
    atomic_write_json(tmp_path / "j.json", {"b": 1, "a": [0.5]}, indent=2, sort_keys=True)
    assert (tmp_path / "j.json").read_text() == json.dumps({"a": [0.5], "b": 1}, indent=2)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.bin", "j.json", "t.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(Boom), atomic_open(target, "w") as fh:
        fh.write("half of the new")
        raise Boom
    assert target.read_text() == "old"
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})  # not JSON: nothing is written
    assert target.read_text() == "old"
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_atomic_path_hands_a_library_a_fresh_name_with_the_suffix_it_needs(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "att.nii.gz", suffix=".nii.gz") as tmp:
        assert not tmp.exists() and tmp.parent == tmp_path and tmp.name.endswith(".nii.gz")
        assert tmp.name.startswith(".")  # hidden: never listed as a slide or an upload
        tmp.write_bytes(b"volume")
    assert (tmp_path / "att.nii.gz").read_bytes() == b"volume"
    assert [p.name for p in tmp_path.iterdir()] == ["att.nii.gz"]


def test_written_files_are_readable_by_others_not_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "x", b"1")
    finally:
        os.umask(old)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o644


def test_atomic_open_refuses_append_and_read_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError), atomic_open(tmp_path / "x", "a"):
        pass


def test_folders_are_swapped_whole_and_a_failed_build_changes_nothing(tmp_path: Path) -> None:
    final = tmp_path / "bundle"
    build_dir_atomically(final, lambda d: (d / "v1").write_text("1"))
    assert [p.name for p in final.iterdir()] == ["v1"]

    def fails(d: Path) -> None:
        (d / "v2").write_text("2")
        raise Boom

    with pytest.raises(Boom):
        build_dir_atomically(final, fails)
    assert [p.name for p in final.iterdir()] == ["v1"]
    build_dir_atomically(final, lambda d: (d / "v3").write_text("3"))
    assert [p.name for p in final.iterdir()] == ["v3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no .partial, no .previous

    partial = tmp_path / "new"
    partial.mkdir()
    (partial / "f").write_text("x")
    replace_dir_atomically(partial, tmp_path / "empty-before")
    assert (tmp_path / "empty-before" / "f").read_text() == "x" and not partial.exists()


# --------------------------------------------------------------------------------------------------
# sha256
# --------------------------------------------------------------------------------------------------


def test_sha256_helpers_match_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 50_000  # 12.8 MB: several read blocks
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    assert sha256_bytes(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_text("Präparat") == hashlib.sha256("Präparat".encode()).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


# --------------------------------------------------------------------------------------------------
# uploads
# --------------------------------------------------------------------------------------------------


def test_uploads_are_content_addressed_in_any_order(tmp_path: Path) -> None:
    a, b = UploadedFileData("b.dcm", b"B" * 10), UploadedFileData("a.dcm", b"A" * 5)
    first = save_content_addressed([a, b], tmp_path)
    again = save_content_addressed([b, a], tmp_path)
    assert [p.name for p in first] == ["b.dcm", "a.dcm"]  # the order given
    assert first[0].parent == again[0].parent and sorted(first) == sorted(again)
    # the folder name is pinned: saved uploads from before the move are found again
    h = hashlib.sha256()
    for f in (b, a):  # name order: a.dcm, then b.dcm
        h.update(f.name.encode())
        h.update(hashlib.sha256(f.data).digest())
    assert first[0].parent.name == h.hexdigest()[:24]
    changed = save_content_addressed([UploadedFileData("a.dcm", b"C" * 5)], tmp_path)
    assert changed[0].parent != first[0].parent
    assert not list(tmp_path.rglob(".*"))
    assert save_uploads([UploadedFileData("s.mrxs", b"m"), UploadedFileData("Index.dat", b"i")], tmp_path).name == (
        "s.mrxs"
    )
    with pytest.raises(InputError, match="No file"):
        save_uploads([], tmp_path)


# --------------------------------------------------------------------------------------------------
# build once
# --------------------------------------------------------------------------------------------------


def test_build_once_builds_once_for_two_concurrent_callers(tmp_path: Path) -> None:
    calls: list[int] = []

    def build(folder: Path) -> None:
        calls.append(1)
        time.sleep(0.3)  # long enough that the second caller arrives while the first is building
        (folder / "done.json").write_text("[]")

    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(build_once(tmp_path / "demo", build, marker="done.json")))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results == [tmp_path / "demo"] * 2 and (tmp_path / "demo" / "done.json").is_file()
    assert build_once(tmp_path / "demo", build, marker="done.json") == tmp_path / "demo" and len(calls) == 1


def test_build_once_without_its_marker_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="marker"):
        build_once(tmp_path / "demo", lambda d: (d / "other").write_text("x"), marker="done.json")
    assert not (tmp_path / "demo").exists() and not (tmp_path / "demo.partial").exists()


# --------------------------------------------------------------------------------------------------
# parallel map
# --------------------------------------------------------------------------------------------------


def _square(x: int) -> int:
    time.sleep(0.01 * (x % 3))  # uneven durations: finishing order differs from input order
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_map_keeps_order_and_reports_progress(workers: int) -> None:
    seen: list[tuple[int, int]] = []
    assert parallel_map(_square, range(7), workers=workers, progress=lambda i, n: seen.append((i, n))) == [
        x * x for x in range(7)
    ]
    assert seen == [(i, 7) for i in range(8)]


def test_parallel_map_of_nothing_and_default_workers() -> None:
    seen: list[tuple[int, int]] = []
    assert parallel_map(_square, [], workers=4, progress=lambda i, n: seen.append((i, n))) == []
    assert seen == [(0, 0)]
    assert default_workers(3, 16) == 3
    assert default_workers(None, 64) == 8
    assert default_workers(0) == 1


# --------------------------------------------------------------------------------------------------
# threads and settings
# --------------------------------------------------------------------------------------------------


def test_torch_threads_restores_the_previous_count() -> None:
    import torch

    before = torch.get_num_threads()
    with pytest.raises(Boom), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise Boom
    assert torch.get_num_threads() == before


def test_encoder_threads_leave_a_core_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MRRP_TORCH_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert encoder_threads() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert encoder_threads() == 7
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert encoder_threads() == 1
    monkeypatch.setenv("MRRP_TORCH_THREADS", "3")
    assert encoder_threads() == 3
    monkeypatch.setenv("MRRP_TORCH_THREADS", "zero")
    assert encoder_threads() == 1  # not a number: ignored, the default (cpu_count is None here) applies


def test_settings_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = load_settings({"HOME": str(tmp_path)})
    assert s.slide_dir == Path("slides") and s.models_dir == Path("models")
    assert s.torch_threads is None and s.encoder_precision == "auto" and not s.debug
    s = load_settings({"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert s.cache_dir == tmp_path / "xdg" / "mrrp" and s.history_db == tmp_path / "xdg" / "mrrp" / "history.sqlite"
    assert s.upload_dir == tmp_path / "xdg" / "mrrp" / "uploads"
    env = {
        "MRRP_CACHE_DIR": str(tmp_path / "c"),
        "XDG_CACHE_HOME": str(tmp_path / "ignored"),
        "MRRP_HISTORY_DB": "~/h.sqlite",
        "MRRP_MODELS_DIR": str(tmp_path / "m"),
        "MRRP_SLIDE_DIR": str(tmp_path / "s"),
        "MRRP_TORCH_THREADS": " 4 ",
        "MRRP_ENCODER_PRECISION": "bf16",
        "MRRP_DEBUG": "1",
    }
    s = load_settings(env)
    assert s.cache_dir == tmp_path / "c" and s.history_db == Path("~/h.sqlite").expanduser()
    assert (s.models_dir, s.slide_dir) == (tmp_path / "m", tmp_path / "s")
    assert (s.torch_threads, s.encoder_precision, s.debug) == (4, "bf16", True)
    # read at call time, not frozen at import
    monkeypatch.setenv("MRRP_CACHE_DIR", str(tmp_path / "later"))
    assert load_settings().cache_dir == tmp_path / "later"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.debug = False  # type: ignore[misc]  # frozen: one Settings is one consistent reading
