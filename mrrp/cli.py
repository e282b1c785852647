"""The ``mrrp`` command.

Contract (PRODUCT.md): sub-commands print JSON on stdout with ``--json``; bad input exits
non-zero with one human line on stderr (no traceback); outputs are written atomically.
Exit codes: 0 ok, 2 bad input (InputError) or bad arguments, 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mrrp import __version__
from mrrp.errors import InputError
from mrrp.resources import bundled_model_dir

if TYPE_CHECKING:
    from mrrp.case import AssembledCase, Case
    from mrrp.io.manifest import ManifestRow

EXIT_INPUT = 2
EXIT_FAILURE = 1
STRICT_HELP = (
    "refuse a patient with any unusable input (default: leave that input out, report it and compensate, "
    "as the dashboard does)"
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line, like every other input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"mrrp: {message} (see '{self.prog} --help')\n")


def _print_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


class _ProgressBar:
    """A one-line text progress bar on stderr (stdout stays clean for --json)."""

    def __init__(self, label: str, enabled: bool | str = True, unit: str = "tiles") -> None:
        self.label = label
        self.unit = unit
        self.enabled = enabled == "always" or (bool(enabled) and sys.stderr.isatty())
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        pct = int(100 * done / total)
        if pct == self._last:
            return
        self._last = pct
        bar = "#" * (pct // 4) + "-" * (25 - pct // 4)
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{total} {self.unit}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def cmd_slide_info(args: argparse.Namespace) -> int:
    from mrrp.io.slides import read_slide_info

    info = read_slide_info(args.path, mpp=args.mpp)
    if args.json:
        _print_json(
            info.to_dict() if args.properties else {k: v for k, v in info.to_dict().items() if k != "properties"}
        )
        return 0
    mpp = f"{info.mpp:.4g} µm/px ({info.mpp_source})" if info.mpp is not None else "unknown (supply --mpp)"
    power = f"{info.objective_power:g}x" if info.objective_power is not None else "unknown"
    print(f"{info.name}: {info.vendor}, {info.width_px} x {info.height_px} px, {info.level_count} levels")
    print(f"  resolution {mpp}, objective {power}, {info.file_size_bytes / 1e6:.1f} MB")
    for i, ((w, h), ds) in enumerate(zip(info.level_dimensions, info.level_downsamples, strict=True)):
        print(f"  level {i}: {w} x {h} px (downsample {ds:.3g})")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    import time

    from mrrp.features.slide import slide_features
    from mrrp.features.store import FeatureCache, write_features_h5

    out = Path(args.out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise InputError(f"The output '{out.name}' must end in .h5.")
    if out.parent and not out.parent.exists():
        raise InputError(f"The output folder '{out.parent}' does not exist.")
    t0 = time.perf_counter()
    progress = _ProgressBar("features", enabled="always" if args.progress else True)
    res = slide_features(
        args.slide,
        mpp=args.mpp,
        encoder=args.encoder,
        target_mpp=args.target_mpp,
        tile_size_px=args.tile_size,
        cache=FeatureCache(args.cache_dir) if args.cache_dir else None,
        batch_size=args.batch_size,
        progress=progress,
    )
    write_features_h5(out, res.features)
    summary = {
        "slide": Path(args.slide).name,
        "out": str(out),
        "n_tiles": len(res.features),
        "embedding_dim": res.features.embedding_dim,
        "encoder": res.features.encoder,
        "encoder_version": res.features.encoder_version,
        "target_mpp": res.features.target_mpp,
        "tile_size_px": res.features.tile_size_px,
        "tile_size_l0": res.features.tile_size_l0,
        "tissue_fraction": round(res.tissue.tissue_fraction, 4),
        "from_cache": res.from_cache,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if args.json:
        _print_json(summary)
    else:
        src = "cache" if res.from_cache else f"{summary['seconds']} s"
        print(f"{summary['n_tiles']} tiles x {summary['embedding_dim']} features ({src}) -> {out}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from mrrp.synth.cohort import CohortConfig, parse_slide_size, write_cohort

    if args.n < 1 or args.n > 100_000:
        raise InputError(f"--n must be between 1 and 100000, not {args.n}.")
    sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
    from mrrp.synth.biology import SITES

    unknown = [s for s in sites if s not in SITES]
    if not sites or unknown:
        raise InputError(f"Unknown site(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SITES)}.")
    if args.missing_rate is not None and not (0.0 <= args.missing_rate <= 0.9):
        raise InputError("--missing-rate must be between 0 and 0.9.")
    config = CohortConfig(
        n=args.n,
        seed=args.seed,
        sites=sites,
        slide_size_mm=parse_slide_size(args.slide_size),
        missing_rate=args.missing_rate,
    )
    progress = _ProgressBar("patients", unit="patients", enabled="always" if args.progress else True)
    summary = write_cohort(args.out, config, workers=args.workers, progress=progress)
    if args.json:
        _print_json(summary)
    else:
        print(f"{summary['n']} patients written to {args.out} in {summary['seconds']} s (manifest.csv)")
    return 0


def _check_bundle_out(out: str, *keep: str | None) -> None:
    """Refuse an unsafe --out (``.``, ``..``, a file, a folder holding the inputs or other files) before
    training starts, not after it finished; an interrupted earlier replacement is recovered here."""
    from mrrp.model.bundle import check_bundle_destination

    check_bundle_destination(out, keep=[k for k in keep if k])


def cmd_train(args: argparse.Namespace) -> int:
    from mrrp.train.pipeline import default_model_config, train_bundle
    from mrrp.train.trainer import TrainConfig

    if not (2 <= args.folds <= 20):
        raise InputError("--folds must be between 2 and 20.")
    if args.query not in ("learned", "pathology", "clinical"):
        raise InputError("--query must be learned, pathology or clinical.")
    _check_bundle_out(args.out, args.manifest, args.cache_dir)
    summary = train_bundle(
        args.manifest,
        args.out,
        model_cfg=default_model_config(query_strategy=args.query),
        train_cfg=TrainConfig(folds=args.folds, max_epochs=args.max_epochs, seed=args.seed),
        cache_dir=args.cache_dir,
        log=(lambda m: sys.stderr.write(f"{m}\n")) if not args.json else None,
        progress=_ProgressBar("features", unit="patients", enabled="always" if args.progress else True),
    )
    if args.json:
        _print_json(summary)
    else:
        print(
            f"bundle written to {args.out}: out-of-fold C-index {summary['oof_harrell_c']:.3f} on {summary['n_train']} patients"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mrrp.train.evaluate import evaluate_bundle

    if not (0 <= args.bootstrap <= 5000):
        raise InputError("--bootstrap must be between 0 and 5000.")
    result = evaluate_bundle(args.model, args.manifest, cache_dir=args.cache_dir, n_boot=args.bootstrap)
    if args.json:
        _print_json(result)
    else:
        for split in ("test", "external"):
            if split in result:
                r = result[split]
                lo, hi = r["ci95"].get("harrell_c", (float("nan"), float("nan")))
                print(
                    f"{split}: n={r['n']} events={r['events']} Harrell C {r['harrell_c']:.3f} ({lo:.3f}–{hi:.3f}), Uno C {r['uno_c']:.3f}"
                )
    return 0


def _input_lines(case: Case) -> list[str]:
    """Indented lines for every input that was given but left out (wholly or some of its files)."""
    lines = []
    for status in case.statuses.values():
        if status.state == "invalid":
            lines.append(f"  {status.label}: {status.text}")
        lines += [f"  {status.label}: {note}" for note in status.notes]
    return lines


def _assemble_rows(rows: list[ManifestRow], args: argparse.Namespace) -> list[AssembledCase]:
    """Every row through the one route (:mod:`mrrp.case`), as the dashboard assembles a patient;
    ``--strict`` refuses the first patient with an unusable input instead."""
    from mrrp.case import Case, assemble

    return [assemble(Case.from_manifest_row(r), cache_dir=args.cache_dir, strict=args.strict) for r in rows]


def cmd_predict(args: argparse.Namespace) -> int:
    from mrrp.io.manifest import read_manifest
    from mrrp.model.bundle import load_bundle
    from mrrp.model.predict import predict_cases
    from mrrp.vocabulary import HEADLINE_HORIZON_MONTHS

    bundle = load_bundle(args.model or bundled_model_dir("mrrp-demo"))
    trust = _require_trusted(bundle.path, bundle.checksum)
    rows = read_manifest(args.manifest, require_outcomes=False)
    if args.patient:
        rows = [r for r in rows if r.patient_id in set(args.patient)]
        if not rows:
            raise InputError(f"None of {', '.join(args.patient)} is in the manifest.")
    assembled = _assemble_rows(rows, args)
    preds = predict_cases(bundle, [a.features for a in assembled])
    notice = bundle.model_card.get("notice", "")
    if args.json:
        out = [{**p.to_dict(), "inputs": a.case.statuses_dict()} for p, a in zip(preds, assembled, strict=True)]
        model = {"signed_by": trust.signer, "trust": trust.kind, "trust_text": trust.describe()}
        _print_json({"notice": notice, "model": model, "predictions": out})
    else:
        print(notice)
        print(f"Model: {trust.describe()}")
        for p, a in zip(preds, assembled, strict=True):
            h = p.at(HEADLINE_HORIZON_MONTHS)
            gaps = f"; compensated: {', '.join(p.compensated)}" if p.compensated else ""
            print(
                f"{p.patient_id}: {p.risk_group} risk (percentile {p.percentile:.0f}), {h.years}-year recurrence "
                f"{100 * h.probability:.0f}% ({100 * h.lower:.0f}–{100 * h.upper:.0f}%){gaps}"
            )
            for line in _input_lines(a.case):
                print(line)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from mrrp.explain.explain import explain_case
    from mrrp.explain.render import (
        find_patient,
        heatmap_figure_png,
        slide_heatmap,
        summary_lines,
        write_png,
    )
    from mrrp.model.bundle import load_bundle
    from mrrp.ui import NOTICE

    if not (2 <= args.ig_steps <= 512):
        raise InputError("--ig-steps must be between 2 and 512.")
    if args.heatmap and Path(args.heatmap).suffix.lower() != ".png":
        raise InputError(f"The heatmap '{Path(args.heatmap).name}' must end in .png.")
    if args.heatmap and not Path(args.heatmap).parent.exists():
        raise InputError(f"The output folder '{Path(args.heatmap).parent}' does not exist.")
    bundle = load_bundle(args.model or bundled_model_dir("mrrp-demo"))
    _require_trusted(bundle.path, bundle.checksum)
    (assembled,) = _assemble_rows([find_patient(args.manifest, args.case)], args)
    case = assembled.case
    if args.heatmap and case.slide is None:
        status = case.statuses["slide"]
        why = f"has no usable slide ({status.reason})" if status.state == "invalid" else "has no slide"
        raise InputError(f"Patient {case.patient_id} {why}, so there is no slide heatmap.")
    # Grad-CAM draws on the images the tokens were computed from, decoded once when the Case was built.
    images = case.us_arrays if args.ultrasound_overlay else None
    explanation = explain_case(bundle, assembled.features, us_images=images, ig_steps=args.ig_steps)
    if args.heatmap and case.slide is not None:
        result, _ = slide_heatmap(case.slide.path, explanation, args.scores, slide_mpp=case.slide.mpp)
        title = f"{case.patient_id}: {'Integrated Gradients' if args.scores == 'ig' else 'attention'} per tile"
        write_png(args.heatmap, heatmap_figure_png(result, title))
    if args.json:
        _print_json({"notice": NOTICE, "explanation": explanation.to_dict(), "inputs": case.statuses_dict()})
    else:
        print(NOTICE)
        print("\n".join(summary_lines(explanation) + _input_lines(case)))
        if args.heatmap:
            print(f"slide heatmap -> {args.heatmap}")
    return 0


def cmd_pcr_synth(args: argparse.Namespace) -> int:
    from mrrp.pcr.synth import SITES, write_pcr_cohort

    if not (8 <= args.n <= 20_000):
        raise InputError(f"--n must be between 8 and 20000, not {args.n}.")
    sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
    unknown = [s for s in sites if s not in SITES]
    if not sites or unknown:
        raise InputError(f"Unknown site(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SITES)}.")
    progress = _ProgressBar("patients", unit="patients", enabled="always" if args.progress else True)
    summary = write_pcr_cohort(args.out, args.n, args.seed, sites=sites, workers=args.workers, progress=progress)
    if args.json:
        _print_json(summary)
    else:
        print(
            f"{summary['n']} patients written to {args.out} in {summary['seconds']} s (manifest.csv); "
            f"pCR rate {100 * summary['pcr_rate']:.0f}%"
        )
    return 0


def cmd_pcr_train(args: argparse.Namespace) -> int:
    from mrrp.pcr.pipeline import train_pcr
    from mrrp.pcr.train import TrainConfig

    for name in ("stage1_epochs", "stage2_epochs", "single_stage_epochs"):
        if not (1 <= getattr(args, name) <= 500):
            raise InputError(f"--{name.replace('_', '-')} must be between 1 and 500.")
    if not (0.5 <= args.target_sensitivity <= 0.99):
        raise InputError("--target-sensitivity must be between 0.5 and 0.99.")
    if not (20 <= args.bootstrap <= 5000):
        raise InputError("--bootstrap must be between 20 and 5000.")
    _check_bundle_out(args.out, args.manifest, args.report)
    cfg = TrainConfig(
        seed=args.seed,
        stage1_epochs=args.stage1_epochs,
        stage2_epochs=args.stage2_epochs,
        single_stage_epochs=args.single_stage_epochs,
        target_sensitivity=args.target_sensitivity,
        n_boot=args.bootstrap,
    )
    result = train_pcr(
        args.manifest,
        args.out,
        cfg=cfg,
        workers=args.workers,
        log=(lambda m: sys.stderr.write(f"{m}\n")) if not args.json else None,
        progress=_ProgressBar("reading", unit="patients", enabled="always" if args.progress else True),
    )
    if args.report:
        from mrrp.pcr.report import write_pcr_report

        write_pcr_report(result, args.report, bundle=args.out, manifest=args.manifest)
    result.pop("_figure", None)
    if args.json:
        _print_json(result)
    else:
        print(
            f"bundle written to {args.out}: {result['evaluated_on']} AUC {result['external_auc']:.3f}, sensitivity "
            f"{result['external_sensitivity']:.2f}, specificity {result['external_specificity']:.2f}; attention in "
            f"tumour {result['attention_in_mask']:.2f} (non-guided baseline {result['baseline_attention_in_mask']:.2f})"
        )
    return 0


def cmd_pcr_predict(args: argparse.Namespace) -> int:
    from mrrp.pcr.bundle import load_pcr_bundle
    from mrrp.pcr.clinical import read_clinical_json
    from mrrp.pcr.predict import DEFAULT_MODEL_DIR, predict_files, write_attention_nifti

    if args.attention_nifti and not str(args.attention_nifti).endswith((".nii", ".nii.gz")):
        raise InputError(f"The attention output '{Path(args.attention_nifti).name}' must end in .nii or .nii.gz.")
    if args.attention_nifti and not Path(args.attention_nifti).parent.exists():
        raise InputError(f"The output folder '{Path(args.attention_nifti).parent}' does not exist.")
    bundle = load_pcr_bundle(args.model or DEFAULT_MODEL_DIR)
    trust = _require_trusted(bundle.path, bundle.checksum)
    clinical = read_clinical_json(args.clinical) if args.clinical else None
    pred = predict_files(bundle, args.mri, mask=args.mask, clinical=clinical)
    if args.attention_nifti:
        write_attention_nifti(pred, args.attention_nifti)
    if args.json:
        _print_json(pred.to_dict())
        return 0
    lo, hi = pred.interval
    print(pred.notice)
    print(f"Model: {trust.describe()}")
    print(
        f"pCR probability {100 * pred.probability:.0f}% (interval {100 * lo:.0f}–{100 * hi:.0f}%), "
        f"{'above' if pred.above_threshold else 'below'} the operating threshold of {100 * pred.threshold:.0f}%"
    )
    for s in pred.stages:
        print(f"  {s.label}: {100 * s.probability:.0f}%")
    for note in pred.notes:
        print(f"  note: {note}")
    if args.attention_nifti:
        print(f"attention map -> {args.attention_nifti}")
    return 0


def _require_trusted(path: Path, checksum: str):  # -> mrrp.model.signing.Provenance
    """Who vouches for the model (refused when nobody does, unless MRRP_ALLOW_UNSIGNED); a warning on stderr
    when it is used only because the site allows unsigned bundles."""
    from mrrp.model.signing import require_trusted

    trust = require_trusted(path, checksum)
    if not trust.trusted:
        _WARNINGS.append(f"{trust.describe()} (allowed by MRRP_ALLOW_UNSIGNED)")
    return trust


# Warnings a command raises are printed when it finishes, so that a refusal stays one line on stderr.
_WARNINGS: list[str] = []


def cmd_keygen(args: argparse.Namespace) -> int:
    from mrrp.model.signing import generate_key

    pub, line = generate_key(args.out, args.name)
    print(f"private key -> {args.out} (keep it off the bundles and the repository)")
    print(f"public key -> {pub}; add this line to the trusted-keys file (MRRP_TRUSTED_KEYS):")
    print(line)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from mrrp.model.signing import sign_bundle

    out = sign_bundle(args.model, args.key)
    print(f"signed {args.model} -> {out}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from mrrp.dashboard.launch import run_dashboard

    return run_dashboard(address=args.address, port=args.port)


def _add_cohort_arguments(p: argparse.ArgumentParser, *, n: int, seed: int, sites: str, sites_help: str) -> None:
    """--n, --seed, --out and --sites of a command that writes a synthetic cohort."""
    p.add_argument("--n", type=int, default=n, help="number of patients")
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--out", required=True, help="new or empty output folder")
    p.add_argument("--sites", default=sites, help=sites_help)


def _add_job_flags(p: argparse.ArgumentParser) -> None:
    """--workers, --progress and --json of a command that runs on every core."""
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--json", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mrrp", description="Multimodal recurrence-risk prediction for HR+/HER2- early breast cancer.")
    p.add_argument("--version", action="version", version=f"mrrp {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_slide_commands(sub)
    _add_cohort_commands(sub)
    _add_patient_commands(sub)
    _add_pcr_commands(sub)
    _add_signing_commands(sub)
    _add_dashboard_command(sub)
    return p


def _add_slide_commands(sub) -> None:
    """``slide-info`` and ``features``: one slide."""
    from mrrp.slides.tiling import DEFAULT_TARGET_MPP

    s = sub.add_parser("slide-info", help="print a slide's metadata")
    s.add_argument("path", help="slide file (SVS, TIFF, NDPI, SCN, MRXS, DICOM, PNG, JPEG, ...)")
    s.add_argument("--mpp", type=float, default=None, help="microns per pixel, if the slide does not record it")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--properties", action="store_true", help="include all vendor properties in the JSON")
    s.set_defaults(func=cmd_slide_info)

    f = sub.add_parser("features", help="tile features of a slide, written to HDF5")
    f.add_argument("slide")
    f.add_argument("--out", required=True, help="output .h5 file")
    f.add_argument("--mpp", type=float, default=None, help="microns per pixel, if the slide does not record it")
    f.add_argument(
        "--encoder", default="efficientnet-lite0", help="efficientnet-lite0, a TorchScript .pt, or py:mod:fn"
    )
    f.add_argument("--target-mpp", type=float, default=DEFAULT_TARGET_MPP, help="working resolution, µm/px")
    f.add_argument("--tile-size", type=int, default=None, help="tile side in pixels (default: encoder input)")
    f.add_argument("--batch-size", type=int, default=8)
    f.add_argument("--cache-dir", default=None, help="feature cache folder (default $MRRP_CACHE_DIR or ~/.cache/mrrp)")
    f.add_argument("--progress", action="store_true", help="always show the progress bar, even when not a terminal")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_features)


def _add_cohort_commands(sub) -> None:
    """``synth``, ``train`` and ``evaluate``: a cohort."""
    y = sub.add_parser("synth", help="write a synthetic reference cohort (slides, ultrasound, reports, records)")
    _add_cohort_arguments(y, n=800, seed=7, sites="internal,external", sites_help="comma-separated: internal, external")
    y.add_argument("--slide-size", default="1.6x1.2", help="slide size in mm, width x height (default 1.6x1.2)")
    y.add_argument("--missing-rate", type=float, default=None, help="per-modality missing rate (default: per site)")
    _add_job_flags(y)
    y.set_defaults(func=cmd_synth)

    t = sub.add_parser("train", help="train an MRRP bundle on a manifest (k-fold CV ensemble)")
    t.add_argument("--manifest", required=True)
    t.add_argument(
        "--out",
        required=True,
        help="a new or empty folder, or an existing bundle (replaced only when training succeeds)",
    )
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--max-epochs", type=int, default=400)
    t.add_argument("--query", default="learned", help="inter-modality query: learned, pathology or clinical")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--cache-dir", default=None)
    t.add_argument("--progress", action="store_true")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    v = sub.add_parser("evaluate", help="metrics of a bundle on the test split and the external site")
    v.add_argument("--model", required=True)
    v.add_argument("--manifest", required=True)
    v.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the 95%% intervals")
    v.add_argument("--cache-dir", default=None)
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_evaluate)


def _add_patient_commands(sub) -> None:
    """``predict`` and ``explain``: patients of a manifest."""
    r = sub.add_parser("predict", help="risk, group, survival curve and 3/5/7-year recurrence for manifest patients")
    r.add_argument("--model", default=None, help="model bundle folder (default: the bundled mrrp-demo)")
    r.add_argument("--manifest", required=True, help="manifest CSV (outcome columns not needed)")
    r.add_argument("--patient", action="append", help="only this patient id (repeatable)")
    r.add_argument("--cache-dir", default=None)
    r.add_argument("--strict", action="store_true", help=STRICT_HELP)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_predict)

    x = sub.add_parser("explain", help="why one patient's risk is what it is: modalities, tiles, fields, sentences")
    x.add_argument("--manifest", required=True, help="manifest CSV (outcome columns not needed)")
    x.add_argument("--case", required=True, help="patient_id of the patient to explain")
    x.add_argument("--model", default=None, help="model bundle folder (default: the bundled mrrp-demo)")
    x.add_argument("--heatmap", default=None, help="also write the slide heatmap to this .png")
    x.add_argument("--scores", choices=("ig", "attention"), default="ig", help="tile scores drawn by --heatmap")
    x.add_argument("--ultrasound-overlay", action="store_true", help="also compute Grad-CAM on the ultrasound images")
    x.add_argument("--ig-steps", type=int, default=32, help="Integrated Gradients steps (default 32)")
    x.add_argument("--cache-dir", default=None)
    x.add_argument("--strict", action="store_true", help=STRICT_HELP)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_explain)


def _add_signing_commands(sub) -> None:
    """``keygen`` and ``sign``: a site vouches for its own bundles (mrrp.model.signing)."""
    k = sub.add_parser("keygen", help="make the site's Ed25519 signing key (private key file + .pub line)")
    k.add_argument("--out", required=True, help="private key file to create (outside any bundle or repository)")
    k.add_argument("--name", required=True, help="who signs, as the dashboard and mrrp predict will say it")
    k.set_defaults(func=cmd_keygen)

    g = sub.add_parser("sign", help="sign a model bundle (MRRP or pCR) with the site's private key")
    g.add_argument("--model", required=True, help="bundle folder")
    g.add_argument("--key", required=True, help="private key file written by mrrp keygen")
    g.set_defaults(func=cmd_sign)


def _add_pcr_commands(sub) -> None:
    """``pcr-synth``, ``pcr-train`` and ``pcr-predict``: the MRI model."""
    ps = sub.add_parser("pcr-synth", help="write a synthetic multi-site breast DCE-MRI cohort with pCR labels")
    _add_cohort_arguments(
        ps, n=480, seed=0, sites="site-a,site-b,site-c,site-d", sites_help="comma-separated; site-d is external"
    )
    _add_job_flags(ps)
    ps.set_defaults(func=cmd_pcr_synth)

    pt = sub.add_parser("pcr-train", help="train the stepwise pCR model and baselines; evaluate on the external site")
    pt.add_argument("--manifest", required=True, help="pCR manifest CSV (docs/pcr.md)")
    pt.add_argument(
        "--out",
        required=True,
        help="a new or empty folder, or an existing bundle (replaced only when training succeeds)",
    )
    pt.add_argument("--report", default=None, help="also write PREFIX.md and PREFIX.json (e.g. docs/pcr_report)")
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--stage1-epochs", type=int, default=15)
    pt.add_argument("--stage2-epochs", type=int, default=25)
    pt.add_argument("--single-stage-epochs", type=int, default=40, help="epochs of the non-guided baseline")
    pt.add_argument("--target-sensitivity", type=float, default=0.8, help="validation sensitivity for the threshold")
    pt.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    pt.add_argument("--workers", type=int, default=None, help="processes reading the MRIs (default: all cores)")
    pt.add_argument("--progress", action="store_true")
    pt.add_argument("--json", action="store_true")
    pt.set_defaults(func=cmd_pcr_train)

    pp = sub.add_parser("pcr-predict", help="pCR probability, stage outputs and attention for one patient's MRI")
    pp.add_argument("--mri", required=True, nargs="+", help="DICOM folder/zip, a 4D NIfTI, or 3D NIfTIs in phase order")
    pp.add_argument("--mask", default=None, help="tumour mask NIfTI on the MRI's grid (optional)")
    pp.add_argument("--clinical", default=None, help="clinical record JSON (optional; absent fields are unknown)")
    pp.add_argument("--model", default=None, help="pCR bundle folder (default: the bundled pcr-demo)")
    pp.add_argument("--attention-nifti", default=None, help="also write the attention map (working grid) to .nii.gz")
    pp.add_argument("--json", action="store_true")
    pp.set_defaults(func=cmd_pcr_predict)


def _add_dashboard_command(sub) -> None:
    d = sub.add_parser("dashboard", help="serve the clinician dashboard (streamlit run, with the project's settings)")
    d.add_argument("--address", default=None, help="interface to listen on (default 127.0.0.1: this machine only)")
    d.add_argument("--port", type=int, default=None, help="port (default 8501)")
    d.set_defaults(func=cmd_dashboard)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    _WARNINGS.clear()
    try:
        code = func(args)
        for warning in _WARNINGS:
            sys.stderr.write(f"mrrp: warning: {warning}\n")
        return code
    except InputError as exc:
        sys.stderr.write(f"mrrp: {exc}\n")
        return EXIT_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("mrrp: interrupted; nothing was written.\n")
        return 130
    except MemoryError:
        sys.stderr.write("mrrp: ran out of memory; try a smaller batch size (--batch-size).\n")
        return EXIT_FAILURE
    except Exception as exc:  # an unexpected failure: one line, details only on request
        sys.stderr.write(f"mrrp: unexpected error ({type(exc).__name__}: {exc}). Set MRRP_DEBUG=1 for details.\n")
        from mrrp.settings import load_settings

        if load_settings().debug:
            raise
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
