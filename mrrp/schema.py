"""The clinical record: fields, units, ranges and categories, and their validation.

One definition serves the synthetic cohort, the manifest reader, the clinical encoder and the
dashboard form. Every field may be unknown (``None``); values outside the range or category
list are an :class:`mrrp.errors.InvalidValueError` with a message naming the field and unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mrrp.errors import InvalidValueError


@dataclass(frozen=True)
class ClinicalField:
    name: str
    label: str
    kind: str  # "numeric" or "categorical"
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    categories: tuple[str, ...] = ()

    def parse(self, value: object) -> float | str | None:
        """A clean value or None (unknown); raises InvalidValueError for a bad value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        text = str(value).strip()
        if text == "" or text.lower() in ("unknown", "na", "n/a", "nan", "none", "not assessed"):
            return None
        if self.kind == "numeric":
            try:
                number = float(text.rstrip("%").strip())
            except ValueError:
                raise InvalidValueError(f"{self.label}: '{text}' is not a number{self._unit_hint()}.") from None
            if not math.isfinite(number):
                raise InvalidValueError(f"{self.label}: '{text}' is not a number{self._unit_hint()}.")
            if self.integer and number != int(number):
                raise InvalidValueError(f"{self.label}: {text} must be a whole number.")
            if (self.minimum is not None and number < self.minimum) or (
                self.maximum is not None and number > self.maximum
            ):
                raise InvalidValueError(
                    f"{self.label}: {number:g}{(' ' + self.unit) if self.unit else ''} is outside "
                    f"{self.minimum:g}–{self.maximum:g}{(' ' + self.unit) if self.unit else ''}."
                )
            return int(number) if self.integer else number
        key = text.lower()
        for cat in self.categories:
            if key == cat.lower():
                return cat
        raise InvalidValueError(f"{self.label}: '{text}' is not one of {', '.join(self.categories)} (or unknown).")

    def _unit_hint(self) -> str:
        return f" (in {self.unit})" if self.unit else ""


YES_NO = ("yes", "no")

CLINICAL_FIELDS: tuple[ClinicalField, ...] = (
    ClinicalField("age_years", "Age", "numeric", "years", 18, 100),
    ClinicalField("menopausal_status", "Menopausal status", "categorical", categories=("pre", "post")),
    ClinicalField("tumour_size_mm", "Invasive tumour size", "numeric", "mm", 0.5, 200),
    ClinicalField("histological_grade", "Histological grade", "numeric", "", 1, 3, integer=True),
    ClinicalField("positive_lymph_nodes", "Positive lymph nodes", "numeric", "nodes", 0, 60, integer=True),
    ClinicalField("er_percent", "ER", "numeric", "%", 0, 100),
    ClinicalField("pr_percent", "PR", "numeric", "%", 0, 100),
    ClinicalField("ki67_percent", "Ki-67", "numeric", "%", 0, 100),
    ClinicalField("lymphovascular_invasion", "Lymphovascular invasion", "categorical", categories=YES_NO),
    ClinicalField(
        "histological_type",
        "Histological type",
        "categorical",
        categories=(
            "invasive carcinoma of no special type",
            "invasive lobular carcinoma",
            "mucinous carcinoma",
            "other",
        ),
    ),
    ClinicalField("endocrine_therapy", "Endocrine therapy", "categorical", categories=YES_NO),
    ClinicalField("chemotherapy", "Chemotherapy", "categorical", categories=YES_NO),
    ClinicalField("radiotherapy", "Radiotherapy", "categorical", categories=YES_NO),
)
CLINICAL_FIELD_NAMES = tuple(f.name for f in CLINICAL_FIELDS)
FIELDS_BY_NAME = {f.name: f for f in CLINICAL_FIELDS}


def parse_clinical_record(raw: dict[str, object]) -> dict[str, float | str | None]:
    """Validate every field of ``raw`` (missing keys = unknown). Raises one InvalidValueError listing all problems."""
    out: dict[str, float | str | None] = {}
    problems = []
    for f in CLINICAL_FIELDS:
        try:
            out[f.name] = f.parse(raw.get(f.name))
        except InvalidValueError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidValueError("; ".join(problems))
    return out
