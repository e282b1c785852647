"""Slide → tile features: the pipeline, the on-disk feature cache, damaged slides, reading tile batches."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import PINK, PURPLE, damage_level, tissue_image, write_tiff_slide
from PIL import Image
from test_features import HE_MEAN_RGB, TILE_L0, MeanColourEncoder, _cosine, _h5_files, _part_files, _Recorder

from mrrp.errors import CorruptSlideError, InputError, MissingMppError
from mrrp.features.encoders import TileEncoder, get_encoder
from mrrp.features.slide import analyse_slide, read_tile_batches, slide_features
from mrrp.features.store import FeatureCache, SlideFeatures, read_features_h5, write_features_h5
from mrrp.io.slides import open_slide


@pytest.fixture(scope="module")
def encoder() -> TileEncoder:
    return get_encoder()


# -- slide -> features ------------------------------------------------------------------------


def test_known_slide_features(known_tissue_slide, encoder, tmp_path):
    path, known = known_tissue_slide
    cache = FeatureCache(tmp_path / "cache")
    progress = _Recorder()
    res = slide_features(path, encoder=encoder, cache=cache, progress=progress)

    assert res.from_cache is False
    grid, feats = res.grid, res.features
    assert len(grid) == len(feats) == known["n_tiles"] == 15
    # Tiles exactly cover the 5 x 3 tissue block, in level-0 pixels, row-major.
    x0, y0, x1, y1 = known["box"]
    expected = [(x, y) for y in range(y0, y1, TILE_L0) for x in range(x0, x1, TILE_L0)]
    assert [tuple(c) for c in feats.coords_l0.tolist()] == expected
    assert feats.coords_l0.dtype == np.int64 and feats.coords_l0.shape == (15, 2)
    assert (feats.coords_l0 % TILE_L0 == 0).all()
    assert (feats.tile_size_l0, feats.tile_size_px, feats.stride_l0, feats.target_mpp) == (448, 224, 448, 1.0)
    assert feats.tissue_fraction.min() > 0.99
    assert feats.features.shape == (15, 1280) and feats.features.dtype == np.float32
    assert np.isfinite(feats.features).all()
    assert (feats.encoder, feats.encoder_version) == (encoder.name, encoder.version)
    assert feats.slide_name == "known.tiff" and len(feats.slide_fingerprint) == 64
    # Tissue area from the mask matches the drawn block (0.753 mm²).
    assert res.tissue.area_mm2(0.5) == pytest.approx(known["area_mm2"], rel=0.05)
    # Identical tissue everywhere: every tile's features are close to each other.
    centre = feats.features.mean(axis=0)
    assert min(_cosine(f, centre) for f in feats.features) > 0.95

    # Progress: starts at 0, ends at (15, 15), never goes backwards, total constant.
    assert progress.calls[0] == (0, 15) and progress.calls[-1] == (15, 15)
    done = [d for d, _ in progress.calls]
    assert done == sorted(done) and {t for _, t in progress.calls} == {15}
    assert len(_h5_files(cache.root)) == 1 and not _part_files(cache.root)

    # Same slide, same settings: served from the cache, identical numbers.
    progress2 = _Recorder()
    again = slide_features(path, encoder=encoder, cache=cache, progress=progress2)
    assert again.from_cache is True
    np.testing.assert_array_equal(again.features.features, feats.features)
    np.testing.assert_array_equal(again.features.coords_l0, feats.coords_l0)
    assert progress2.calls[-1] == (15, 15)

    # A different working resolution is a different grid and a different cache entry.
    coarse = slide_features(path, encoder=encoder, cache=cache, target_mpp=2.0)
    assert coarse.from_cache is False
    assert coarse.features.tile_size_l0 == 896 and coarse.features.target_mpp == 2.0
    assert (coarse.features.coords_l0 % 896 == 0).all()
    assert len(_h5_files(cache.root)) == 2

    # Batching does not change which row belongs to which tile (fresh cache: really recomputed).
    rebatched = slide_features(path, encoder=encoder, cache=FeatureCache(tmp_path / "cache2"), batch_size=4)
    assert rebatched.from_cache is False
    np.testing.assert_allclose(rebatched.features.features, feats.features, atol=1e-4)


def test_features_follow_the_tissue_under_each_tile(tmp_path):
    """With a mean-colour encoder, row i of the features must be the colour under coords[i]."""
    img = tissue_image(2400, 2000, [(448, 448, 448 + 3 * TILE_L0, 896)], seed=1)
    # A second, haematoxylin-dominated block two rows lower.
    rng = np.random.default_rng(2)
    block = np.empty((TILE_L0, 3 * TILE_L0, 3), np.uint8)
    block[:] = PURPLE
    block[rng.random(block.shape[:2]) < 0.08] = PINK
    img[1344:1792, 448 : 448 + 3 * TILE_L0] = block
    path = write_tiff_slide(tmp_path / "two_blocks.tiff", img, mpp=0.5)

    res = slide_features(path, encoder=MeanColourEncoder(), cache=FeatureCache(tmp_path / "cache"))
    coords = res.features.coords_l0
    assert sorted(set(coords[:, 1].tolist())) == [448, 1344]
    assert len(coords) == 6
    purple_mean = 0.92 * np.array(PURPLE, float) + 0.08 * np.array(PINK, float)
    for (_, y), rgb in zip(coords, res.features.features, strict=True):
        expected = HE_MEAN_RGB if y == 448 else purple_mean
        np.testing.assert_allclose(rgb, expected, atol=6)


def test_missing_mpp_fails_before_any_work_and_user_mpp_works(tmp_path, encoder, monkeypatch):
    path = write_tiff_slide(tmp_path / "nompp.tiff", tissue_image(2000, 1500, [(448, 448, 1792, 1344)]), mpp=None)
    cache = FeatureCache(tmp_path / "cache")
    progress = _Recorder()
    with monkeypatch.context() as m:
        m.setattr("mrrp.features.slide.detect_tissue", lambda *a, **k: pytest.fail("tissue detection ran"))
        with open_slide(path) as slide:
            assert slide.info.mpp is None and slide.info.mpp_source == "missing"
            with pytest.raises(MissingMppError, match="microns per pixel"):
                analyse_slide(slide, encoder=encoder, cache=cache, progress=progress)
    assert progress.calls == []
    assert not cache.root.exists()

    res = slide_features(path, mpp=0.5, encoder=encoder, cache=cache)
    assert len(res.features) == 6  # 3 x 2 tiles of 448 level-0 px
    assert res.features.tile_size_l0 == 448
    assert res.features.features.shape == (6, 1280)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_invalid_batch_size_is_rejected_and_nothing_cached(known_tissue_slide, tmp_path, batch_size):
    path, _ = known_tissue_slide
    cache = FeatureCache(tmp_path / "cache")
    try:
        with pytest.raises(InputError):
            slide_features(path, encoder=MeanColourEncoder(), cache=cache, batch_size=batch_size)
    finally:
        assert _h5_files(cache.root) == []


def test_cache_hit_reports_the_slide_actually_opened(known_tissue_slide, tmp_path):
    path, _ = known_tissue_slide
    cache = FeatureCache(tmp_path / "cache")
    slide_features(path, encoder=MeanColourEncoder(), cache=cache)
    copy = shutil.copy(path, tmp_path / "S24-1234_A1.tiff")
    res = slide_features(copy, encoder=MeanColourEncoder(), cache=cache)
    assert res.from_cache is True  # same content: reusing the features is right
    assert res.features.slide_name == "S24-1234_A1.tiff"


# -- the feature file and the cache -----------------------------------------------------------


def _toy_features(n: int = 7, d: int = 5, seed: int = 0) -> SlideFeatures:
    rng = np.random.default_rng(seed)
    return SlideFeatures(
        coords_l0=(rng.integers(0, 50, size=(n, 2)) * 448).astype(np.int64),
        features=rng.normal(size=(n, d)).astype(np.float32),
        tissue_fraction=rng.uniform(0.25, 1.0, size=n).astype(np.float32),
        tile_size_l0=448,
        tile_size_px=224,
        target_mpp=1.0,
        stride_l0=448,
        encoder="efficientnet-lite0-imagenet",
        encoder_version="57934424" + "0" * 56,
        slide_fingerprint="ab" * 32,
        slide_name="Präparat 1.svs",
    )


def test_feature_file_round_trip_and_layout(tmp_path):
    feats = _toy_features()
    out = write_features_h5(tmp_path / "slide.h5", feats)
    assert out == tmp_path / "slide.h5"
    assert _part_files(tmp_path) == [] and [p.name for p in tmp_path.iterdir()] == ["slide.h5"]

    back = read_features_h5(out)
    np.testing.assert_array_equal(back.coords_l0, feats.coords_l0)
    np.testing.assert_array_equal(back.features, feats.features)
    np.testing.assert_array_equal(back.tissue_fraction, feats.tissue_fraction)
    for attr in ("tile_size_l0", "tile_size_px", "target_mpp", "stride_l0", "encoder", "encoder_version"):
        assert getattr(back, attr) == getattr(feats, attr)
    assert (back.slide_fingerprint, back.slide_name) == (feats.slide_fingerprint, feats.slide_name)

    # The layout other tools (CLAM/TRIDENT-style) read, checked with h5py alone.
    with h5py.File(out, "r") as f:
        assert f["coords"].shape == (7, 2) and f["coords"].dtype == np.int64
        assert f["features"].shape == (7, 5) and f["features"].dtype == np.float32
        assert int(f.attrs["tile_size_l0"]) == 448
        assert float(f.attrs["target_mpp"]) == 1.0
        assert f.attrs["encoder"] == "efficientnet-lite0-imagenet"
        assert int(f.attrs["embedding_dim"]) == 5
        assert int(f.attrs["complete"]) == 1

    # Overwriting replaces the file whole.
    write_features_h5(out, _toy_features(n=3, seed=1))
    assert len(read_features_h5(out)) == 3
    assert _part_files(tmp_path) == []


def test_cache_key_changes_with_everything_that_changes_features():
    base = ("fp", "efficientnet-lite0-imagenet", "v1", {"target_mpp": 1.0, "tile_size_px": 224})
    key = FeatureCache.key(*base)
    assert len(key) == 64
    assert FeatureCache.key("fp", base[1], "v1", {"tile_size_px": 224, "target_mpp": 1.0}) == key  # dict order
    assert FeatureCache.key("fp2", *base[1:]) != key  # other slide content
    assert FeatureCache.key("fp", base[1] + "-bf16", "v1", base[3]) != key  # other encoder
    assert FeatureCache.key("fp", base[1], "v2", base[3]) != key  # other weights
    assert FeatureCache.key("fp", base[1], "v1", {**base[3], "target_mpp": 0.5}) != key  # other grid


def test_cache_drops_incomplete_and_damaged_entries(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    key = FeatureCache.key("fp", "enc", "v", {"a": 1})
    entry = cache.put(key, _toy_features())
    assert entry == cache.path(key) and entry.is_file()
    assert len(cache.get(key)) == 7

    with h5py.File(entry, "a") as f:  # a writer killed before the last attribute
        del f.attrs["complete"]
    assert cache.get(key) is None
    assert not entry.exists()

    cache.put(key, _toy_features())
    with h5py.File(entry, "a") as f:
        f.attrs["complete"] = 0
    assert cache.get(key) is None and not entry.exists()

    cache.put(key, _toy_features())
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a half-copied file
    assert cache.get(key) is None and not entry.exists()

    entry.write_bytes(np.random.default_rng(0).bytes(4096))  # garbage
    assert cache.get(key) is None and not entry.exists()

    assert cache.get(FeatureCache.key("other", "enc", "v", {})) is None


def test_cache_lifecycle_during_analysis(known_tissue_slide, encoder, tmp_path):
    path, _ = known_tissue_slide
    cache = FeatureCache(tmp_path / "cache")
    first = slide_features(path, encoder=encoder, cache=cache)
    (entry,) = _h5_files(cache.root)

    # An entry whose writer never finished is not trusted: recomputed and rewritten complete.
    with h5py.File(entry, "a") as f:
        del f.attrs["complete"]
    res = slide_features(path, encoder=encoder, cache=cache)
    assert res.from_cache is False
    with h5py.File(entry, "r") as f:
        assert int(f.attrs["complete"]) == 1

    # Garbage where the entry was: ignored, recomputed.
    entry.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0garbage" * 500)
    res = slide_features(path, encoder=encoder, cache=cache)
    assert res.from_cache is False
    np.testing.assert_allclose(res.features.features, first.features.features, atol=1e-5)

    # Deleting the whole cache folder is always safe.
    shutil.rmtree(cache.root)
    res = slide_features(path, encoder=encoder, cache=cache)
    assert res.from_cache is False and len(res.features) == 15
    np.testing.assert_allclose(res.features.features, first.features.features, atol=1e-5)
    assert slide_features(path, encoder=encoder, cache=cache).from_cache is True
    assert _part_files(cache.root) == []


def test_unwritable_cache_does_not_cost_the_result(known_tissue_slide, tmp_path):
    path, _ = known_tissue_slide
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    res = slide_features(path, encoder=MeanColourEncoder(), cache=FeatureCache(blocker))
    assert res.from_cache is False and len(res.features) == 15
    np.testing.assert_allclose(res.features.features, np.tile(HE_MEAN_RGB, (15, 1)), atol=6)


# -- damaged slides ---------------------------------------------------------------------------


def test_truncated_slide_is_a_corrupt_slide_error(tmp_path, encoder):
    full = write_tiff_slide(tmp_path / "full.tiff", tissue_image(3000, 3000, [(300, 300, 2700, 2700)]), mpp=0.5)
    data = full.read_bytes()
    cut = tmp_path / "cut.tiff"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(CorruptSlideError) as exc:
        with open_slide(cut) as slide:
            analyse_slide(slide, encoder=encoder, cache=cache)
    assert type(exc.value) is CorruptSlideError
    assert "cut.tiff" in str(exc.value)
    assert _h5_files(cache.root) == []


def test_damaged_tile_data_fails_during_analysis_and_caches_nothing(known_tissue_slide, tmp_path):
    path, _ = known_tissue_slide
    # Default tiles (448 level-0 px -> 224 px) are read from level 1; the mask from level 2.
    damage_level(path, level=1)
    cache = FeatureCache(tmp_path / "cache")
    with open_slide(path) as slide:  # the smallest level is intact, so the slide opens
        assert slide.info.level_count == 3
        with pytest.raises(CorruptSlideError, match="damaged or incomplete"):
            analyse_slide(slide, encoder=MeanColourEncoder(), cache=cache)
    assert _h5_files(cache.root) == [] and _part_files(cache.root) == []


# -- reading tiles ----------------------------------------------------------------------------


@pytest.fixture
def noise_slide_1um(tmp_path) -> Path:
    """1200 x 900 px of random colour at 1.0 µm/px: every tile is different."""
    rgb = np.random.default_rng(7).integers(0, 256, size=(900, 1200, 3), dtype=np.uint8)
    return write_tiff_slide(tmp_path / "noise.tiff", rgb, mpp=1.0)


def test_read_tile_batches_order_shape_and_pixels(noise_slide_1um):
    # Deliberately not row-major, so order has to be kept across batches and reader threads.
    coords = np.array([[896, 448], [0, 0], [224, 672], [448, 224], [0, 448], [672, 0], [896, 672]], np.int64)
    with open_slide(noise_slide_1um) as slide:
        assert slide.mpp == pytest.approx(1.0)
        batches = list(read_tile_batches(slide, coords, 224, 224, batch_size=3, num_readers=2))
        assert [b.shape for b in batches] == [(3, 224, 224, 3), (3, 224, 224, 3), (1, 224, 224, 3)]
        assert all(b.dtype == np.uint8 for b in batches)
        tiles = np.concatenate(batches)
        for (x, y), tile in zip(coords, tiles, strict=True):
            np.testing.assert_array_equal(tile, slide.read_region((int(x), int(y)), 0, (224, 224)))
        assert not np.array_equal(tiles[0], tiles[1])
        assert list(read_tile_batches(slide, coords[:0], 224, 224)) == []


def test_read_tile_batches_uses_the_pyramid_and_box_resizes(known_tissue_slide):
    path, known = known_tissue_slide
    coords = np.array([[448, 448], [2240, 1344], [0, 0]], np.int64)
    with open_slide(path) as slide:
        # 448 level-0 px -> 224 px: exactly pyramid level 1 (downsample 2), no resampling.
        tiles = np.concatenate(list(read_tile_batches(slide, coords, 448, 224, batch_size=2)))
        for (x, y), tile in zip(coords, tiles, strict=True):
            np.testing.assert_array_equal(tile, slide.read_region((int(x), int(y)), 1, (224, 224)))
        # Tissue tiles carry the H&E colour, the corner tile is glass.
        np.testing.assert_allclose(tiles[0].reshape(-1, 3).mean(0), HE_MEAN_RGB, atol=6)
        assert tiles[2].min() > 200

        # 336 level-0 px -> 224 px (downsample 1.5): read at level 0 and box-filtered.
        (one,) = list(read_tile_batches(slide, coords[:1], 336, 224))
        src = slide.read_region((448, 448), 0, (336, 336))
        expected = np.asarray(Image.fromarray(src).resize((224, 224), Image.Resampling.BOX))
        np.testing.assert_array_equal(one[0], expected)
        np.testing.assert_allclose(one[0].reshape(-1, 3).mean(0), src.reshape(-1, 3).mean(0), atol=1.0)
