"""Bad-input corpus: nothing a user owns is lost (issue 13, "Data loss").

- ``mrrp train --out`` / ``pcr-train --out`` and the bundle writer they share: a folder that is not a
  bundle is refused before training starts and left untouched; replacing a bundle keeps the previous one
  until the new one is complete; a process killed between the two renames of the swap (a real SIGKILL,
  in a forked child) is recovered by the next load or write, the previous bundle put back.
- Uploads sharing a file name: every file is kept (120 MRI slices from four phase folders stay 120).
- The case history: a row that cannot be read is skipped and named, every other case stays visible; a
  read-only database is listed and says "read-only" when a save is refused.

Each case asserts the message class (BundleError / InputError / HistoryError) and the sentence, and that
the other inputs (the folder's files, the other bundle, the other uploads, the other cases) survived.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_dashboard_pages_other import page, reviewed  # noqa: F401 - the fixture is used by name
from test_pcr_io import _spec

import mrrp._fs as fs
import mrrp.cli as cli
from mrrp._uploads import UploadedFileData, save_content_addressed, save_uploads
from mrrp.dashboard.history import CaseHistory, HistoryError, HistoryReadOnlyError
from mrrp.dashboard.models import available_models
from mrrp.errors import InputError
from mrrp.model.bundle import BundleError, check_bundle_destination, load_bundle, write_atomic_bundle
from mrrp.pcr import io as pio
from mrrp.pcr.bundle import load_pcr_bundle
from mrrp.pcr.page import save_uploads as save_mri_uploads
from mrrp.pcr.synth import dicom_series_files, render_mri

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "assets" / "models"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, str]:
    """Every file and link under ``root`` (relative path → sha256 or link target): what must survive."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def small_bundle(version: str) -> Callable[[Path], None]:
    """A bundle writer that needs no training: two files whose content says which run wrote them."""

    def write(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps({"version": version}))
        (folder / "weights.bin").write_bytes(version.encode() * 100)

    return write


def version_of(bundle: Path) -> str:
    return json.loads((bundle / "config.json").read_text())["version"]


