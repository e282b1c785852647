"""Bad inputs: resource limits. A very long report is explained with bounded memory (occlusion rows in
chunks, the first MAX_OCCLUDED_SENTENCES sentences of a report, said in the methods); a zip of MRI files
that would unpack to far more than its size is refused before anything is written, whether it is one
member or thousands just under the per-member check; and a zip is unpacked once per content, not on
every rerun of the page. Sizes are checked from the batches and files used, never from timings."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLINICAL_RECORD, case_features

import mrrp.model.predict as predict_module
from mrrp.explain import explain
from mrrp.explain.explain import MAX_OCCLUDED_SENTENCES, explain_case
from mrrp.features.case import CATEGORICAL_SIZES
from mrrp.model.batch import collate
from mrrp.model.bundle import LoadedBundle
from mrrp.model.fusion import MRRP, FusionConfig
from mrrp.pcr.io import archive
from mrrp.pcr.io.errors import CorruptMRIError, MRITooLargeError
from mrrp.pcr.io.limits import MAX_ZIP_MEMBERS
from mrrp.pcr.io.sources import expanded

# -- a long report ---------------------------------------------------------------------------------


def _bundle(members: int = 2) -> LoadedBundle:
    torch.manual_seed(0)
    cfg = FusionConfig(d=16, heads=2, dropout=0.0, n_numeric=7, categorical_sizes=CATEGORICAL_SIZES)
    models = [MRRP(cfg).eval() for _ in range(members)]
    return LoadedBundle(
        path=Path("tiny"),
        config={"name": "tiny", "fusion": cfg.to_dict()},
        models=models,
        baselines=[],
        ensemble_baseline=None,
        member_offsets=np.zeros(members),
        cutoffs=None,
        reference_risk=np.zeros(1),
        training_summary={},
        model_card={},
        checksum="0" * 64,
    )


def _long_report_case(n_path: int, n_us: int = 3):
    rng = np.random.default_rng(0)
    return case_features(
        "LONG",
        np.abs(rng.standard_normal((24, 1280))).astype(np.float32),
        clinical=CLINICAL_RECORD,
        us_report=rng.standard_normal((n_us, 384)).astype(np.float32),
        us_report_sentences=[f"us {i}." for i in range(n_us)],
        path_report=rng.standard_normal((n_path, 384)).astype(np.float32),
        path_report_sentences=[f"path sentence {i}." for i in range(n_path)],
    )


@pytest.fixture
def forward_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(rows, float elements per row) of every batched forward the explanation makes."""
    sizes: list[tuple[int, int]] = []
    real = predict_module.member_log_risks

    def recording(bundle, batch, present=None):
        rows = int(present.shape[0]) if present is not None else int(batch["tiles"].shape[0])
        sizes.append((rows, sum(int(v[0].numel()) for v in batch.values())))
        return real(bundle, batch, present)

    monkeypatch.setattr(predict_module, "member_log_risks", recording)
    return sizes


