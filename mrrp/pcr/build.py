"""The bundled pCR model, reproducibly: synthesise the cohort if missing, train, evaluate, write bundle and report.

    python -m mrrp.pcr.build --out assets/models/pcr-demo --report docs/pcr_report [--cohort data/pcr_cohort]

Seeds are fixed (cohort seed 0, training seed 0) and training runs on one torch thread, so a rerun on the
same machine gives the same bundle.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_COHORT = "data/pcr_cohort"
DEFAULT_N = 480
DEFAULT_SEED = 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mrrp.pcr.build", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="assets/models/pcr-demo", help="bundle folder")
    ap.add_argument("--report", default="docs/pcr_report", help="report prefix: writes PREFIX.md and PREFIX.json")
    ap.add_argument("--cohort", default=DEFAULT_COHORT, help="cohort folder (synthesised here if it has no manifest)")
    ap.add_argument("--n", type=int, default=DEFAULT_N, help="patients, when the cohort is synthesised")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="cohort seed, when the cohort is synthesised")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)

    from mrrp.errors import InputError
    from mrrp.pcr.pipeline import train_pcr
    from mrrp.pcr.report import write_pcr_report
    from mrrp.pcr.synth import write_pcr_cohort

    def log(msg: str) -> None:
        sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
        sys.stderr.flush()

    try:
        manifest = Path(args.cohort) / "manifest.csv"
        if not manifest.is_file():
            log(f"synthesising {args.n} patients into {args.cohort}")
            summary = write_pcr_cohort(args.cohort, args.n, args.seed, workers=args.workers)
            log(f"cohort written in {summary['seconds']} s, pCR rate {summary['pcr_rate']:.3f}")
        result = train_pcr(manifest, args.out, name=Path(args.out).name, workers=args.workers, log=log)
        md, js = write_pcr_report(result, args.report, bundle=args.out, manifest=manifest)
    except InputError as exc:
        sys.stderr.write(f"mrrp: {exc}\n")
        return 2
    log(
        f"bundle {args.out}; report {md} and {js}: external AUC {result['external_auc']:.3f}, sensitivity "
        f"{result['external_sensitivity']:.2f}, specificity {result['external_specificity']:.2f}, attention in mask "
        f"{result['attention_in_mask']:.2f} vs {result['baseline_attention_in_mask']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
