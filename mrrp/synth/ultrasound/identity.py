"""Realistic, entirely invented patient identities for DICOM headers that de-identification must scrub."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from mrrp.synth.ultrasound.physics import _STREAM_IDENTITY

# Patients are women; names from several countries, transliterated to ASCII as many PACS store them.
GIVEN_NAMES = (
    "ANNA",
    "MARIA",
    "SOFIA",
    "ELENA",
    "LAURA",
    "JULIA",
    "SARAH",
    "CLAUDIA",
    "SANDRA",
    "MONIKA",
    "URSULA",
    "BRIGITTE",
    "SABINE",
    "CHRISTINE",
    "NICOLE",
    "FRANZISKA",
    "CHIARA",
    "GIULIA",
    "FRANCESCA",
    "ISABELLE",
    "CAMILLE",
    "NATHALIE",
    "CARMEN",
    "LUCIA",
    "ANA",
    "INES",
    "ELIF",
    "AYSE",
    "ZEYNEP",
    "FATIMA",
    "AGNIESZKA",
    "KATARZYNA",
    "IVANA",
    "JELENA",
    "ELENI",
    "INGRID",
    "ASTRID",
    "SIOBHAN",
    "PRIYA",
    "MEI",
)
FAMILY_NAMES = (
    "MUELLER",
    "MEIER",
    "SCHMID",
    "KELLER",
    "WEBER",
    "HUBER",
    "SCHNEIDER",
    "FISCHER",
    "BAUMANN",
    "GERBER",
    "BRUNNER",
    "STEINER",
    "ROSSI",
    "BIANCHI",
    "ROMANO",
    "FERRARI",
    "MARTIN",
    "BERNARD",
    "DUBOIS",
    "LEFEVRE",
    "GARCIA",
    "FERNANDEZ",
    "LOPEZ",
    "SILVA",
    "PEREIRA",
    "YILMAZ",
    "KAYA",
    "DEMIR",
    "NOWAK",
    "KOWALSKA",
    "HORVAT",
    "PETROVIC",
    "PAPADOPOULOU",
    "JANSSEN",
    "DE VRIES",
    "LINDQVIST",
    "OBRIEN",
    "MURPHY",
    "PATEL",
    "NGUYEN",
)
STAFF_GIVEN_NAMES = GIVEN_NAMES[:20] + ("THOMAS", "MARKUS", "DANIEL", "STEFAN", "MARCO", "LUCA", "PIERRE", "ANDREAS")
INSTITUTIONS = (
    "Kantonsspital Seewald",
    "Klinikum Am Lindenhang",
    "Brustzentrum Nordufer",
    "Hopital des Trois-Vallees",
    "Ospedale Regionale di Valcastello",
    "Stadtspital Oberau",
    "Frauenklinik Sonnenbuehl",
    "Clinique du Mont-Clair",
)


@dataclass(frozen=True)
class FakeIdentity:
    """A plausible, entirely invented patient and encounter, for headers that de-identification must scrub."""

    given_name: str
    family_name: str
    sex: str  # "F"
    birth_date: str  # YYYYMMDD
    age_years: int  # at reference_date
    reference_date: str  # YYYYMMDD, the date age_years refers to
    mrn: str  # hospital patient number, 8 digits (last = Luhn check digit)
    accession_number: str  # radiology order number
    institution_name: str
    referring_physician: str  # DICOM PN: FAMILY^GIVEN^^DR
    operator_name: str  # sonographer, DICOM PN

    @property
    def dicom_name(self) -> str:
        """Patient name as a DICOM PN value, e.g. ``MUELLER^ANNA``."""
        return f"{self.family_name}^{self.given_name}"


def _parse_date(text: str) -> date:
    if len(text) == 8 and text.isdigit():
        try:
            return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            pass
    raise ValueError(f"dates must be YYYYMMDD, got {text!r}")


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February in a non-leap year
        return d.replace(year=d.year - years, day=28)


def age_on(birth_date: str, on_date: str) -> int:
    """Whole years of age on ``on_date`` (both YYYYMMDD)."""
    b, d = _parse_date(birth_date), _parse_date(on_date)
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


def _luhn_digit(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return (10 - total % 10) % 10


def fake_identity(seed: int, *, age_years: float = 55.0, reference_date: str = "20240315") -> FakeIdentity:
    """Deterministic invented identity for ``seed``: a birth date that makes the patient ``int(age_years)``
    years old on ``reference_date`` (pass the study date), an MRN, an accession number and staff names."""
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if not 0 <= age_years < 130:
        raise ValueError(f"age_years must be in [0, 130), got {age_years}")
    rng = np.random.default_rng([int(seed), _STREAM_IDENTITY])
    ref = _parse_date(reference_date)
    whole = int(age_years)
    latest = _years_before(ref, whole)  # born on this day: turns `whole` exactly on ref
    earliest = _years_before(ref, whole + 1) + timedelta(days=1)  # one day later would already be whole + 1
    birth = earliest + timedelta(days=int(rng.integers(0, (latest - earliest).days + 1)))
    body = f"{int(rng.integers(1_000_000, 10_000_000)):07d}"

    def staff(prefix: str) -> str:
        fam = FAMILY_NAMES[int(rng.integers(len(FAMILY_NAMES)))]
        giv = STAFF_GIVEN_NAMES[int(rng.integers(len(STAFF_GIVEN_NAMES)))]
        return f"{fam}^{giv}^^{prefix}" if prefix else f"{fam}^{giv}"

    return FakeIdentity(
        given_name=GIVEN_NAMES[int(rng.integers(len(GIVEN_NAMES)))],
        family_name=FAMILY_NAMES[int(rng.integers(len(FAMILY_NAMES)))],
        sex="F",
        birth_date=birth.strftime("%Y%m%d"),
        age_years=whole,
        reference_date=ref.strftime("%Y%m%d"),
        mrn=body + str(_luhn_digit(body)),
        accession_number=f"US{ref.year % 100:02d}{int(rng.integers(0, 1_000_000)):06d}",
        institution_name=INSTITUTIONS[int(rng.integers(len(INSTITUTIONS)))],
        referring_physician=staff("DR"),
        operator_name=staff(""),
    )