@pytest.mark.parametrize("n_sentences", [2_000, MAX_OCCLUDED_SENTENCES + 1])
def test_a_long_report_is_explained_in_bounded_chunks(
    n_sentences: int, forward_sizes: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 4_000_000  # small, so the chunking is exercised on a tiny model
    monkeypatch.setattr(explain, "MAX_CHUNK_ELEMENTS", limit // 2)
    monkeypatch.setattr(explain, "MAX_FORWARD_ELEMENTS", limit)
    bundle, case = _bundle(), _long_report_case(n_sentences)
    e = explain_case(bundle, case, ig_steps=2)
    assert forward_sizes and all(rows * per_row <= limit for rows, per_row in forward_sizes), forward_sizes
    # 16 Shapley subsets, then one occlusion row per explained sentence: 3 ultrasound, the capped pathology ones
    assert sum(rows for rows, _ in forward_sizes) == 16 + 3 + MAX_OCCLUDED_SENTENCES
    assert max(rows for rows, _ in forward_sizes) < MAX_OCCLUDED_SENTENCES  # several chunks, none the whole report
    assert len(e.path_report) == MAX_OCCLUDED_SENTENCES and len(e.us_report) == 3
    assert [s.sentence for s in e.path_report] == case.path_report_sentences[:MAX_OCCLUDED_SENTENCES]
    assert f"first {MAX_OCCLUDED_SENTENCES:,} sentences" in e.methods["reports_limit"]
    assert f"pathology report has {n_sentences:,}" in e.methods["reports_limit"]
    assert e.methods["reports"] == explain.METHODS["reports"]
    # each explained sentence is still exactly the risk without it
    batch = collate([case])
    mask = batch["path_report_mask"].clone()
    mask[0, 7] = False
    without = explain.ensemble_log_risk(bundle, {**batch, "path_report_mask": mask}, batch["present"])[0]
    assert e.path_report[7].attribution == pytest.approx(e.full_log_risk - without, abs=1e-6)


def test_a_normal_report_is_explained_whole_in_one_forward(forward_sizes: list[tuple[int, int]]) -> None:
    bundle, case = _bundle(), _long_report_case(12)
    e = explain_case(bundle, case, ig_steps=2)
    assert len(e.path_report) == 12 and "reports_limit" not in e.methods
    assert (3 + 12) in [rows for rows, _ in forward_sizes]  # every occlusion row of both reports in one forward


def test_occlusion_memory_is_linear_in_the_report_length() -> None:
    """Rows per forward shrink as the report grows: rows x inputs per row stays under the forward limit."""
    steps = []
    for n in (50, 500, 5_000, 50_000):
        batch = collate([_long_report_case(n)])
        steps.append(explain._rows_per_chunk(batch))
        assert steps[-1] * sum(int(v[0].numel()) for v in batch.values()) <= explain.MAX_FORWARD_ELEMENTS
    assert steps == sorted(steps, reverse=True) and steps[-1] < steps[0] / 100


@pytest.mark.parametrize(("n_tiles", "n_sentences"), [(24, 12), (1_000, 40), (4_000, 60)])
def test_ordinary_reports_keep_their_numbers_bit_for_bit(n_tiles: int, n_sentences: int) -> None:
    """The chunked occlusion splits rows exactly as the one-call occlusion did (float sums depend on it)."""
    rng = np.random.default_rng(1)
    case = _long_report_case(n_sentences)
    case.tiles = np.abs(rng.standard_normal((n_tiles, 1280))).astype(np.float32)
    case.tile_coords_l0 = np.zeros((n_tiles, 2), np.int64)
    bundle, batch = _bundle(), collate([case])
    rows = [("us_report", j) for j in range(3)] + [("path_report", j) for j in range(n_sentences)]
    with torch.no_grad():
        occluded, present = explain._occlusion_rows(batch, rows, 0, 3, n_sentences)
        before = 0.5 - explain.ensemble_log_risk(bundle, occluded, present)  # every row in one call, as before
    us, path = explain.sentence_occlusion(bundle, batch, 0.5)
    assert np.array_equal(np.concatenate([us, path]), before)
    assert explain._rows_per_chunk(batch) == explain.MAX_CHUNK_ELEMENTS // (n_tiles * 1280)  # the tile budget


# -- zips of MRI files -----------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], level: int = 9) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _many_small_bombs(path: Path, n: int = 100, member_bytes: int = 900_000) -> Path:
    """``n`` members of zeros just under the per-member ratio check (which starts at 1 MB)."""
    zero = bytes(member_bytes)
    return _zip(path, {f"slice_{i:05d}.dcm": zero for i in range(n)})


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: _many_small_bombs(p), "times its own size"),  # 90 MB from ~90 kB
        (lambda p: _zip(p, {"one.dcm": bytes(8_000_000)}), "looks like a zip bomb"),  # one member, 8000:1
        (lambda p: _zip(p, {f"{i}.dcm": b"" for i in range(MAX_ZIP_MEMBERS + 1)}, level=0), "more than the limit"),
    ],
    ids=["thousands-of-members-under-the-limit", "one-member-bomb", "too-many-members"],
)
def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path, make, words: str) -> None:
    zip_path = make(tmp_path / "mri.zip")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MRITooLargeError) as err:
        archive.safe_extract(zip_path, dest)
    assert words in str(err.value) and "mri.zip" in str(err.value)
    assert list(dest.iterdir()) == []  # refused from the zip's directory, before extracting