def kill_in_child(action: Callable[[], None], arm: Callable[[], None]) -> None:
    """Run ``action`` in a forked child that ``arm`` has set up to SIGKILL itself mid-way; the child never
    returns, runs no clean-up, and the parent checks it really died of SIGKILL."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            arm()
            action()
        finally:
            os._exit(0)  # reached only if the kill point was never hit
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the kill point was not reached"


def kill_on_rename(source_name_matches: Callable[[str], bool], *, after: bool = False) -> Callable[[], None]:
    """An ``arm`` for :func:`kill_in_child`: SIGKILL at the rename whose source name matches, before it (or
    just after it, ``after=True``)."""

    def arm() -> None:
        real = os.replace

        def replace(src, dst, *args, **kw):  # type: ignore[no-untyped-def]
            if source_name_matches(Path(src).name):
                if after:
                    real(src, dst, *args, **kw)
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *args, **kw)

        os.replace = replace

    return arm


def between_the_renames(out: Path) -> Callable[[], None]:
    """Killed after the old bundle was moved aside and before the new one was moved in."""
    return kill_on_rename(lambda name: name == out.name + ".partial")


# --------------------------------------------------------------------------------------------------
# --out: refused before training starts, the folder left untouched
# --------------------------------------------------------------------------------------------------


def _cohort(root: Path) -> Path:
    cohort = root / "cohort"
    (cohort / "patients" / "P001").mkdir(parents=True)
    (cohort / "patients" / "P001" / "record.json").write_text('{"age_years": 50}')
    manifest = cohort / "manifest.csv"
    manifest.write_text("patient_id,clinical\nP001,patients/P001/record.json\n")
    return manifest


def _notes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.md").write_text("tumour board minutes, 2026\n" * 1000)
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "copy.csv").write_bytes(os.urandom(50_000))
    return folder


def _bundle_with_extra(folder: Path) -> Path:
    write_atomic_bundle(folder, small_bundle("old"))
    (folder / "my notes.txt").write_text("do not delete")
    return folder


def _stray_previous(folder: Path) -> Path:
    write_atomic_bundle(folder, small_bundle("old"))
    _notes(folder.with_name(folder.name + ".previous"))
    return folder


def _file(path: Path) -> Path:
    path.write_text("a results table, not a folder")
    return path


def _link(path: Path) -> Path:
    target = path.with_name("real-bundle")
    write_atomic_bundle(target, small_bundle("old"))
    path.symlink_to(target, target_is_directory=True)
    return path


# (how --out is given, relative to a work folder holding the cohort and a non-empty cwd; fixture; message)
OUT_CASES = {
    "dot": (".", None, "is the current folder or a folder above it"),
    "dot-dot": ("..", None, "is the current folder or a folder above it"),
    "parent-of-cohort": ("{root}", None, "which this run reads or writes"),
    "the-cohort-itself": ("{root}/cohort", None, "which this run reads or writes"),
    "a-file": ("{root}/results.csv", _file, "is a file, not a folder"),
    "non-empty-non-bundle": ("{root}/notes", _notes, "is not empty and is not a model bundle"),
    "bundle-with-other-files": ("{root}/models/site", _bundle_with_extra, "holds files that are not part of"),
    "stray-previous": ("{root}/models/site", _stray_previous, "from an earlier run is beside the output"),
    "a-link": ("{root}/models/current", _link, "is a link"),
}


def _setup_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> tuple[Path, str]:
    root = tmp_path / "work"
    manifest = _cohort(root)
    here = _notes(root / "here" / "cwd")
    monkeypatch.chdir(here)
    given, make, _ = OUT_CASES[case]
    out = given.format(root=root)
    if make is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        make(Path(out))
    return manifest, out


def _refuse_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import mrrp.pcr.pipeline
    import mrrp.train.pipeline

    def must_not_run(*args: object, **kw: object) -> None:
        raise AssertionError("training started although --out was unsafe")

    monkeypatch.setattr(mrrp.train.pipeline, "train_bundle", must_not_run)
    monkeypatch.setattr(mrrp.pcr.pipeline, "train_pcr", must_not_run)


@pytest.mark.parametrize("command", ["train", "pcr-train"])
@pytest.mark.parametrize("case", list(OUT_CASES))
def test_unsafe_out_is_refused_before_training_and_nothing_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str, case: str
) -> None:
    manifest, out = _setup_out(tmp_path, monkeypatch, case)
    _refuse_training(monkeypatch)
    before = tree(tmp_path)
    rc = cli.main([command, "--manifest", str(manifest), "--out", out])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_INPUT, err
    assert err.startswith("mrrp: ") and err.count("\n") == 1 and "Traceback" not in err
    assert OUT_CASES[case][2] in err, err
    assert tree(tmp_path) == before  # every file where it was, nothing added (no .partial)


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_the_writer_itself_refuses_what_the_cli_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """A library caller (the training pipelines, make model) gets the same refusal from the writer."""
    manifest, out = _setup_out(tmp_path, monkeypatch, case)
    before = tree(tmp_path)
    keep = [manifest]
    with pytest.raises(BundleError) as err:
        check_bundle_destination(out, keep=keep)
    assert OUT_CASES[case][2] in str(err.value)
    if case not in ("parent-of-cohort", "the-cohort-itself"):  # the writer knows nothing of the manifest
        with pytest.raises(BundleError):
            write_atomic_bundle(out, small_bundle("new"))
    assert tree(tmp_path) == before


@pytest.mark.parametrize("existing", ["absent", "empty-folder", "a-bundle"])
def test_safe_out_trains_and_replaces_only_a_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], existing: str
) -> None:
    import mrrp.train.pipeline

    manifest = _cohort(tmp_path)
    out = tmp_path / "models" / "site"
    if existing == "empty-folder":
        out.mkdir(parents=True)
    elif existing == "a-bundle":
        write_atomic_bundle(out, small_bundle("old"))

    def fake_train(manifest_path: str, out_path: str, **kw: object) -> dict:
        write_atomic_bundle(out_path, small_bundle("new"))
        return {"oof_harrell_c": 0.7, "n_train": 1}

    monkeypatch.setattr(mrrp.train.pipeline, "train_bundle", fake_train)
    assert cli.main(["train", "--manifest", str(manifest), "--out", str(out)]) == 0, capsys.readouterr().err
    assert version_of(out) == "new"
    assert sorted(p.name for p in out.parent.iterdir()) == ["site"]  # no .partial, .previous, journal or lock


def test_a_folder_that_stops_being_a_bundle_during_training_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_atomic_bundle(out, small_bundle("old"))

    def write(folder: Path) -> None:
        small_bundle("new")(folder)
        (out / "added meanwhile.txt").write_text("a colleague's file")  # appears while training runs

    with pytest.raises(BundleError, match="holds files that are not part of the bundle"):
        write_atomic_bundle(out, write)
    assert version_of(out) == "old" and (out / "added meanwhile.txt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


# --------------------------------------------------------------------------------------------------
# replacing a bundle: the previous one stays until the new one is complete
# --------------------------------------------------------------------------------------------------


def test_previous_bundle_stays_whole_while_the_new_one_is_written(tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_atomic_bundle(out, small_bundle("old"))
    seen = []

    def write(folder: Path) -> None:
        seen.append((version_of(out), sorted(p.name for p in out.iterdir())))
        small_bundle("new")(folder)

    write_atomic_bundle(out, write)
    assert seen == [("old", ["checksums.json", "config.json", "weights.bin"])]
    assert version_of(out) == "new"


def test_a_failed_run_leaves_the_previous_bundle(tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_atomic_bundle(out, small_bundle("old"))

    def fails(folder: Path) -> None:
        small_bundle("new")(folder)
        raise RuntimeError("out of memory in fold 3")

    with pytest.raises(RuntimeError):
        write_atomic_bundle(out, fails)
    assert version_of(out) == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_an_error_between_the_renames_puts_the_previous_bundle_back_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    write_atomic_bundle(out, small_bundle("old"))
    real = os.replace

    def replace(src, dst, *args, **kw):  # type: ignore[no-untyped-def]
        if Path(src).name == "site.partial":
            raise OSError(28, "No space left on device")
        return real(src, dst, *args, **kw)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        write_atomic_bundle(out, small_bundle("new"))
    monkeypatch.undo()
    assert version_of(out) == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["site"]


# --------------------------------------------------------------------------------------------------
# SIGKILL during the swap: recovered on the next use, the previous bundle never deleted
# --------------------------------------------------------------------------------------------------


def _crash_between_renames(out: Path, write: Callable[[Path], None]) -> None:
    kill_in_child(lambda: write_atomic_bundle(out, write), between_the_renames(out))
    # The crash window itself: no bundle under its name, the previous one aside, the journal telling so.
    assert not out.exists() and out.with_name(out.name + ".previous").is_dir()
    assert out.with_name(f".{out.name}.swap").is_file()


def _next_write(out: Path) -> None:
    seen = []

    def write(folder: Path) -> None:
        seen.append(version_of(out))  # the recovered bundle is in place while the next one is written
        small_bundle("next")(folder)

    write_atomic_bundle(out, write)
    assert seen == ["old"] and version_of(out) == "next"


NEXT_USES: dict[str, Callable[[Path], None]] = {
    "next write": _next_write,
    "destination check (cli)": lambda out: check_bundle_destination(out),
    "next build of any folder": lambda out: fs.build_dir_atomically(out, small_bundle("next")),
    "recover call": fs.recover_dir_swap,
}


@pytest.mark.parametrize("use", list(NEXT_USES))
def test_sigkill_between_the_renames_is_recovered_on_next_use(tmp_path: Path, use: str) -> None:
    out = tmp_path / "site"
    write_atomic_bundle(out, small_bundle("old"))
    old = tree(out)
    _crash_between_renames(out, small_bundle("new"))
    NEXT_USES[use](out)
    if use in ("next write", "next build of any folder"):
        assert version_of(out) == "next"
    else:
        assert tree(out) == old  # the previous bundle, byte for byte
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left in (["site"], ["site", "site.partial"])  # a half-run's partial is the next build's to clear
    assert not out.with_name(".site.swap").exists() and not out.with_name("site.previous").exists()


def test_sigkill_mid_swap_of_a_real_bundle_is_recovered_by_load(tmp_path: Path) -> None:
    out = tmp_path / "mrrp-site"
    shutil.copytree(SHIPPED / "mrrp-demo", out)
    old = tree(out)
    _crash_between_renames(out, small_bundle("new"))
    bundle = load_bundle(out)  # finds mrrp-site.previous without mrrp-site and puts it back
    assert len(bundle.models) == 5 and tree(out) == old


def test_sigkill_mid_swap_of_a_pcr_bundle_is_recovered_by_load(tmp_path: Path) -> None:
    out = tmp_path / "pcr-site"
    shutil.copytree(SHIPPED / "pcr-demo", out)
    old = tree(out)
    _crash_between_renames(out, small_bundle("new"))
    bundle = load_pcr_bundle(out)
    assert len(bundle.fusion_heads) > 0 and tree(out) == old


def test_sigkill_mid_swap_in_the_models_folder_is_recovered_by_the_sidebar_listing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(SHIPPED / "mrrp-demo", models / "site-a")
    shutil.copytree(SHIPPED / "mrrp-demo", models / "site-b")
    _crash_between_renames(models / "site-a", small_bundle("new"))
    listed = available_models(models)
    assert listed["site-a (site model)"] == models / "site-a" and "site-b (site model)" in listed


def test_sigkill_after_both_renames_finishes_the_clean_up(tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_atomic_bundle(out, small_bundle("old"))
    kill_in_child(
        lambda: write_atomic_bundle(out, small_bundle("new")),
        kill_on_rename(lambda name: name == "site.partial", after=True),
    )
    assert version_of(out) == "new" and out.with_name("site.previous").is_dir()  # killed before the clean-up
    fs.recover_dir_swap(out)
    assert version_of(out) == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_sigkill_after_the_journal_before_any_rename_keeps_the_old_bundle(tmp_path: Path) -> None:
    out = tmp_path / "site"
    write_atomic_bundle(out, small_bundle("old"))
    kill_in_child(
        lambda: write_atomic_bundle(out, small_bundle("new")),
        kill_on_rename(lambda name: name.startswith("..site.swap.") and name.endswith(".part"), after=True),
    )
    assert version_of(out) == "old" and out.with_name(".site.swap").is_file()
    write_atomic_bundle(out, small_bundle("next"))
    assert version_of(out) == "next" and sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_a_previous_left_by_an_older_mrrp_without_journal_is_restored_not_deleted(tmp_path: Path) -> None:
    """Before the journal, a kill between the renames left ``X.previous`` alone; the next train deleted it."""
    out = tmp_path / "site"
    write_atomic_bundle(out, small_bundle("old"))
    old = tree(out)
    os.replace(out, out.with_name("site.previous"))
    check_bundle_destination(out)
    assert tree(out) == old and not out.with_name("site.previous").exists()


# --------------------------------------------------------------------------------------------------
# uploads sharing a file name: every file kept
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four_phase_series() -> tuple[np.ndarray, list[tuple[int, int, bytes]]]:
    """The rendered phases (4, 71, 71, 30) and (phase, slice, DICOM bytes) of the 120 slices (site D)."""
    spec = _spec("site-d")
    rendered = render_mri(spec)
    files = dicom_series_files(rendered, spec, series_per_phase=True)
    out = [(int(n[1]), int(n[4:7]), data) for n, data in files]
    assert len(out) == 120 and {p for p, _, _ in out} == {0, 1, 2, 3}
    return rendered.phases, out


NAMINGS = {
    # a plain multi-file upload: the browser sends base names only, so the four folders' names collide
    "plain files": lambda p, k: f"IM{k + 1:04d}.dcm",
    # a folder upload (st.file_uploader(accept_multiple_files="directory")): relative paths
    "folder upload": lambda p, k: f"study/phase{p}/IM{k + 1:04d}.dcm",
    "windows folder upload": lambda p, k: f"study\\phase{p}\\IM{k + 1:04d}.dcm",
}


@pytest.mark.parametrize("naming", list(NAMINGS))
def test_120_mri_slices_from_four_phase_folders_sharing_names_are_all_kept(
    tmp_path: Path, four_phase_series, naming: str
) -> None:
    phases, series = four_phase_series
    uploads = [(NAMINGS[naming](p, k), data) for p, k, data in series]
    assert len({n for n, _ in uploads}) == (30 if naming == "plain files" else 120)
    paths = save_mri_uploads(uploads, tmp_path)
    assert len(paths) == 120 and len(set(paths)) == 120 and all(p.is_file() for p in paths)
    study = pio.read_mri(paths)  # once 30 files were kept, this said "only 2 contrast phases were found"
    assert study.n_phases == 4 and study.shape == (71, 71, 30)
    np.testing.assert_array_equal(study.phases, np.round(phases).astype(np.float32))  # every slice, its own pixels


def test_the_pcr_page_predicts_from_120_same_named_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, four_phase_series
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MRRP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    at = AppTest.from_file(str(REPO / "pages" / "pcr.py"), default_timeout=300).run()
    files = [(f"IM{k + 1:04d}.dcm", data, "application/dicom") for _, k, data in four_phase_series[1]]
    at.file_uploader(key="pcr_mri_upload").set_value(files).run()
    assert not at.exception and not [e.value for e in at.error]
    assert any(m.label == "pCR probability" and m.value.endswith("%") for m in at.metric)


def _one(name: str, data: bytes) -> UploadedFileData:
    return UploadedFileData(name, data)


# (uploads, how many distinct files must be on disk)
UPLOAD_CASES = {
    "same name, other bytes": ([_one("a.dcm", b"1"), _one("a.dcm", b"2"), _one("a.dcm", b"3")], 3),
    "same name, same bytes": ([_one("a.dcm", b"1"), _one("a.dcm", b"1")], 1),
    "same name in two folders": ([_one("x/a.dcm", b"1"), _one("y/a.dcm", b"2")], 2),
    "a file and a folder of one name": ([_one("a", b"file"), _one("a/b.dcm", b"inside")], 2),
    "dot-dot and absolute parts": ([_one("../../a.dcm", b"1"), _one("/etc/a.dcm", b"2"), _one("C:\\a.dcm", b"3")], 3),
    "unicode names that normalise alike": ([_one("Pra\u0308parat.dcm", b"1"), _one("Pr\u00e4parat.dcm", b"2")], 2),
}


@pytest.mark.parametrize("case", list(UPLOAD_CASES))
def test_uploads_sharing_a_name_keep_every_file_inside_the_upload_folder(tmp_path: Path, case: str) -> None:
    files, distinct = UPLOAD_CASES[case]
    paths = save_content_addressed(files, tmp_path / "uploads")
    assert len(set(paths)) == distinct
    for f, p in zip(files, paths, strict=True):
        assert p.read_bytes() == f.data  # each name leads to its own bytes
        assert p.resolve().is_relative_to((tmp_path / "uploads").resolve())
    shuffled = save_content_addressed(list(reversed(files)), tmp_path / "uploads")
    assert sorted(shuffled) == sorted(paths)  # the order of upload does not matter
    assert not list((tmp_path / "uploads").rglob("*.part"))


def test_two_different_slides_of_one_name_are_refused_not_one_dropped(testdata: Path, tmp_path: Path) -> None:
    svs = (testdata / "small.svs").read_bytes()
    with pytest.raises(InputError, match=r"2 slides were uploaded together .*upload one slide at a time"):
        save_uploads([_one("slide.svs", svs), _one("slide.svs", svs[:-1] + b"\0")], tmp_path)
    # one slide uploaded twice is one slide; a DICOM series from two folders keeps both files
    assert save_uploads([_one("slide.svs", svs), _one("slide.svs", svs)], tmp_path).read_bytes() == svs
    dcm = [_one(f"wsi/{n}", (testdata / n).read_bytes()) for n in ("boxes_0.dcm", "boxes_1.dcm")]
    main = save_uploads(dcm, tmp_path)
    assert main.suffix == ".dcm" and sorted(p.name for p in main.parent.iterdir()) == ["boxes_0.dcm", "boxes_1.dcm"]


def test_slide_upload_from_the_dashboard_reports_several_slides(testdata: Path, tmp_path: Path) -> None:
    from mrrp.dashboard.uploads import save_slide_upload

    class Browser:
        def __init__(self, name: str, data: bytes) -> None:
            self.name, self._data = name, data

        def getvalue(self) -> bytes:
            return self._data

    svs = (testdata / "small.svs").read_bytes()
    saved = save_slide_upload([Browser("a.svs", svs), Browser("a.svs", svs + b"\0")], tmp_path)
    assert saved.path is None and saved.error is not None and "upload one slide at a time" in saved.error


# --------------------------------------------------------------------------------------------------
# case history: one bad row costs only itself; a read-only file says so
# --------------------------------------------------------------------------------------------------


def _prediction(pid: str = "MRN-1", group: str = "high") -> dict:
    return {"patient_id": pid, "risk_group": group, "model_version": "mrrp-demo@1", "recurrence": {"60": 0.4}}


def _history_with_good_rows(path: Path, n: int = 3) -> list[str]:
    h = CaseHistory(path)
    return [h.record(_prediction(f"P{i}", "low"), {"clinical": f"sha-{i}"}) for i in range(n)]


# column values of one bad row (the others are good): what another tool, an old version or a disk error left
BAD_ROWS = {
    "prediction not JSON": {"prediction": "{not json"},
    "prediction a JSON list": {"prediction": "[1, 2]"},
    "prediction JSON null": {"prediction": "null"},
    "input hashes not an object": {"input_hashes": '"sha"'},
    "explanation truncated": {"explanation": '{"shapley": {"slide": 0.'},
    "inputs a number": {"inputs": "42"},
    "broken UTF-8 in the prediction": {"prediction": b'{"risk_group": "\xff\xfe"}'},
    "a blob for the model version": {"model_version": b"\xc3\x28"},
    "broken UTF-8 in the time": {"created_at": b"2030-01-01\xff"},
    "deeply nested JSON": {"prediction": "[" * 100_000 + "]" * 100_000},
}


def _insert_bad_row(path: Path, case_id: object, columns: dict[str, object]) -> None:
    row = {
        "case_id": case_id,
        "created_at": "2030-01-01T00:00:00+00:00",  # newest: listed first, before the good rows
        "model_version": "mrrp-demo@1",
        "content_key": f"bad-{case_id!r}",
        "input_hashes": "{}",
        "prediction": json.dumps(_prediction("X")),
        "explanation": None,
        "inputs": None,
        **columns,
    }
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"INSERT INTO cases ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            [sqlite3.Binary(v) if isinstance(v, bytes) else v for v in row.values()],
        )


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_one_bad_row_is_skipped_and_named_and_every_other_case_stays(tmp_path: Path, case: str) -> None:
    path = tmp_path / "history.sqlite"
    good = _history_with_good_rows(path)
    _insert_bad_row(path, "C-BADBADBAD0", BAD_ROWS[case])
    h = CaseHistory(path)
    listing = h.listing()
    assert sorted(r.case_id for r in listing.cases) == sorted(good)
    assert listing.skipped == ["C-BADBADBAD0"] and not listing.read_only
    assert listing.notice is not None
    assert "1 saved case could not be read" in listing.notice and "C-BADBADBAD0" in listing.notice
    assert "every other case is listed" in listing.notice and "move the file aside" not in listing.notice
    assert [r.case_id for r in h.list_cases()] == [r.case_id for r in listing.cases]
    assert h.get(good[0]) is not None
    with pytest.raises(HistoryError, match="C-BADBADBAD0 cannot be read") as err:
        h.get("C-BADBADBAD0")
    assert "other cases are not affected" in str(err.value)
    new = h.record(_prediction("P9"), {"clinical": "sha-9"})  # saving still works
    assert new in {r.case_id for r in h.list_cases()}


def test_a_row_whose_id_cannot_be_read_is_named_by_its_row_number(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    good = _history_with_good_rows(path, 2)
    _insert_bad_row(path, b"\xff\xfe", {})
    listing = CaseHistory(path).listing()
    assert sorted(r.case_id for r in listing.cases) == sorted(good)
    assert listing.skipped == ["row 3"] and "(row 3)" in (listing.notice or "")


def test_many_bad_rows_are_counted_and_the_limit_counts_readable_cases(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    good = _history_with_good_rows(path, 4)
    for k in range(7):
        _insert_bad_row(path, f"C-BAD{k:07d}", {"prediction": "{"})
    listing = CaseHistory(path).listing(limit=4)
    assert sorted(r.case_id for r in listing.cases) == sorted(good)
    assert len(listing.skipped) == 7 and "7 saved cases could not be read and are not shown" in listing.notice
    assert "and 2 more" in listing.notice


def test_tumor_board_shows_the_other_cases_and_names_the_bad_row(dashboard_env: Path, reviewed) -> None:  # noqa: F811
    preds, expls = reviewed
    path = dashboard_env / "history.sqlite"
    h = CaseHistory(path)
    ids = [
        h.record(p, {"clinical": f"sha-{p.patient_id}"}, explanation=e.to_dict())
        for p, e in zip(preds, expls, strict=True)
    ]
    _insert_bad_row(path, "C-BADBADBAD0", {"prediction": "{broken"})
    at = page("tumor_board").run()
    assert not at.exception and not at.error
    warnings = " ".join(w.value for w in at.warning)
    assert "1 saved case could not be read" in warnings and "C-BADBADBAD0" in warnings
    assert len([m for m in at.markdown if 'class="mrrp-board"' in m.value]) == 3
    at.multiselect(key="board_cases").set_value(ids).run()
    assert len([m for m in at.markdown if 'class="mrrp-board"' in m.value]) == len(ids)


@pytest.fixture
def read_only_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A valid history this process cannot write: chmod where that binds, else (as root, for whom it does
    not) the permission check answering as it would for anyone else."""
    path = tmp_path / "h" / "history.sqlite"
    good = _history_with_good_rows(path)
    path.chmod(0o444)
    path.parent.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(p, mode, *a, **kw):  # type: ignore[no-untyped-def]
            if mode & os.W_OK and Path(p).resolve() in (path.resolve(), path.parent.resolve()):
                return False
            return real(p, mode, *a, **kw)

        monkeypatch.setattr(os, "access", access)
    yield path, good
    path.parent.chmod(0o755)
    path.chmod(0o644)


