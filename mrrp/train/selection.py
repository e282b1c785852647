"""How the bundled model's settings were chosen: candidate settings compared by the out-of-fold
Harrell's C of a 5-fold CV on the training split only.

    .venv/bin/python -m mrrp.train.selection --manifest data/cohort/manifest.csv --out docs/model_selection.json

The internal test split and the external site are scored too, so the table shows how the choice
transfers, but they are never used to choose (choosing on them would make the reported test
C-index optimistic). ``CANDIDATES`` lists every setting that was tried; the winner becomes
``mrrp.train.pipeline.default_model_config`` / ``default_train_config``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mrrp._fs import atomic_write_text

# name → (FusionConfig overrides, TrainConfig overrides); the linear clinical term is off unless named,
# as it was when the earlier candidates were run.
CANDIDATES: dict[str, tuple[dict, dict]] = {
    "first bundle (d 96, wd 1e-3, dropout 0.1)": ({"d": 96, "dropout": 0.1}, {"weight_decay": 1e-3}),
    "regularised (d 64, wd 1e-2, dropout 0.25)": ({"d": 64, "dropout": 0.25}, {"weight_decay": 1e-2}),
    "clinical as query": ({"d": 96, "dropout": 0.1, "query_strategy": "clinical"}, {"weight_decay": 1e-3}),
    "regularised, clinical as query": (
        {"d": 64, "dropout": 0.25, "query_strategy": "clinical"},
        {"weight_decay": 1e-2},
    ),
    "per-modality Cox heads (aux 0.5)": (
        {"d": 96, "dropout": 0.1, "aux_heads": True},
        {"weight_decay": 1e-3, "aux_weight": 0.5},
    ),
    "tile dropout 0.5": ({"d": 96, "dropout": 0.1}, {"weight_decay": 1e-3, "tile_dropout": 0.5}),
    "regularised + linear clinical term": (
        {"d": 64, "dropout": 0.25, "clinical_linear": True},
        {"weight_decay": 1e-2},
    ),
}


def run_selection(
    manifest: str | Path,
    names: list[str] | None = None,
    log=None,
    cache_dir: str | Path | None = None,
    **train_overrides,
) -> dict:
    """Every candidate (or ``names``) trained by k-fold CV on the training split; the best OOF C is chosen.
    ``train_overrides`` (e.g. ``folds``, ``max_epochs``) apply to every candidate alike (used by tests)."""
    from mrrp._threads import torch_threads
    from mrrp.io.manifest import read_manifest
    from mrrp.model.batch import collate, select
    from mrrp.train.pipeline import default_model_config, load_cases
    from mrrp.train.trainer import TrainConfig, cross_validate, harrell_c, predict

    rows = read_manifest(manifest)
    cases = load_cases(rows, cache_dir)
    split = np.array([r.split for r in rows])
    t = np.array([r.time_months for r in rows], float)
    e = np.array([r.event for r in rows], int)
    idx = {s: np.flatnonzero(split == s) for s in ("train", "test", "external")}
    batch = collate(cases)
    train_batch = select(batch, idx["train"])
    results = {}
    for name in names or list(CANDIDATES):
        model_kw, train_kw = CANDIDATES[name]
        t0 = time.perf_counter()
        models, oof, infos = cross_validate(
            default_model_config(**{"clinical_linear": False, **model_kw}),
            train_batch,
            t[idx["train"]],
            e[idx["train"]],
            TrainConfig(**{**train_kw, **train_overrides}),
        )
        with torch_threads(1):
            member = np.stack([predict(m, batch) for m in models])
        member -= member[:, idx["train"]].mean(axis=1, keepdims=True)
        ens = member.mean(axis=0)
        results[name] = {
            "fusion": model_kw,
            "training": train_kw,
            "oof_c_train": harrell_c(oof, t[idx["train"]], e[idx["train"]]),
            "c_test": harrell_c(ens[idx["test"]], t[idx["test"]], e[idx["test"]]),
            "c_external": harrell_c(ens[idx["external"]], t[idx["external"]], e[idx["external"]]),
            "best_epochs": [i["best_epoch"] for i in infos],
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if log:
            log(f"{name}: OOF C {results[name]['oof_c_train']:.3f}")
    chosen = max(results, key=lambda k: results[k]["oof_c_train"])
    return {
        "criterion": "out-of-fold Harrell's C, 5-fold CV on the training split",
        "chosen": chosen,
        "candidates": results,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", default="data/cohort/manifest.csv")
    ap.add_argument("--out", default="docs/model_selection.json")
    ap.add_argument("--only", nargs="*", help="candidate names (default: all)")
    args = ap.parse_args(argv)
    report = run_selection(args.manifest, args.only, log=lambda m: print(m, file=sys.stderr, flush=True))
    atomic_write_text(args.out, json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
