"""The ``mrrp`` command: JSON on stdout, one human line on stderr for bad input, atomic outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import damage_level, tissue_image, write_tiff_slide
from PIL import Image

from mrrp import __version__
from mrrp.cli import main

MRRP_SCRIPT = Path(sys.executable).parent / "mrrp"


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    """Run ``mrrp ARGV`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors and --version exit this way
        code = exc.code if isinstance(exc.code, int) else 1
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_input_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert out == ""
    assert err.startswith("mrrp: ")
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def _h5_and_part_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".h5", ".part")) if folder.exists() else []


# -- slide-info -------------------------------------------------------------------------------


def test_slide_info_aperio_json(capsys, testdata):
    code, out, err = run_cli(capsys, "slide-info", testdata / "small.svs", "--json")
    assert code == 0 and err == ""
    info = json.loads(out)
    assert info["name"] == "small.svs"
    assert (info["width_px"], info["height_px"]) == (16, 16)
    assert info["vendor"] == "aperio"
    assert info["mpp"] == pytest.approx(0.499)
    assert info["mpp_x"] == pytest.approx(0.499) and info["mpp_y"] == pytest.approx(0.499)
    assert info["mpp_source"] == "slide"
    assert info["objective_power"] == 20
    assert info["level_count"] == 1
    assert info["level_dimensions"] == [[16, 16]] and info["level_downsamples"] == [1.0]
    assert info["file_size_bytes"] == (testdata / "small.svs").stat().st_size
    assert "properties" not in info  # vendor noise only on request

    code, out, _ = run_cli(capsys, "slide-info", testdata / "small.svs", "--json", "--properties")
    assert code == 0 and json.loads(out)["properties"]["openslide.vendor"] == "aperio"


def test_slide_info_human_readable(capsys, testdata):
    code, out, err = run_cli(capsys, "slide-info", testdata / "small.svs")
    assert code == 0 and err == ""
    assert "small.svs: aperio, 16 x 16 px, 1 levels" in out
    assert "0.499 µm/px (slide)" in out and "objective 20x" in out


def test_slide_info_ignores_a_72_dpi_tiff_resolution(capsys, testdata):
    code, out, _ = run_cli(capsys, "slide-info", testdata / "boxes.tiff", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["vendor"] == "generic-tiff" and info["level_count"] == 4
    assert info["mpp"] is None and info["mpp_x"] is None and info["mpp_source"] == "missing"

    code, out, _ = run_cli(capsys, "slide-info", testdata / "boxes.tiff")
    assert code == 0 and "unknown (supply --mpp)" in out

    code, out, _ = run_cli(capsys, "slide-info", testdata / "boxes.tiff", "--json", "--mpp", "0.5")
    assert code == 0
    info = json.loads(out)
    assert info["mpp"] == 0.5 and info["mpp_source"] == "user"


@pytest.mark.parametrize("mpp", ["500", "0", "-0.25", "nan", "352.8"])
def test_slide_info_rejects_implausible_user_mpp(capsys, testdata, mpp):
    code, out, err = run_cli(capsys, "slide-info", testdata / "boxes.tiff", "--json", "--mpp", mpp)
    assert_one_line_input_error(code, out, err, "µm/pixel")


def _bad_input(kind: str, tmp_path: Path, testdata: Path) -> tuple[Path, str]:
    """(path, expected message fragment) for one kind of unusable file."""
    if kind == "unreadable.svs":
        return testdata / "unreadable.svs", "damaged or incomplete"
    if kind == "unopenable.tiff":
        return testdata / "unopenable.tiff", "cannot be opened"
    if kind == "zero-bytes":
        p = tmp_path / "copying.svs"
        p.write_bytes(b"")
        return p, "empty (0 bytes)"
    if kind == "text-renamed-svs":
        p = tmp_path / "report.svs"
        p.write_text("Pathology report\nER 95%, PR 80%, HER2 1+\n" * 20)
        return p, "not a slide format"
    if kind == "not-found":
        return tmp_path / "missing" / "S24-0001.svs", "was not found"
    if kind == "folder":
        p = tmp_path / "scan.svs"
        p.mkdir()
        return p, "is a folder"
    if kind == "png-bomb":
        p = tmp_path / "bomb.png"
        Image.new("1", (20000, 20000)).save(p)  # 400 Mpx, ~50 kB on disk
        assert p.stat().st_size < 200_000
        return p, "too large"
    raise AssertionError(kind)


BAD_INPUTS = [
    "unreadable.svs",
    "unopenable.tiff",
    "zero-bytes",
    "text-renamed-svs",
    "not-found",
    "folder",
    "png-bomb",
]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_slide_info_bad_input_is_one_line(capsys, tmp_path, testdata, kind):
    path, fragment = _bad_input(kind, tmp_path, testdata)
    code, out, err = run_cli(capsys, "slide-info", path, "--json")
    assert_one_line_input_error(code, out, err, fragment, path.name)


def test_plain_image_just_over_the_limit_is_too_large(capsys, tmp_path):
    # 13000^2 = 169 Mpx: above mrrp's 150 Mpx limit but below PIL's own bomb error.
    p = tmp_path / "scan_13k.png"
    Image.new("1", (13000, 13000)).save(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        code, out, err = run_cli(capsys, "slide-info", p)
    assert_one_line_input_error(code, out, err, "too large", "150 million pixels")


def test_plain_image_size_check_emits_no_python_warning(capsys, tmp_path):
    p = tmp_path / "scan_13k.png"
    Image.new("1", (13000, 13000)).save(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, _ = run_cli(capsys, "slide-info", p)
    assert code == 2
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["scan-slide", "x.svs"], "invalid choice"),
        (["slide-info"], "required: path"),
        (["features", "x.svs"], "required: --out"),
        ([], "required: command"),
        (["slide-info", "x.svs", "--mpp", "half"], "invalid float value"),
        (["slide-info", "x.svs", "--colour"], "unrecognized arguments"),
    ],
    ids=["unknown-command", "missing-path", "missing-out", "no-command", "mpp-not-a-number", "unknown-option"],
)
def test_usage_errors_are_one_line(capsys, argv, fragment):
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_input_error(code, out, err, fragment, "--help")


def test_top_level_usage_error_points_to_a_working_help_command(capsys):
    _, _, err = run_cli(capsys, "scan-slide")
    assert "see 'mrrp --help'" in err


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"mrrp {__version__}"


def test_unicode_file_name(capsys, tmp_path, testdata):
    name = "Präparat_乳腺 1.svs"
    shutil.copy(testdata / "small.svs", tmp_path / name)
    code, out, err = run_cli(capsys, "slide-info", tmp_path / name, "--json")
    assert code == 0 and err == ""
    info = json.loads(out)
    assert info["name"] == name and info["vendor"] == "aperio"
    assert Path(info["path"]) == tmp_path / name

    code, out, _ = run_cli(capsys, "slide-info", tmp_path / name)
    assert code == 0 and out.startswith(f"{name}: aperio")


def test_installed_console_script(testdata):
    """The packaged entry point: real process exit codes and streams."""
    assert MRRP_SCRIPT.is_file(), f"console script missing at {MRRP_SCRIPT}"
    ok = subprocess.run(
        [str(MRRP_SCRIPT), "slide-info", str(testdata / "small.svs"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["vendor"] == "aperio" and ok.stderr == ""

    bad = subprocess.run(
        [str(MRRP_SCRIPT), "slide-info", str(testdata / "unreadable.svs")], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("mrrp: ") and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


# -- features ---------------------------------------------------------------------------------


def test_features_writes_h5_and_reuses_the_cache(capsys, known_tissue_slide, tmp_path):
    slide, known = known_tissue_slide
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cache = tmp_path / "cache"
    first = out_dir / "known.h5"
    code, out, err = run_cli(capsys, "features", slide, "--out", first, "--json", "--cache-dir", cache)
    assert code == 0, err
    assert err == ""  # no progress bar when stderr is not a terminal
    summary = json.loads(out)
    assert summary["slide"] == "known.tiff" and summary["out"] == str(first)
    assert summary["n_tiles"] == known["n_tiles"] == 15
    assert summary["embedding_dim"] == 1280
    assert summary["encoder"] == "efficientnet-lite0-imagenet" and summary["encoder_version"].startswith("57934424")
    assert (summary["target_mpp"], summary["tile_size_px"], summary["tile_size_l0"]) == (1.0, 224, 448)
    assert summary["from_cache"] is False
    # 0.753 mm² of tissue on a 2 mm x 1.5 mm scan.
    assert summary["tissue_fraction"] == pytest.approx(known["area_mm2"] / (2.0 * 1.5), abs=0.01)

    with h5py.File(first, "r") as f:
        assert f["coords"].shape == (15, 2) and f["coords"].dtype == np.int64
        assert f["features"].shape == (15, 1280) and f["features"].dtype == np.float32
        assert np.isfinite(f["features"][:]).all()
        assert (f["coords"][:] % 448 == 0).all()
        assert int(f.attrs["complete"]) == 1 and int(f.attrs["tile_size_l0"]) == 448
        assert f.attrs["slide_name"] == "known.tiff"
        features_first = f["features"][:]
    assert sorted(p.name for p in out_dir.iterdir()) == ["known.h5"]  # no .part left behind
    assert len(list(cache.rglob("*.h5"))) == 1

    # Again, with the progress bar forced on: served from the cache, stdout still pure JSON.
    second = out_dir / "again.hdf5"
    code, out, err = run_cli(capsys, "features", slide, "--out", second, "--json", "--cache-dir", cache, "--progress")
    assert code == 0, err
    assert json.loads(out)["from_cache"] is True
    assert err.rstrip("\n").endswith("15/15 tiles") and "\r" in err
    with h5py.File(second, "r") as f:
        np.testing.assert_array_equal(f["features"][:], features_first)

    code, out, _ = run_cli(capsys, "features", slide, "--out", out_dir / "plain.h5", "--cache-dir", cache)
    assert code == 0 and out.strip().startswith("15 tiles x 1280 features (cache)")


def test_features_needs_mpp_when_the_slide_lacks_it(capsys, tmp_path):
    slide = write_tiff_slide(tmp_path / "nompp.tiff", tissue_image(2000, 1500, [(448, 448, 1792, 1344)]), mpp=None)
    out_file = tmp_path / "nompp.h5"
    args = ["features", slide, "--out", out_file, "--json", "--cache-dir", tmp_path / "cache"]
    code, out, err = run_cli(capsys, *args)
    assert_one_line_input_error(code, out, err, "nompp.tiff", "microns per pixel")
    assert not out_file.exists()

    code, out, err = run_cli(capsys, *args, "--mpp", "0.5")
    assert code == 0, err
    assert json.loads(out)["n_tiles"] == 6 and out_file.is_file()


@pytest.mark.parametrize(
    "out_name, fragment",
    [("known.csv", "must end in .h5"), ("known", "must end in .h5"), ("no_such_folder/known.h5", "does not exist")],
    ids=["csv-suffix", "no-suffix", "missing-folder"],
)
def test_features_bad_out_path(capsys, known_tissue_slide, tmp_path, out_name, fragment):
    slide, _ = known_tissue_slide
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run_cli(
        capsys, "features", slide, "--out", out_dir / out_name, "--json", "--cache-dir", tmp_path / "cache"
    )
    assert_one_line_input_error(code, out, err, fragment)
    assert list(out_dir.iterdir()) == []  # nothing written, no folder created
    assert not (tmp_path / "cache").exists()  # rejected before any work


def test_failed_features_run_leaves_no_output(capsys, known_tissue_slide, testdata, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cache = tmp_path / "cache"

    # Fails while opening.
    code, out, err = run_cli(
        capsys, "features", testdata / "unreadable.svs", "--out", out_dir / "a.h5", "--cache-dir", cache
    )
    assert_one_line_input_error(code, out, err, "unreadable.svs")

    # Opens, then fails halfway through reading tiles (the tile level is damaged).
    slide, _ = known_tissue_slide
    damage_level(slide, level=1)
    code, out, err = run_cli(capsys, "features", slide, "--out", out_dir / "b.h5", "--json", "--cache-dir", cache)
    assert_one_line_input_error(code, out, err, "known.tiff", "damaged")

    assert list(out_dir.iterdir()) == []
    assert _h5_and_part_files(cache) == []


def test_features_rejects_upsampling(capsys, known_tissue_slide, tmp_path):
    slide, _ = known_tissue_slide  # scanned at 0.5 µm/px
    out_file = tmp_path / "fine.h5"
    code, out, err = run_cli(
        capsys, "features", slide, "--out", out_file, "--target-mpp", "0.25", "--cache-dir", tmp_path / "cache"
    )
    assert_one_line_input_error(code, out, err, "0.5 µm/pixel", "coarser")
    assert not out_file.exists()


@pytest.mark.parametrize("extra", [["--batch-size", "0"], ["--batch-size=-1"], ["--tile-size", "256"]])
def test_features_bad_numeric_options_are_input_errors(capsys, known_tissue_slide, tmp_path, extra):
    slide, _ = known_tissue_slide
    out_file = tmp_path / "x.h5"
    code, out, err = run_cli(capsys, "features", slide, "--out", out_file, "--cache-dir", tmp_path / "cache", *extra)
    assert_one_line_input_error(code, out, err)
    assert not out_file.exists()
