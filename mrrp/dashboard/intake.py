"""What a user gives the patient-review page → one :class:`CaseFeatures` plus a status per input.

The page's side of :mod:`mrrp.case`: :func:`build_case` is :meth:`mrrp.case.Case.from_inputs` (each input
judged on its own; a bad one is reported as ``invalid: <reason>`` and left out, the model compensating
for it as for a missing one) followed by :func:`mrrp.case.assemble`, the route ``mrrp predict`` takes
too, so a patient scores the same on screen and in a shell. Every input also gets a sha256 for the case
history (the slide's is :func:`mrrp.io.slides.slide_fingerprint`, which samples multi-GB files rather
than reading every byte). ``CaseInputs``, ``InputStatus``, ``SlideView`` and ``INPUTS`` are
:mod:`mrrp.case`'s, named here because the pages read them with the intake.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp._threads import encoder_threads
from mrrp.case import INPUTS, AssembledCase, Case, CaseInputs, InputStatus, ProgressFn, SlideView, assemble
from mrrp.errors import InputError
from mrrp.features.case import CaseFeatures
from mrrp.vocabulary import MODALITIES

__all__ = [
    "INPUTS",
    "CaseInputs",
    "DemoPatient",
    "InputStatus",
    "IntakeResult",
    "SlideView",
    "build_case",
    "demo_inputs",
    "demo_patients",
    "demo_titles",
]


@dataclass(frozen=True, eq=False)
class IntakeResult:
    """One review's assembled patient, read the way the page and :mod:`mrrp.dashboard.review` read it."""

    assembled: AssembledCase

    @property
    def case(self) -> CaseFeatures:
        """The patient's tokens (the model's input)."""
        return self.assembled.features

    @property
    def statuses(self) -> dict[str, InputStatus]:
        """Input key → status, in INPUTS order."""
        return dict(self.assembled.case.statuses)

    @property
    def input_hashes(self) -> dict[str, str]:
        """Input key → sha256 (provided inputs only)."""
        return dict(self.assembled.case.input_hashes)

    @property
    def us_images(self) -> list[np.ndarray]:
        """De-identified (H, W) uint8 images, for the explanation overlay."""
        return self.assembled.case.us_arrays

    @property
    def us_names(self) -> list[str]:
        return self.assembled.case.us_names

    @property
    def slide(self) -> SlideView | None:
        return self.assembled.slide

    @property
    def clinical_record(self) -> dict[str, float | str | None] | None:
        return self.assembled.case.clinical

    @property
    def us_report_text(self) -> str | None:
        return self.assembled.case.us_report

    @property
    def path_report_text(self) -> str | None:
        return self.assembled.case.path_report

    @property
    def compensated(self) -> list[str]:
        """Model modalities that are absent (so compensated), in model order."""
        present = self.case.present
        return [m for i, m in enumerate(MODALITIES) if not present[i]]

    def stored_inputs(self) -> dict:
        """What the case history keeps when the user opts in: the record and report texts, image hashes only.

        Ultrasound images are stored as PNG (base64) so a reopened case can show them; the slide is never
        copied into the history (it stays where it is, found again by its fingerprint).
        """
        import base64

        from PIL import Image

        images = []
        for img in self.us_images:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            images.append(base64.b64encode(buf.getvalue()).decode("ascii"))
        return {
            "clinical": self.clinical_record,
            "us_report": self.us_report_text,
            "path_report": self.path_report_text,
            "us_images_png_base64": images,
            "us_image_names": self.us_names,
        }


def build_case(
    inputs: CaseInputs,
    *,
    cache_dir: str | os.PathLike[str],
    upload_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
) -> IntakeResult:
    """Validate every input on its own, compute (or read cached) features, and assemble the case.

    ``progress(fraction, text)`` is called as the slow steps advance (tile encoding dominates on a
    fresh slide). Never raises for a bad input: it shows up as an ``invalid`` status instead.
    """
    root = Path(cache_dir)
    if progress:
        progress(0.0, "Reading the inputs (ultrasound identifiers removed)…")
    case = Case.from_inputs(inputs, upload_dir=Path(upload_dir) if upload_dir is not None else root / "uploads")
    assembled = assemble(
        case,
        cache_dir=root,
        progress=None if progress is None else (lambda f, t: progress(0.1 + 0.9 * f, t)),
        threads=encoder_threads(),
    )
    return IntakeResult(assembled)


# -- demo patients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoPatient:
    patient_id: str
    title: str
    inputs: CaseInputs


def demo_titles() -> list[tuple[str, str]]:
    """(patient id, title) of the demo patients, without writing their files (the page lists them at once)."""
    from mrrp.synth.demo import DEMO_PATIENTS

    return [(spec.patient_id, spec.title) for spec in DEMO_PATIENTS]


def demo_patients(cache_dir: str | os.PathLike[str]) -> list[DemoPatient]:
    """The five demo patients of :mod:`mrrp.synth.demo` as review inputs (files generated on first use)."""
    from mrrp.io.manifest import read_manifest
    from mrrp.synth.demo import ensure_demo_cohort

    rows = read_manifest(ensure_demo_cohort(cache_dir), require_outcomes=False)
    return [
        DemoPatient(
            patient_id=r.patient_id,
            title=r.extra.get("demo_title", ""),
            inputs=CaseInputs(
                patient_id=r.patient_id,
                slide_path=r.slide_path,
                slide_mpp=r.slide_mpp,
                us_images=list(r.us_image_paths),
                us_report=r.us_report_path,
                path_report=r.path_report_path,
                clinical_form=dict(r.clinical) if r.clinical is not None else None,
            ),
        )
        for r in rows
    ]


def demo_inputs(cache_dir: str | os.PathLike[str], patient_id: str) -> CaseInputs:
    """One demo patient's inputs (writes the demo files on first use, about 15 s)."""
    for demo in demo_patients(cache_dir):
        if demo.patient_id == patient_id:
            return demo.inputs
    raise InputError(f"There is no demo patient '{patient_id}'.")
