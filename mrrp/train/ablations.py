"""Ablations of the fusion model on cached features, in one report.

    .venv/bin/python -m mrrp.train.ablations --manifest data/cohort/manifest.csv --out docs/ablations.json

Every variant is a k-fold CV ensemble trained on the training split, scored on the internal test
split and the external site by the mean of its members' centred log-risks (Harrell's C):

- the full model with each query strategy (learned fusion queries, pathology as query, clinical as query);
- each single modality (every other modality hidden from training and test patients alike);
- each modality left out;
- absent-modality handling: learnable compensation vs zero-filling vs mean-filling, each scored
  under every missing pattern (all 15 non-empty subsets of available modalities) on the test split;
- scikit-survival CoxPH on the clinical fields (the classical baseline) and the oracle (true hazard);
- per-modality ceilings (mrrp.train.ceilings): a perfect reader of the generator's measurements and a
  linear probe of the frozen features, to show where signal is lost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrrp.io.manifest import read_manifest
from mrrp.model.batch import collate
from mrrp.model.fusion import MODALITIES, FusionConfig
from mrrp.train.pipeline import default_model_config, load_cases
from mrrp.train.trainer import TrainConfig, cross_validate, harrell_c, predict

Log = Callable[[str], None]


def _restrict(batch: dict[str, torch.Tensor], keep: np.ndarray) -> dict[str, torch.Tensor]:
    """The batch with only the modalities in ``keep`` (4,) bool counted as present."""
    out = dict(batch)
    out["present"] = batch["present"] & torch.as_tensor(keep)[None, :]
    return out


def missing_pattern_masks() -> list[np.ndarray]:
    """Every non-empty subset of modalities that stays available, (4,) bool each, all-present first."""
    n = len(MODALITIES)
    masks = [np.array([(code >> j) & 1 for j in range(n)], bool) for code in range(1, 2**n)]
    return sorted(masks, key=lambda k: (-int(k.sum()), [-int(v) for v in k]))


def pattern_name(kept: np.ndarray) -> str:
    if kept.all():
        return "all_present"
    if int(kept.sum()) == len(MODALITIES) - 1:
        return f"without_{MODALITIES[int(np.flatnonzero(~kept)[0])]}"
    return "only_" + "+".join(m for m, k in zip(MODALITIES, kept, strict=True) if k)


def ensemble_scores(models, batch: dict[str, torch.Tensor], offsets: np.ndarray) -> np.ndarray:
    return np.mean([predict(m, batch) - o for m, o in zip(models, offsets, strict=True)], axis=0)


def run_variant(
    cfg: FusionConfig, data: dict, keep: np.ndarray, train_cfg: TrainConfig, missing_patterns: bool = False
) -> dict:
    from mrrp._threads import torch_threads

    tb = _restrict(data["train"]["batch"], keep)
    models, oof, _ = cross_validate(cfg, tb, data["train"]["time"], data["train"]["event"], train_cfg)
    with torch_threads(1):
        offsets = np.array([predict(m, tb).mean() for m in models])
        out = {"oof_c": harrell_c(oof, data["train"]["time"], data["train"]["event"])}
        for split in ("test", "external"):
            b = _restrict(data[split]["batch"], keep)
            out[f"c_{split}"] = harrell_c(
                ensemble_scores(models, b, offsets), data[split]["time"], data[split]["event"]
            )
        if missing_patterns:
            # Every pattern of available modalities (all 15 non-empty subsets), imposed on every test
            # patient on top of what each already lacks. Keys "without_<m>" for the single-missing
            # patterns (the target), "only_<a>+<b>" naming what is kept for the others.
            out["c_test_by_missing"] = {}
            for kept in missing_pattern_masks():
                b = _restrict(data["test"]["batch"], keep & kept)
                scores = ensemble_scores(models, b, offsets)
                out["c_test_by_missing"][pattern_name(kept)] = harrell_c(
                    scores, data["test"]["time"], data["test"]["event"]
                )
    return out


@dataclass
class _Cohort:
    """The manifest's patients, per split and all together (train, test, external in that order)."""

    data: dict  # split -> {"batch", "time", "event"}
    cases: list  # every split's cases, concatenated
    time: np.ndarray  # (N,) months
    event: np.ndarray  # (N,) 0/1
    split_idx: dict[str, np.ndarray]  # split -> indices into cases


def _load_cohort(rows: list, cache_dir: str | None) -> _Cohort:
    data: dict = {}
    all_cases, all_time, all_event, split_idx = [], [], [], {}
    for split in ("train", "test", "external"):
        sel = [r for r in rows if r.split == split]
        cases = load_cases(sel, cache_dir)
        t = np.array([r.time_months for r in sel], float)
        e = np.array([r.event for r in sel], int)
        data[split] = {"batch": collate(cases), "time": t, "event": e}
        split_idx[split] = np.arange(len(all_cases), len(all_cases) + len(cases))
        all_cases += cases
        all_time.append(t)
        all_event.append(e)
    return _Cohort(data, all_cases, np.concatenate(all_time), np.concatenate(all_event), split_idx)


