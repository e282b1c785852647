"""Model speed: one patient from cached features through the whole ensemble, and a training fold.

    .venv/bin/python benchmarks/bench_model.py [--cohort data/cohort] [--model assets/models/mrrp-demo]

Needs the cohort's features in the cache (they are after `make model`). Measures, in one run:
  predict_ms   one patient, 5 ensemble members, survival curve and intervals (median of 50)
  naive_ms     the same forward passes at torch's default thread count (baseline for the 1-thread choice)
  train_s      5-fold CV training from cached features (full-batch, early stopping, 1 torch thread)
  fold_s       one fold at 1 thread vs at torch's default thread count (the baseline)
Writes benchmarks/model_results.json and appends a row to benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _time_predict(bundle, cases: list) -> list[float]:
    """Seconds per one-patient prediction through the library path (50 patients, after a warm-up)."""
    from mrrp.model.predict import predict_cases

    predict_cases(bundle, [cases[0]])  # warm-up
    times = []
    for i in range(50):
        t = time.perf_counter()
        predict_cases(bundle, [cases[i % len(cases)]])
        times.append(time.perf_counter() - t)
    return times


def _time_naive_predict(bundle, cases: list) -> list[float]:
    """The same forward passes and summary at torch's default thread count: the baseline for 1 thread."""
    import torch

    from mrrp.model.batch import collate
    from mrrp.model.survival import ensemble_summary

    naive = []
    for i in range(50):
        t = time.perf_counter()
        batch = collate([cases[i % len(cases)]])
        with torch.no_grad():  # default threads, no single-thread context
            lr = np.stack(
                [m(batch)[0].double().numpy() - o for m, o in zip(bundle.models, bundle.member_offsets, strict=True)]
            )
        ensemble_summary(lr, bundle.baselines, horizons=(36, 60, 84), time_grid_months=np.arange(0, 121, 1.0))
        naive.append(time.perf_counter() - t)
    return naive


def _time_training(cases: list, train: list) -> tuple[float, dict[str, float]]:
    """(5-fold CV seconds, fixed 5 x 60 epochs on 300 patients at 1 thread and at default threads)."""
    from mrrp._threads import torch_threads
    from mrrp.model.batch import collate
    from mrrp.train.pipeline import default_model_config
    from mrrp.train.trainer import TrainConfig, _cross_validate, cross_validate

    tm = np.array([r.time_months for r in train])
    ev = np.array([r.event for r in train])
    t = time.perf_counter()
    cross_validate(default_model_config(), collate(cases), tm, ev, TrainConfig(folds=5))
    cv_s = time.perf_counter() - t
    fold = {}
    one_fold = TrainConfig(folds=5, max_epochs=60, patience_epochs=1000)  # fixed work: 60 epochs per fold
    for label, threads in (("one_thread", 1), ("default_threads", None)):
        t = time.perf_counter()
        if threads:
            with torch_threads(threads):
                _cross_validate(default_model_config(), collate(cases[:300]), tm[:300], ev[:300], one_fold, None)
        else:
            _cross_validate(default_model_config(), collate(cases[:300]), tm[:300], ev[:300], one_fold, None)
        fold[label] = round(time.perf_counter() - t, 1)
    return cv_s, fold


def _write_results(result: dict) -> None:
    fold = result["train_5x60_epochs_seconds"]
    print(json.dumps(result, indent=2))
    (HERE / "model_results.json").write_text(json.dumps(result, indent=2) + "\n")
    with (HERE / "results.md").open("a") as fh:
        fh.write(
            f"\nModel ({result['date']}): one patient from cached features through the {result['ensemble_members']}-member "
            f"ensemble {result['predict_ms_median']} ms (median, p95 {result['predict_ms_p95']} ms; at torch's default "
            f"{result['default_torch_threads']} threads {result['naive_predict_ms_median']} ms); 5-fold training from "
            f"cached features {result['train_5fold_seconds']} s on {result['n_train']} patients; fixed 5 x 60 epochs on 300 "
            f"patients {fold['one_thread']} s at 1 thread vs {fold['default_threads']} s at default threads "
            f"(`benchmarks/bench_model.py`).\n"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", default="data/cohort")
    ap.add_argument("--model", default="assets/models/mrrp-demo")
    args = ap.parse_args()

    import torch

    from mrrp.io.manifest import read_manifest
    from mrrp.model.bundle import load_bundle
    from mrrp.train.pipeline import load_cases

    bundle = load_bundle(args.model)
    rows = read_manifest(Path(args.cohort) / "manifest.csv")
    train = [r for r in rows if r.split == "train"]
    t0 = time.perf_counter()
    cases = load_cases(train)  # from the cache
    load_s = time.perf_counter() - t0
    times = _time_predict(bundle, cases)
    naive = _time_naive_predict(bundle, cases)
    cv_s, fold = _time_training(cases, train)
    _write_results(
        {
            "date": dt.date.today().isoformat(),
            "predict_ms_median": round(1000 * float(np.median(times)), 1),
            "predict_ms_p95": round(1000 * float(np.quantile(times, 0.95)), 1),
            "ensemble_members": len(bundle.models),
            "naive_predict_ms_median": round(1000 * float(np.median(naive)), 1),
            "default_torch_threads": torch.get_num_threads(),
            "train_5fold_seconds": round(cv_s, 1),
            "train_5x60_epochs_seconds": fold,
            "load_cached_features_seconds": round(load_s, 1),
            "n_train": len(train),
        }
    )


if __name__ == "__main__":
    main()
