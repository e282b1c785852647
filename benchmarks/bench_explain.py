"""Explanation speed: every explanation of one patient from cached features, batched vs naive.

    .venv/bin/python benchmarks/bench_explain.py [--cohort data/cohort] [--model assets/models/mrrp-demo]

Needs the cohort's features in the cache (they are after `make model`). Takes the first internal test
patient with all four modalities, and measures ``explain_case`` (Shapley over all modality subsets,
attention, tile and clinical Integrated Gradients at 32 steps, sentence occlusion, ultrasound
Grad-CAM) in one run, median of ``--repeats``:

  batched   what mrrp does: the 16 Shapley subsets, the IG steps and the occluded sentences each go
            through an ensemble member as one batch
  naive     the same computation one row per forward pass (mrrp.explain.explain.MAX_CHUNK_ELEMENTS = 1),
            i.e. unbatched subsets, IG steps and occlusions; results are checked to be the same

Writes benchmarks/explain_results.json and adds a row to the "## Explanations" section of
benchmarks/results.md (creating the section at the end if it is not there; other lines are untouched).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

HERE = Path(__file__).resolve().parent
SECTION = "## Explanations"
TABLE_HEADER = (
    "| date | machine | patient | tiles | US images | sentences | batched s (median) | naive s (median) | "
    "speed-up | Shapley s | tile IG s | clinical IG s | reports s | Grad-CAM s | load from cache s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600
    os.replace(tmp, path)


def add_row(results_md: Path, row: str) -> None:
    """Add ``row`` at the end of the Explanations table; only this section is ever touched."""
    text = results_md.read_text(encoding="utf-8") if results_md.exists() else "# Benchmark results\n"
    if SECTION not in text:
        intro = (
            f"\n{SECTION}\n\n`benchmarks/bench_explain.py`: every explanation of one cached test patient "
            "(Shapley over modality subsets, attention, tile and clinical IG at 32 steps, sentence occlusion, "
            "ultrasound Grad-CAM), 1 torch thread. Naive = the same computation one row per forward pass.\n\n"
        )
        _write_atomic(results_md, text.rstrip("\n") + "\n" + intro + TABLE_HEADER + row + "\n")
        return
    start = text.index(SECTION)
    nxt = text.find("\n## ", start + len(SECTION))
    end = len(text) if nxt < 0 else nxt
    section = text[start:end].rstrip("\n") + "\n" + row + "\n"
    _write_atomic(results_md, text[:start] + section + ("\n" + text[end:].lstrip("\n") if nxt >= 0 else ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", default="data/cohort")
    ap.add_argument("--model", default="assets/models/mrrp-demo")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-markdown", action="store_true", help="do not add a row to results.md")
    args = ap.parse_args()

    import mrrp.explain.explain as ex
    from mrrp.case import case_features
    from mrrp.explain.render import read_us_images
    from mrrp.io.manifest import read_manifest
    from mrrp.model.bundle import load_bundle

    bundle = load_bundle(args.model)
    rows = read_manifest(Path(args.cohort) / "manifest.csv")
    row = next(r for r in rows if r.split == "test" and all(r.present.values()))
    case_features(row)  # make sure the features are cached (and the encoders loaded)
    t = time.perf_counter()
    case = case_features(row)
    load_s = time.perf_counter() - t
    images = read_us_images(row)

    def timed(repeats: int) -> tuple[float, ex.Explanation, list[float]]:
        times, e = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            e = ex.explain_case(bundle, case, us_images=images)
            times.append(time.perf_counter() - t0)
        assert e is not None
        return statistics.median(times), e, times

    ex.explain_case(bundle, case, us_images=images)  # warm-up: eager encoder load, first-call allocations
    batched_s, batched, batched_all = timed(args.repeats)
    default_chunk = ex.MAX_CHUNK_ELEMENTS
    ex.MAX_CHUNK_ELEMENTS = 1
    try:
        naive_s, naive, naive_all = timed(max(1, args.repeats // 2))
    finally:
        ex.MAX_CHUNK_ELEMENTS = default_chunk
    diff = max(abs(batched.shapley[m] - naive.shapley[m]) for m in batched.shapley)
    assert diff < 1e-4, f"naive and batched Shapley values differ by {diff}"
    assert batched.tiles is not None and naive.tiles is not None
    ig_diff = float(np.max(np.abs(batched.tiles.integrated_gradients - naive.tiles.integrated_gradients)))

    parts = batched.timings_s
    result = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "patient": row.patient_id,
        "n_tiles": len(case.tiles),
        "n_us_images": len(images),
        "n_sentences": len(case.us_report_sentences) + len(case.path_report_sentences),
        "ensemble_members": len(bundle.models),
        "ig_steps": 32,
        "batched_seconds_median": round(batched_s, 3),
        "batched_seconds_all": [round(x, 3) for x in batched_all],
        "naive_seconds_median": round(naive_s, 3),
        "naive_seconds_all": [round(x, 3) for x in naive_all],
        "speedup": round(naive_s / batched_s, 2),
        "parts_seconds_last_batched_run": parts,
        "load_cached_features_seconds": round(load_s, 3),
        "max_abs_diff_shapley_naive_vs_batched": diff,
        "max_abs_diff_tile_ig_naive_vs_batched": ig_diff,
        "target_seconds": 5.0,
        "model_checksum": bundle.checksum,
    }
    print(json.dumps(result, indent=2))
    _write_atomic(HERE / "explain_results.json", json.dumps(result, indent=2) + "\n")
    if not args.no_markdown:
        add_row(
            HERE / "results.md",
            f"| {result['date']} | {result['machine']} | {row.patient_id} | {result['n_tiles']} | "
            f"{result['n_us_images']} | {result['n_sentences']} | {batched_s:.2f} | {naive_s:.2f} | "
            f"{result['speedup']:.1f}x | {parts.get('shapley', 0):.2f} | {parts.get('tiles_ig', 0):.2f} | "
            f"{parts.get('clinical_ig', 0):.2f} | {parts.get('reports', 0):.2f} | {parts.get('us_gradcam', 0):.2f} | "
            f"{load_s:.2f} |",
        )


if __name__ == "__main__":
    main()
