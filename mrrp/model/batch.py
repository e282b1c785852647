"""Padding a list of CaseFeatures into the tensors MRRP.forward reads."""

from __future__ import annotations

import numpy as np
import torch

from mrrp.features.case import CaseFeatures


def _pad(arrays: list[np.ndarray], dim: int, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, dim) float32 and (B, N) bool mask; at least one (masked) slot so shapes stay valid."""
    n = max([len(a) for a in arrays] + [1])
    if max_len is not None:
        n = min(n, max_len)
    out = np.zeros((len(arrays), n, dim), np.float32)
    mask = np.zeros((len(arrays), n), bool)
    for i, a in enumerate(arrays):
        k = min(len(a), n)
        if k:
            out[i, :k] = a[:k]
            mask[i, :k] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


def collate(cases: list[CaseFeatures], max_tiles: int | None = None) -> dict[str, torch.Tensor]:
    """Pad token arrays; ``present`` (B, 4) follows MODALITIES (slide, ultrasound, path_report, clinical)."""
    tiles, tiles_mask = _pad(
        [c.tiles for c in cases], cases[0].tiles.shape[1] if len(cases[0].tiles) else 1280, max_tiles
    )
    us, us_mask = _pad([c.us_images for c in cases], 1280)
    usr, usr_mask = _pad([c.us_report for c in cases], 384)
    pr, pr_mask = _pad([c.path_report for c in cases], 384)
    return {
        "tiles": tiles,
        "tiles_mask": tiles_mask,
        "us_images": us,
        "us_images_mask": us_mask,
        "us_report": usr,
        "us_report_mask": usr_mask,
        "path_report": pr,
        "path_report_mask": pr_mask,
        "clin_numeric": torch.from_numpy(np.stack([c.clin_numeric for c in cases])),
        "clin_known": torch.from_numpy(np.stack([c.clin_known for c in cases])),
        "clin_categorical": torch.from_numpy(np.stack([c.clin_categorical for c in cases])),
        "present": torch.from_numpy(np.stack([c.present for c in cases])),
    }


def select(batch: dict[str, torch.Tensor], index: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
    """Rows ``index`` of a collated batch."""
    idx = torch.as_tensor(index, dtype=torch.long)
    return {k: v[idx] for k, v in batch.items()}
