"""Model speed: one patient from cached features through the whole ensemble, and a training fold.

    .venv/bin/python benchmarks/bench_model.py [--cohort data/cohort] [--model assets/models/mrrp-demo]

Needs the cohort's features in the cache (they are after `make model`). Measures, in one run:
  predict_ms   one patient, 5 ensemble members, survival curve and intervals (median of 50)
  train_s      5-fold CV training from cached features (full-batch, early stopping)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", default="data/cohort")
    ap.add_argument("--model", default="assets/models/mrrp-demo")
    args = ap.parse_args()

    from mrrp.io.manifest import read_manifest
    from mrrp.model.bundle import load_bundle
    from mrrp.model.predict import predict_cases
    from mrrp.train.pipeline import default_model_config, load_cases
    from mrrp.train.trainer import TrainConfig, cross_validate

    bundle = load_bundle(args.model)
    rows = read_manifest(Path(args.cohort) / "manifest.csv")
    train = [r for r in rows if r.split == "train"]
    t0 = time.perf_counter()
    cases = load_cases(train)  # from the cache
    load_s = time.perf_counter() - t0
    one = [cases[0]]
    predict_cases(bundle, one)  # warm-up
    times = []
    for i in range(50):
        t = time.perf_counter()
        predict_cases(bundle, [cases[i % len(cases)]])
        times.append(time.perf_counter() - t)
    from mrrp.model.batch import collate

    tm = np.array([r.time_months for r in train])
    ev = np.array([r.event for r in train])
    t = time.perf_counter()
    cross_validate(default_model_config(), collate(cases), tm, ev, TrainConfig(folds=5))
    cv_s = time.perf_counter() - t
    result = {
        "date": dt.date.today().isoformat(),
        "predict_ms_median": round(1000 * float(np.median(times)), 1),
        "predict_ms_p95": round(1000 * float(np.quantile(times, 0.95)), 1),
        "ensemble_members": len(bundle.models),
        "train_5fold_seconds": round(cv_s, 1),
        "load_cached_features_seconds": round(load_s, 1),
        "n_train": len(train),
    }
    print(json.dumps(result, indent=2))
    (HERE / "model_results.json").write_text(json.dumps(result, indent=2) + "\n")
    with (HERE / "results.md").open("a") as fh:
        fh.write(
            f"\nModel ({result['date']}): one patient from cached features through the {result['ensemble_members']}-member "
            f"ensemble {result['predict_ms_median']} ms (median, p95 {result['predict_ms_p95']} ms); 5-fold training from "
            f"cached features {result['train_5fold_seconds']} s on {result['n_train']} patients (`benchmarks/bench_model.py`).\n"
        )


if __name__ == "__main__":
    main()
