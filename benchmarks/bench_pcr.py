"""pCR speed: one patient's MRI from files to probability, stages and attention, on CPU.

    .venv/bin/python benchmarks/bench_pcr.py [--model assets/models/pcr-demo] [--repeats 7]

Patient: the first demo MRI patient (a zip of a 4-phase DICOM series, 71 x 71 x 30 voxels per phase,
tumour mask NIfTI), generated into a temporary cache. Measures, in one run (medians of ``--repeats``):

  read_s        reading and checking the zip of DICOM files, the mask, and resampling to the working grid
  naive_read_s  the same with the general (oblique) resampler for every volume instead of the separable
                zoom-and-shift path mrrp takes when the MRI is axis-aligned
  model_s       the network on one patient: 4 flips in one batch on 1 torch thread (what mrrp does)
  naive_s       the same 4 flips one at a time with torch's default thread count (the baseline)
  total_s       mrrp.pcr.predict.predict_files end to end (read + model), the number a user waits for

The outputs of the two model variants are checked to agree. Writes benchmarks/pcr_results.json and
appends a row under "## pCR" in benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _timed(fn, n: int):
    """(median seconds, max seconds, the last call's result) of ``n`` calls of ``fn``."""
    times, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times), out


def _read_working(demo, *, fast_path: bool = True):
    from mrrp.pcr.io import read_mask, read_mri, to_working

    study = read_mri(demo.mri)
    return to_working(study, read_mask(demo.mask, study), fast_path=fast_path)


def _naive_predict(bundle, work, clinical):
    """Baseline: torch's own thread count (all cores) and the 4 flips one forward pass at a time."""
    import os

    import torch

    from mrrp._threads import torch_threads
    from mrrp.pcr.predict import predict_working

    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        with torch_threads(os.cpu_count() or 1):
            return predict_working(bundle, work, clinical, batched=False)
    finally:
        torch.set_num_threads(before)


def _measure(bundle, repeats: int) -> dict:
    """Every timing on the first demo patient, with the fast and naive paths checked to agree."""
    import numpy as np

    from mrrp.pcr.clinical import read_clinical_json
    from mrrp.pcr.demo import ensure_pcr_demos
    from mrrp.pcr.io import read_mri
    from mrrp.pcr.predict import predict_files, predict_working

    with tempfile.TemporaryDirectory() as tmp:
        demo = next(iter(ensure_pcr_demos(tmp).values()))
        clinical = read_clinical_json(demo.clinical)
        predict_files(bundle, demo.mri, mask=demo.mask, clinical=clinical)  # warm-up: imports, first allocations
        read_s, _, work = _timed(lambda: _read_working(demo), repeats)
        naive_read_s, _, work_general = _timed(lambda: _read_working(demo, fast_path=False), repeats)
        model_s, _, fast = _timed(lambda: predict_working(bundle, work, clinical), repeats)
        naive_s, _, slow = _timed(lambda: _naive_predict(bundle, work, clinical), repeats)
        total_s, total_max, pred = _timed(
            lambda: predict_files(bundle, demo.mri, mask=demo.mask, clinical=clinical), repeats
        )
        study = read_mri(demo.mri)
    assert abs(fast.probability - slow.probability) < 1e-5 and np.allclose(fast.attention, slow.attention, atol=1e-7)
    assert np.allclose(work.channels, work_general.channels, atol=1e-3)  # both resamplers give the same volume
    return {
        "study": study,
        "read_s": read_s,
        "naive_read_s": naive_read_s,
        "model_s": model_s,
        "naive_s": naive_s,
        "total_s": total_s,
        "total_max": total_max,
        "probability": pred.probability,
    }


def _append_results_md(result: dict) -> None:
    md = HERE / "results.md"
    text = md.read_text() if md.is_file() else ""
    header = (
        "\n## pCR\n\n`benchmarks/bench_pcr.py`: one patient's DCE-MRI (zip of a DICOM series + mask) to pCR "
        "probability, stage outputs and attention on CPU. Naive read = the general oblique resampler for every volume; "
        "model = 4 flips in one batch on 1 torch thread, naive model = the same flips one at a time on torch's "
        "default threads.\n\n"
        "| date | machine | patient | read + resample s | naive read + resample s | model s | naive model s | "
        "total s (median) | total s (max) |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    row = (
        f"| {result['date']} | {result['machine']} | {result['patient']} | {result['read_s_median']} | "
        f"{result['naive_read_s_median']} | {result['model_s_median']} | {result['naive_model_s_median']} | "
        f"{result['total_s_median']} | {result['total_s_max']} |\n"
    )
    last_section = text[text.rfind("\n## ") :] if "\n## " in text else ""
    with open(md, "a") as fh:  # append only: other benchmarks append their own sections
        fh.write(row if last_section.startswith("\n## pCR\n") else header + row)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(HERE.parent / "assets" / "models" / "pcr-demo"))
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    import os

    from mrrp.pcr.bundle import load_pcr_bundle

    m = _measure(load_pcr_bundle(args.model), args.repeats)
    study = m["study"]
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{_cpu()}, {os.cpu_count()} cores",
        "patient": f"demo DICOM zip, {study.n_phases} phases of {' x '.join(map(str, study.shape))} voxels, mask",
        "read_s_median": round(m["read_s"], 3),
        "naive_read_s_median": round(m["naive_read_s"], 3),
        "read_speedup": round(m["naive_read_s"] / m["read_s"], 2),
        "model_s_median": round(m["model_s"], 4),
        "naive_model_s_median": round(m["naive_s"], 4),
        "model_speedup": round(m["naive_s"] / m["model_s"], 2),
        "total_s_median": round(m["total_s"], 3),
        "total_s_max": round(m["total_max"], 3),
        "repeats": args.repeats,
        "within_5_s": m["total_max"] <= 5.0,
        "torch_threads_naive": os.cpu_count(),
        "pcr_probability": round(m["probability"], 4),
    }
    (HERE / "pcr_results.json").write_text(json.dumps(result, indent=2) + "\n")
    _append_results_md(result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
