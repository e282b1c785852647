"""Slide pipeline benchmark: file → tile features, against reading alone and a naive baseline.

    make bench            (or: .venv/bin/python benchmarks/bench_slides.py [--quick])

Creates once (cached in benchmarks/.data/) a pyramidal Aperio-style slide of 60,000 x 40,000 px
at 0.25 µm/px with JPEG tiles and ~40% tissue, then measures in one run, each stage in its own
process so peak RSS is its own:

  read      tile reading alone at the working resolution (the pipeline's threaded reader)
  naive     PyTorch eager, float32, batch 1, default threads, tiles read one by one
  pipeline  mrrp's analyse_slide: tissue, grid, threaded read overlapped with a frozen
            channels-last encoder, HDF5 cache write (empty cache)
  cached    the same slide again: a cache read
  encoder   encoder-only variants on 256 tiles, to justify the defaults

Writes benchmarks/results.json and appends a row to benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
WIDTH_PX, HEIGHT_PX, MPP = 60_000, 40_000, 0.25
QUICK_WIDTH_PX, QUICK_HEIGHT_PX = 12_000, 8_000
NAIVE_MAX_TILES = 300  # the naive baseline is timed on the first tiles only (it is slow)


def slide_path(quick: bool) -> Path:
    w, h = (QUICK_WIDTH_PX, QUICK_HEIGHT_PX) if quick else (WIDTH_PX, HEIGHT_PX)
    return DATA / f"bench_{w}x{h}_mpp{MPP}.svs"


def ensure_slide(quick: bool) -> tuple[Path, float]:
    from mrrp.synth.wsi import write_synthetic_slide

    path = slide_path(quick)
    if path.exists():
        return path, 0.0
    DATA.mkdir(parents=True, exist_ok=True)
    w, h = (QUICK_WIDTH_PX, QUICK_HEIGHT_PX) if quick else (WIDTH_PX, HEIGHT_PX)
    t0 = time.perf_counter()
    write_synthetic_slide(path, w, h, seed=2026, mpp=MPP, tissue_fraction=0.4)
    return path, time.perf_counter() - t0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# --- stages (each runs in a child process) -----------------------------------------------


def _grid(slide):
    from mrrp.slides.tiling import make_tile_grid
    from mrrp.slides.tissue import detect_tissue

    return make_tile_grid(slide.dimensions, slide.mpp, detect_tissue(slide))


def stage_read(path: Path) -> dict:
    from mrrp.features.slide import read_tile_batches
    from mrrp.io.slides import open_slide

    with open_slide(path) as slide:
        grid = _grid(slide)
        t0 = time.perf_counter()
        n = sum(len(b) for b in read_tile_batches(slide, grid.coords_l0, grid.tile_size_l0, grid.tile_size_px))
        secs = time.perf_counter() - t0
    return {"n_tiles": n, "seconds": secs, "tiles_per_s": n / secs}


def stage_naive(path: Path) -> dict:
    """What a first script would do: eager float32 model, one tile at a time, no overlap."""
    import numpy as np
    import torch

    from mrrp.features.encoders import efficientnet_lite0
    from mrrp.features.slide import read_tile_batches
    from mrrp.io.slides import open_slide

    enc = efficientnet_lite0(precision="fp32", freeze=False)
    model = enc.module.to(memory_format=torch.contiguous_format)
    mean = torch.tensor(enc.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(enc.std).view(1, 3, 1, 1) * 255
    with open_slide(path) as slide:
        grid = _grid(slide)
        coords = grid.coords_l0[:NAIVE_MAX_TILES]
        t0 = time.perf_counter()
        n = 0
        with torch.no_grad():
            for tile in read_tile_batches(
                slide, coords, grid.tile_size_l0, grid.tile_size_px, batch_size=1, num_readers=1, prefetch_batches=1
            ):
                x = (torch.from_numpy(np.ascontiguousarray(tile)).permute(0, 3, 1, 2).float() - mean) / std
                model(x)
                n += 1
        secs = time.perf_counter() - t0
    return {"n_tiles": n, "seconds": secs, "tiles_per_s": n / secs, "torch_threads": torch.get_num_threads()}


def stage_pipeline(path: Path) -> dict:
    from mrrp.features.encoders import get_encoder
    from mrrp.features.slide import analyse_slide
    from mrrp.features.store import FeatureCache
    from mrrp.io.slides import open_slide

    t_load = time.perf_counter()
    enc = get_encoder()
    load_s = time.perf_counter() - t_load
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = FeatureCache(cache_dir)
        t0 = time.perf_counter()
        with open_slide(path) as slide:
            res = analyse_slide(slide, encoder=enc, cache=cache)
        secs = time.perf_counter() - t0
        assert not res.from_cache
        t1 = time.perf_counter()
        with open_slide(path) as slide:
            again = analyse_slide(slide, encoder=enc, cache=cache)
        cached_s = time.perf_counter() - t1
        assert again.from_cache
    n = len(res.features)
    return {
        "n_tiles": n,
        "seconds": secs,
        "tiles_per_s": n / secs,
        "encoder": enc.name,
        "encoder_load_seconds": load_s,
        "cached_seconds": cached_s,
        "tissue_fraction": res.tissue.tissue_fraction,
    }


def stage_encoder(path: Path) -> dict:
    """Encoder-only throughput of the variants we considered, on the same 256 real tiles."""
    import numpy as np

    from mrrp.features.encoders import bf16_supported, efficientnet_lite0
    from mrrp.features.slide import read_tile_batches
    from mrrp.io.slides import open_slide

    with open_slide(path) as slide:
        grid = _grid(slide)
        tiles = np.concatenate(list(read_tile_batches(slide, grid.coords_l0[:256], grid.tile_size_l0, 224, 64)))
    variants = {"eager fp32": dict(precision="fp32", freeze=False), "frozen fp32": dict(precision="fp32", freeze=True)}
    if bf16_supported():
        variants["frozen bf16"] = dict(precision="bf16", freeze=True)
    out = {}
    for name, kw in variants.items():
        enc = efficientnet_lite0(**kw)
        for bs in (1, 8, 32):
            enc.encode(tiles[:bs])  # warm-up
            t0 = time.perf_counter()
            for i in range(0, len(tiles), bs):
                enc.encode(tiles[i : i + bs])
            out[f"{name}, batch {bs}"] = len(tiles) / (time.perf_counter() - t0)
    return out


def stage_pipeline_fp32(path: Path) -> dict:
    """The pipeline with exact fp32 features (what a CPU without native bf16 runs)."""
    os.environ["MRRP_ENCODER_PRECISION"] = "fp32"
    return stage_pipeline(path)


STAGES = {
    "read": stage_read,
    "naive": stage_naive,
    "pipeline": stage_pipeline,
    "pipeline-fp32": stage_pipeline_fp32,
    "encoder": stage_encoder,
}


def run_stage(stage: str, path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--stage", stage, "--slide", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=sorted(STAGES))
    ap.add_argument("--slide", type=Path)
    ap.add_argument("--quick", action="store_true", help="a 12,000 x 8,000 slide, results not recorded")
    args = ap.parse_args()

    if args.stage:  # child process
        result = STAGES[args.stage](args.slide)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    path, make_s = ensure_slide(args.quick)
    print(
        f"slide: {path.name} ({path.stat().st_size / 1e6:.0f} MB)" + (f", written in {make_s:.0f} s" if make_s else "")
    )
    results = {}
    for stage in ("read", "naive", "pipeline", "pipeline-fp32", "encoder"):
        results[stage] = run_stage(stage, path)
        print(stage, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results[stage].items()}))

    r, nv, p, p32 = results["read"], results["naive"], results["pipeline"], results["pipeline-fp32"]
    summary = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "slide": f"{WIDTH_PX if not args.quick else QUICK_WIDTH_PX} x {HEIGHT_PX if not args.quick else QUICK_HEIGHT_PX} px at {MPP} µm/px",
        "n_tiles": p["n_tiles"],
        "read_tiles_per_s": round(r["tiles_per_s"], 1),
        "naive_tiles_per_s": round(nv["tiles_per_s"], 1),
        "pipeline_tiles_per_s": round(p["tiles_per_s"], 1),
        "pipeline_seconds": round(p["seconds"], 1),
        "pipeline_peak_rss_mb": round(p["peak_rss_mb"], 0),
        "pipeline_encoder": p["encoder"],
        "pipeline_fp32_tiles_per_s": round(p32["tiles_per_s"], 1),
        "pipeline_fp32_seconds": round(p32["seconds"], 1),
        "encoder_load_seconds": round(p["encoder_load_seconds"], 1),
        "cached_seconds": round(p["cached_seconds"], 2),
        "read_peak_rss_mb": round(r["peak_rss_mb"], 0),
        "naive_peak_rss_mb": round(nv["peak_rss_mb"], 0),
        "speedup_vs_naive": round(p["tiles_per_s"] / nv["tiles_per_s"], 2),
        "fraction_of_read_speed": round(p["tiles_per_s"] / r["tiles_per_s"], 2),
        "encoder_variants_tiles_per_s": {k: round(v, 1) for k, v in results["encoder"].items() if k != "peak_rss_mb"},
    }
    print(json.dumps(summary, indent=2))
    if args.quick:
        return
    (HERE / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    md = HERE / "results.md"
    header = (
        "# Benchmark results\n\nAppended by `make bench` (benchmarks/bench_slides.py). Slide: 60,000 x 40,000 px at "
        "0.25 µm/px, JPEG tiles, ~40% tissue; 224-px tiles at 1 µm/px. Naive = eager fp32, batch 1, default threads, "
        f"no read/encode overlap, timed on the first {NAIVE_MAX_TILES} tiles.\n\n"
        "| date | machine | tiles | read tiles/s | naive tiles/s | pipeline tiles/s (encoder) | pipeline s | speed-up "
        "| fp32 pipeline tiles/s | pipeline peak RSS MB | cached s |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    if not md.exists():
        md.write_text(header)
    row = (
        f"| {summary['date']} | {summary['machine']} | {summary['n_tiles']} | {summary['read_tiles_per_s']} | "
        f"{summary['naive_tiles_per_s']} | {summary['pipeline_tiles_per_s']} ({summary['pipeline_encoder']}) | "
        f"{summary['pipeline_seconds']} | {summary['speedup_vs_naive']}x | {summary['pipeline_fp32_tiles_per_s']} | "
        f"{summary['pipeline_peak_rss_mb']:.0f} | {summary['cached_seconds']} |"
    )
    # Insert after the table's last row: other benchmarks append their own lines below the table.
    lines = md.read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("|"))
    lines.insert(last + 1, row)
    md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