def _variant_specs() -> list[tuple[str, FusionConfig, np.ndarray, bool]]:
    """(name, model config, modalities kept, score under every missing pattern) for each variant, in report order."""
    everything = np.ones(len(MODALITIES), bool)
    specs = [
        (f"query={s}", default_model_config(query_strategy=s), everything, s == "learned")
        for s in ("learned", "pathology", "clinical")
    ]
    specs += [(f"absent_fill={f}", default_model_config(absent_fill=f), everything, True) for f in ("zero", "mean")]
    specs.append(("compensation unconditioned", default_model_config(conditioned_compensation=False), everything, True))
    for j, m in enumerate(MODALITIES):
        single = np.zeros(len(MODALITIES), bool)
        single[j] = True
        specs.append((f"only_{m}", default_model_config(), single, False))
        specs.append((f"without_{m}", default_model_config(), ~single, False))
    return specs


def _clinical_coxph(cohort: _Cohort) -> dict[str, float]:
    """Classical baseline: CoxPH on the clinical fields, fitted on the training split. A small ridge
    penalty: patients without a record make every "unknown" indicator collinear, and the
    unpenalised Newton steps diverge on that design."""
    from mrrp.train.gbsg2 import coxph_fold

    cox = {}
    for split in ("test", "external"):
        train_idx, test_idx = cohort.split_idx["train"], cohort.split_idx[split]
        scores, _ = coxph_fold(cohort.cases, cohort.time, cohort.event, train_idx, test_idx, alpha=0.01)
        cox[f"c_{split}"] = harrell_c(scores, cohort.data[split]["time"], cohort.data[split]["event"])
    return cox


def _oracle_c(truth: Path, rows: list, cohort: _Cohort) -> dict[str, float]:
    """Harrell's C of the generator's true log-hazard, when the cohort ships its truth table."""
    if not truth.is_file():
        return {}
    import pandas as pd

    tr = pd.read_csv(truth).set_index("patient_id")
    out = {}
    for split in ("test", "external"):
        ids = [r.patient_id for r in rows if r.split == split]
        data = cohort.data[split]
        out[f"oracle_c_{split}"] = harrell_c(tr.loc[ids, "log_hazard"].to_numpy(), data["time"], data["event"])
    return out


def _ceilings(cohort: _Cohort, truth: Path) -> dict:
    from mrrp.train.ceilings import modality_ceilings

    split_of = np.empty(len(cohort.cases), dtype=object)
    for split, idx in cohort.split_idx.items():
        split_of[idx] = split
    return modality_ceilings(cohort.cases, cohort.time, cohort.event, split_of.astype(str), truth)


def run_ablations(
    manifest: str | Path,
    *,
    folds: int = 3,
    seed: int = 0,
    cache_dir: str | None = None,
    log: Log | None = None,
    partial_out: Path | None = None,
    only: set[str] | None = None,
    previous: dict | None = None,
) -> dict:
    t0 = time.perf_counter()
    rows = read_manifest(manifest)
    cohort = _load_cohort(rows, cache_dir)
    train_cfg = TrainConfig(folds=folds, seed=seed)
    report: dict = {"folds": folds, "seed": seed, "variants": dict((previous or {}).get("variants", {}))}
    for name, cfg, keep, patterns in _variant_specs():
        if only is not None and name not in only:
            continue
        report["variants"][name] = r = run_variant(cfg, cohort.data, keep, train_cfg, missing_patterns=patterns)
        if partial_out is not None:  # a late failure must not lose half an hour of training
            partial_out.write_text(json.dumps(report, indent=2, default=float) + "\n")
        if log:
            log(f"{name}: test C {r['c_test']:.3f}, external C {r['c_external']:.3f}")

    cox = _clinical_coxph(cohort)
    report["clinical_coxph"] = cox
    singles = {m: report["variants"][f"only_{m}"]["c_test"] for m in MODALITIES}
    report["best_single_modality"] = max(singles, key=singles.get)
    report["best_single_modality_cindex_internal"] = singles[report["best_single_modality"]]
    report["cindex_clinical_cox_internal"] = cox["c_test"]
    truth = Path(manifest).with_name("truth.csv")
    report.update(_oracle_c(truth, rows, cohort))
    report["ceilings"] = _ceilings(cohort, truth)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", default="data/cohort/manifest.csv")
    ap.add_argument("--out", default="docs/ablations.json")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="+", help="re-run only these variants, keeping the others from --out")
    args = ap.parse_args(argv)
    partial = Path(args.out).with_suffix(".partial.json")
    previous = json.loads(Path(args.out).read_text()) if args.only and Path(args.out).is_file() else None
    report = run_ablations(
        args.manifest,
        folds=args.folds,
        seed=args.seed,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        partial_out=partial,
        only=set(args.only) if args.only else None,
        previous=previous,
    )
    Path(args.out).write_text(json.dumps(report, indent=2, default=float) + "\n")
    partial.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
