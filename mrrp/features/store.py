"""Tile features on disk: HDF5 files in the field's layout, and a content-addressed cache.

File layout (one slide, readable by CLAM/TRIDENT-style tools):
  ``coords``   (N, 2) int64, tile top-left (x, y) in level-0 pixels
  ``features`` (N, D) float32
  ``tissue_fraction`` (N,) float32
  attributes: ``tile_size_l0``, ``tile_size_px``, ``target_mpp``, ``stride_l0``, ``encoder``,
  ``encoder_version``, ``embedding_dim``, ``slide_fingerprint``, ``slide_name``, ``mrrp_version``,
  ``mask_downsample``, ``complete`` (written last)
  ``tissue_mask`` (h, w) uint8, optional: the tissue mask the tiles were chosen from

Writes go to a temporary file in the same folder and are renamed into place, so a reader
never sees a half-written file; a file without ``complete == 1`` is treated as absent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp import __version__
from mrrp._fs import atomic_path, remove_stale_temp_files
from mrrp._hashing import sha256_text
from mrrp.errors import InputError
from mrrp.settings import default_cache_dir

# Bump when tissue detection or tiling changes which tiles a slide yields.
PIPELINE_VERSION = "tiles-2"


@dataclass
class SlideFeatures:
    """Per-tile embeddings of one slide, with where each tile came from."""

    coords_l0: np.ndarray  # (N, 2) int64
    features: np.ndarray  # (N, D) float32
    tissue_fraction: np.ndarray  # (N,) float32
    tile_size_l0: int
    tile_size_px: int
    target_mpp: float
    stride_l0: int
    encoder: str
    encoder_version: str
    slide_fingerprint: str
    slide_name: str = ""
    tissue_mask: np.ndarray | None = None  # (h, w) bool, the mask the tiles were chosen from
    mask_downsample: float | None = None  # level-0 px per mask px

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(self.features.shape[1])


def write_features_h5(path: str | os.PathLike[str], feats: SlideFeatures) -> Path:
    """Write ``feats`` to ``path`` atomically (temporary file + rename)."""
    import h5py

    out = Path(path)
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("coords", data=feats.coords_l0.astype(np.int64))
            f.create_dataset("features", data=feats.features.astype(np.float32))
            f.create_dataset("tissue_fraction", data=feats.tissue_fraction.astype(np.float32))
            if feats.tissue_mask is not None:
                f.create_dataset("tissue_mask", data=feats.tissue_mask.astype(np.uint8), compression="gzip")
                f.attrs["mask_downsample"] = float(feats.mask_downsample or 0.0)
            f.attrs.update(
                {
                    "tile_size_l0": int(feats.tile_size_l0),
                    "tile_size_px": int(feats.tile_size_px),
                    "target_mpp": float(feats.target_mpp),
                    "stride_l0": int(feats.stride_l0),
                    "encoder": feats.encoder,
                    "encoder_version": feats.encoder_version,
                    "embedding_dim": int(feats.features.shape[1]),
                    "slide_fingerprint": feats.slide_fingerprint,
                    "slide_name": feats.slide_name,
                    "mrrp_version": __version__,
                }
            )
            f.attrs["complete"] = 1
    return out


def read_features_h5(path: str | os.PathLike[str]) -> SlideFeatures:
    """Read a feature file written by :func:`write_features_h5`."""
    import h5py

    p = Path(path)
    try:
        with h5py.File(p, "r") as f:
            if int(f.attrs.get("complete", 0)) != 1:
                raise InputError(f"The feature file '{p.name}' is incomplete; compute the features again.")
            a = f.attrs
            return SlideFeatures(
                coords_l0=f["coords"][:],
                features=f["features"][:],
                tissue_fraction=f["tissue_fraction"][:] if "tissue_fraction" in f else np.ones(len(f["coords"])),
                tile_size_l0=int(a["tile_size_l0"]),
                tile_size_px=int(a["tile_size_px"]),
                target_mpp=float(a["target_mpp"]),
                stride_l0=int(a.get("stride_l0", a["tile_size_l0"])),
                encoder=str(a["encoder"]),
                encoder_version=str(a["encoder_version"]),
                slide_fingerprint=str(a.get("slide_fingerprint", "")),
                slide_name=str(a.get("slide_name", "")),
                tissue_mask=f["tissue_mask"][:].astype(bool) if "tissue_mask" in f else None,
                mask_downsample=float(a["mask_downsample"]) if "mask_downsample" in a else None,
            )
    except (OSError, KeyError) as exc:
        raise InputError(f"'{p.name}' is not a readable mrrp feature file.") from exc


class FeatureCache:
    """Tile features keyed by slide content + encoder + grid + pipeline version.

    Deleting any file or the whole folder is always safe: it is recomputed on next use.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def key(slide_fingerprint: str, encoder: str, encoder_version: str, params: dict) -> str:
        payload = json.dumps(
            {
                "slide": slide_fingerprint,
                "encoder": encoder,
                "encoder_version": encoder_version,
                "params": params,
                "pipeline": PIPELINE_VERSION,
            },
            sort_keys=True,
        )
        return sha256_text(payload)

    def path(self, key: str) -> Path:
        return self.root / "features" / key[:2] / f"{key}.h5"

    def get(self, key: str) -> SlideFeatures | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return read_features_h5(p)
        except InputError:
            # A damaged entry (disk full, killed copy) is dropped, not trusted.
            p.unlink(missing_ok=True)
            return None

    def put(self, key: str, feats: SlideFeatures) -> Path:
        # Writes killed half-way (a closed session, a full disk) leave temporary files that nothing renames.
        remove_stale_temp_files(self.root / "features")
        return write_features_h5(self.path(key), feats)
