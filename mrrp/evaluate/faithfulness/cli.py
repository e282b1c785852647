"""``python -m mrrp.evaluate.faithfulness``: the faithfulness study from a shell (same arguments as before
it moved out of ``mrrp.explain``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mrrp.errors import InputError

# The headline figures printed as one JSON line when the run ends.
SUMMARY_KEYS = ("deletion_ratio", "tumour_auc", "top20_in_tumour", "shapley_rank_matches", "randomisation_spearman")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m mrrp.evaluate.faithfulness",
        description="Faithfulness checks of mrrp explanations on a synthetic cohort.",
    )
    ap.add_argument("--model", default="assets/models/mrrp-demo")
    ap.add_argument("--cohort", default="data/cohort")
    ap.add_argument("--out", default="docs/explanations.json")
    ap.add_argument("--md", default="docs/explanations.md", help="Markdown page to write ('' for none)")
    ap.add_argument("--img-dir", default="docs/img", help="folder for the pictures ('' for none)")
    ap.add_argument("--ig-steps", type=int, default=32)
    ap.add_argument("--max-patients", type=int, default=None, help="only the first N test patients (quick look)")
    ap.add_argument("--cache-dir", default=None)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from mrrp.evaluate.faithfulness.run import run

    args = build_parser().parse_args(argv)
    try:
        r = run(
            args.model,
            args.cohort,
            args.out,
            img_dir=args.img_dir or None,
            md_path=args.md or None,
            ig_steps=args.ig_steps,
            max_patients=args.max_patients,
            cache_dir=args.cache_dir,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except InputError as exc:
        print(f"mrrp: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: r[k] for k in SUMMARY_KEYS}, default=float))
    return 0
