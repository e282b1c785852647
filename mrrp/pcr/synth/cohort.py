"""Writing a whole cohort: every patient (in parallel), the manifest, the ground truth and cohort.json."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mrrp._fs import replace_dir_atomically
from mrrp._parallel import default_workers, parallel_map
from mrrp.errors import InputError
from mrrp.pcr.manifest import write_pcr_manifest
from mrrp.pcr.synth.files import write_patient
from mrrp.pcr.synth.specs import DEFAULT_SITES, FORMATS, FOV_MM, SITES, PatientSpec, generate_specs


def _write_job(args: tuple[PatientSpec, str]) -> dict[str, object]:
    spec, root = args
    return write_patient(spec, Path(root))


def _auc(score: np.ndarray, label: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(label, score)) if 0 < label.sum() < len(label) else None


def write_pcr_cohort(
    out: str | os.PathLike[str],
    n: int,
    seed: int,
    *,
    sites: tuple[str, ...] = DEFAULT_SITES,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, object]:
    """Generate and write the cohort into ``out`` (new or empty); returns the summary written to cohort.json."""
    import pandas as pd

    final = Path(out)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise InputError(f"The output folder '{final}' is not empty; choose a new folder.")
    if not any(SITES[s].role == "external" for s in sites) or not any(SITES[s].role == "train" for s in sites):
        raise InputError("The cohort needs at least one training site and one external site.")
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        specs = generate_specs(n, seed, sites)
        workers = default_workers(len(specs), workers)
        jobs = [(s, str(partial)) for s in specs]
        rows = parallel_map(_write_job, jobs, workers=workers, progress=progress, chunksize=4)
        write_pcr_manifest(rows, partial / "manifest.csv")
        truth = []
        for s, r in zip(specs, rows, strict=True):
            t = {k: v for k, v in asdict(s).items() if k not in ("clinical", "extras", "hidden_fields")}
            t.update(r["_extras"])  # type: ignore[arg-type]
            t["hidden_fields"] = ";".join(s.hidden_fields)
            truth.append(t)
        df = pd.DataFrame(truth)
        df.to_csv(partial / "truth.csv", index=False)

        def summary_of(sel: pd.DataFrame) -> dict[str, object]:
            auc = _auc(sel["pcr_probability"].to_numpy(), sel["pcr"].to_numpy())
            return {
                "n": len(sel),
                "pcr": int(sel["pcr"].sum()),
                "pcr_rate": round(float(sel["pcr"].mean()), 4),
                "oracle_auc": None if auc is None else round(auc, 4),
            }

        summary = {
            "n": len(specs),
            "seed": seed,
            "sites": {s: asdict(SITES[s]) for s in sites},
            "fov_mm": FOV_MM,
            "pcr_rate": round(float(df["pcr"].mean()), 4),
            "pcr_model": "logit = -1.95 + subtype (luminal A -1.0, luminal B 0, HER2-enriched +1.6, triple-negative "
            "+1.3) + 0.9 HER2+ in luminal B + 0.5 (Ki-67 - 30)/20 - 0.35 (diameter - 28 mm)/12 mm "
            "- 1.6 resistance; resistance raises heterogeneity and oedema",
            "splits": {sp: summary_of(df[df["split"] == sp]) for sp in sorted(df["split"].unique())},
            "by_site": {st: summary_of(df[df["site"] == st]) for st in sorted(df["site"].unique())},
            "formats": {f: int((df["file_format"] == f).sum()) for f in FORMATS},
            "workers": workers,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        (partial / "cohort.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replace_dir_atomically(partial, final)  # final is absent or empty, checked above
    return summary
