"""The clinical variables of the pCR model: fields, units, ranges, "unknown", and their numeric encoding.

The fields reuse :class:`mrrp.schema.ClinicalField` (one validation code path for every form and
manifest in mrrp). Every field may be unknown. The encoder turns a record into a fixed-length vector:
numeric and ordinal fields are standardised with training-set means and SDs (unknown → the training
mean, i.e. 0, plus an "unknown" indicator), categorical fields are one-hot (unknown → all zeros).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp.errors import InvalidValueError
from mrrp.schema import ClinicalField

SUBTYPES = ("luminal A", "luminal B", "HER2-enriched", "triple-negative")
T_STAGES = ("T1", "T2", "T3", "T4")
N_STAGES = ("N0", "N1", "N2", "N3")

PCR_CLINICAL_FIELDS: tuple[ClinicalField, ...] = (
    ClinicalField("age_years", "Age", "numeric", "years", 18, 100),
    ClinicalField("menopausal_status", "Menopausal status", "categorical", categories=("pre", "post")),
    ClinicalField("er_percent", "ER", "numeric", "%", 0, 100),
    ClinicalField("pr_percent", "PR", "numeric", "%", 0, 100),
    ClinicalField("her2_status", "HER2", "categorical", categories=("negative", "positive")),
    ClinicalField("ki67_percent", "Ki-67", "numeric", "%", 0, 100),
    ClinicalField("histological_grade", "Histological grade", "numeric", "", 1, 3, integer=True),
    ClinicalField("t_stage", "T stage", "categorical", categories=T_STAGES),
    ClinicalField("n_stage", "N stage", "categorical", categories=N_STAGES),
    ClinicalField("molecular_subtype", "Molecular subtype", "categorical", categories=SUBTYPES),
)
PCR_CLINICAL_NAMES = tuple(f.name for f in PCR_CLINICAL_FIELDS)
PCR_FIELDS_BY_NAME = {f.name: f for f in PCR_CLINICAL_FIELDS}

# Stages are ordered, so they are encoded as numbers (T1 = 1 ... T4 = 4) rather than one-hot.
_ORDINAL = {"t_stage": {s: i + 1 for i, s in enumerate(T_STAGES)}, "n_stage": {s: i for i, s in enumerate(N_STAGES)}}
_NUMERIC = ("age_years", "er_percent", "pr_percent", "ki67_percent", "histological_grade", "t_stage", "n_stage")
_BINARY = {"menopausal_status": "post", "her2_status": "positive"}  # +1 / -1, unknown 0

ClinicalRecord = dict[str, float | str | None]


def parse_pcr_clinical(raw: dict[str, object]) -> ClinicalRecord:
    """Validate a record (missing keys = unknown). One InvalidValueError lists every bad field."""
    unknown_keys = sorted(set(raw) - set(PCR_CLINICAL_NAMES))
    problems = [f"'{k}' is not a clinical variable of the pCR model" for k in unknown_keys]
    out: ClinicalRecord = {}
    for f in PCR_CLINICAL_FIELDS:
        value = raw.get(f.name)
        if f.name in ("t_stage", "n_stage") and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{f.name[0].upper()}{int(value)}" if math.isfinite(value) else None  # 2 → "T2"
        try:
            out[f.name] = f.parse(value)
        except InvalidValueError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidValueError("; ".join(p.rstrip(".") for p in problems) + ".")
    return out


def read_clinical_json(path: str | os.PathLike[str]) -> ClinicalRecord:
    """A clinical record from a JSON object file (keys as in PCR_CLINICAL_NAMES; absent = unknown)."""
    p = Path(path)
    if not p.is_file():
        raise InvalidValueError(f"The clinical record '{p.name}' was not found.")
    if p.stat().st_size > 1_000_000:
        raise InvalidValueError(
            f"The clinical record '{p.name}' is larger than 1 MB; it should be one small JSON object."
        )
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError: also a number past Python's int-to-str limit; RecursionError: nesting thousands deep.
        raise InvalidValueError(f"The clinical record '{p.name}' is not a usable JSON file.") from None
    if not isinstance(raw, dict):
        raise InvalidValueError(f"The clinical record '{p.name}' must be one JSON object of variable: value pairs.")
    return parse_pcr_clinical(raw)


def _raw_numeric(name: str, value: float | str | None) -> float | None:
    if value is None:
        return None
    if name in _ORDINAL:
        return float(_ORDINAL[name][str(value)])
    return float(value)


@dataclass
class ClinicalEncoder:
    """Fitted standardisation. ``dim`` features: numeric z-scores, numeric unknown flags, binaries, subtype one-hot."""

    means: dict[str, float]
    sds: dict[str, float]

    @classmethod
    def fit(cls, records: list[ClinicalRecord]) -> ClinicalEncoder:
        means, sds = {}, {}
        for name in _NUMERIC:
            vals = np.array([v for r in records if (v := _raw_numeric(name, r.get(name))) is not None], float)
            means[name] = float(vals.mean()) if len(vals) else 0.0
            sds[name] = float(vals.std()) if len(vals) > 1 and vals.std() > 1e-6 else 1.0
        return cls(means, sds)

    @property
    def names(self) -> list[str]:
        return (
            [f"{n} (z)" for n in _NUMERIC]
            + [f"{n} unknown" for n in _NUMERIC]
            + [f"{n} = {v}" for n, v in _BINARY.items()]
            + [f"subtype {s}" for s in SUBTYPES]
        )

    @property
    def dim(self) -> int:
        return len(self.names)

    def encode(self, record: ClinicalRecord | None) -> np.ndarray:
        """(dim,) float32; None (no record at all) encodes as every field unknown."""
        record = record or {}
        z, unknown = [], []
        for name in _NUMERIC:
            v = _raw_numeric(name, record.get(name))
            z.append(0.0 if v is None else (v - self.means[name]) / self.sds[name])
            unknown.append(1.0 if v is None else 0.0)
        binary = [
            0.0 if record.get(n) is None else (1.0 if record.get(n) == pos else -1.0) for n, pos in _BINARY.items()
        ]
        subtype = [1.0 if record.get("molecular_subtype") == s else 0.0 for s in SUBTYPES]
        return np.array(z + unknown + binary + subtype, np.float32)

    def encode_many(self, records: list[ClinicalRecord | None]) -> np.ndarray:
        """(N, dim) float32."""
        return np.stack([self.encode(r) for r in records]) if records else np.zeros((0, self.dim), np.float32)

    def to_dict(self) -> dict:
        return {"means": self.means, "sds": self.sds}

    @classmethod
    def from_dict(cls, d: dict) -> ClinicalEncoder:
        return cls(dict(d["means"]), dict(d["sds"]))