def test_a_zip_whose_directory_lies_stops_at_the_limit_while_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zip_path = _many_small_bombs(tmp_path / "mri.zip", n=10, member_bytes=200_000)
    monkeypatch.setattr(archive, "check_zip", lambda _p, _infos: 1_000_000)  # as if the sizes were understated
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MRITooLargeError, match="times its own size"):
        archive.safe_extract(zip_path, dest)
    assert sum(f.stat().st_size for f in dest.iterdir()) <= 1_000_000


def test_a_real_series_zip_passes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    slices = {f"series/IM{i}.dcm": rng.integers(0, 4096, 64 * 64, dtype=np.uint16).tobytes() for i in range(40)}
    zip_path = _zip(tmp_path / "mri.zip", slices)
    dest = tmp_path / "out"
    dest.mkdir()
    files = archive.safe_extract(zip_path, dest)
    assert [f.name.split("_", 1)[1] for f in files] == [f"IM{i}.dcm" for i in range(40)]
    assert [f.read_bytes() for f in files] == list(slices.values())


def test_a_damaged_zip_is_one_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "mri.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(64))
    with pytest.raises(CorruptMRIError, match="is damaged"):
        archive.safe_extract(path, tmp_path)


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> archive._UnpackedZips:
    cache = archive._UnpackedZips()
    monkeypatch.setattr(archive, "UNPACKED", cache)
    return cache


def _series_zip(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    return _zip(path, {f"IM{i}.dcm": rng.bytes(2_000) for i in range(5)})


def test_a_zip_is_unpacked_once_per_content_across_reruns(tmp_path: Path, fresh_cache) -> None:
    first = _series_zip(tmp_path / "a.zip", 0)
    for _rerun in range(3):
        with expanded([first]) as files:
            assert len(files) == 5 and all(f.exists() for f in files)
    assert fresh_cache.unpacked == 1
    copy = tmp_path / "same-bytes-other-name.zip"
    copy.write_bytes(first.read_bytes())
    with expanded([copy]) as files:
        assert len(files) == 5
    assert fresh_cache.unpacked == 1  # keyed by the content's sha256, not the name
    with expanded([_series_zip(tmp_path / "b.zip", 1)]):
        pass
    assert fresh_cache.unpacked == 2


def test_the_unpacked_zips_are_bounded_and_kept_while_in_use(
    tmp_path: Path, fresh_cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MAX_CACHED_ZIPS", 2)
    zips = [_series_zip(tmp_path / f"{k}.zip", k) for k in range(4)]
    with archive.unpacked_zip(zips[0]) as in_use:
        for z in zips[1:]:
            with archive.unpacked_zip(z):
                pass
        assert all(f.exists() for f in in_use)  # being read: never evicted under the reader
    assert len(list(fresh_cache._folder().iterdir())) == 2  # the one in use and the latest


def test_a_refused_zip_leaves_nothing_in_the_cache(tmp_path: Path, fresh_cache) -> None:
    bomb = _many_small_bombs(tmp_path / "bomb.zip")
    for _rerun in range(2):
        with pytest.raises(MRITooLargeError), expanded([bomb]):
            pass
    assert list(fresh_cache._folder().iterdir()) == [] and fresh_cache.unpacked == 0


def test_a_zip_member_written_as_a_stream_is_checked_too(tmp_path: Path) -> None:
    """A member written without sizes in its local header (streamed) is read by the central directory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("big.dcm", "w") as fh:
        fh.write(bytes(5_000_000))
    path = tmp_path / "mri.zip"
    path.write_bytes(buf.getvalue())
    with pytest.raises(MRITooLargeError):
        archive.safe_extract(path, tmp_path)