def test_a_read_only_history_is_listed_and_says_read_only(read_only_history) -> None:
    path, good = read_only_history
    before = path.read_bytes()
    h = CaseHistory(path)
    listing = h.listing()
    assert sorted(r.case_id for r in listing.cases) == sorted(good) and listing.read_only
    assert listing.notice == (
        f"The case history file {path} is read-only: past cases are listed, but new cases cannot be saved."
    )
    assert h.get(good[1]) is not None
    for save in (lambda: h.record(_prediction("P9"), {"clinical": "sha-9"}), lambda: h.delete(good[0])):
        with pytest.raises(HistoryReadOnlyError) as err:
            save()
        assert "is read-only, so this case cannot be saved" in str(err.value)
        assert "damaged" not in str(err.value) and "move the file aside" not in str(err.value)
    assert path.read_bytes() == before


def test_a_read_only_history_on_the_tumor_board(read_only_history, dashboard_env: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    path, good = read_only_history
    monkeypatch.setenv("MRRP_HISTORY_DB", str(path))
    at = AppTest.from_file(str(REPO / "pages" / "tumor_board.py"), default_timeout=120).run()
    assert not at.exception and not at.error
    assert any("is read-only: past cases are listed" in w.value for w in at.warning)


def test_numbers_stay_numbers_in_a_listing(tmp_path: Path) -> None:
    """Reading text as bytes (to skip undecodable rows) must not change what a good row holds."""
    h = CaseHistory(tmp_path / "h.sqlite")
    cid = h.record({**_prediction(), "log_risk": 1.25, "percentile": np.float64(0.5).item()}, {"slide": "d" * 64})
    record = h.listing().cases[0]
    assert record.case_id == cid and isinstance(record.case_id, str)
    assert record.prediction["log_risk"] == 1.25 and record.input_hashes == {"slide": "d" * 64}
