"""The clinical record: fields, units, ranges and categories, and their validation.

One definition serves the synthetic cohort, the manifest reader, the clinical encoder, the uploaded
record and the dashboard form. Every field may be unknown (``None``); a value outside the range or
category list, or in a notation that cannot be read without guessing, is an
:class:`mrrp.errors.InvalidValueError` with a message naming the field and unit.

Values are read in the notations clinicians and hospital exports use: a unit after the number
(``2.2 cm`` → 22 mm, ``95%``), Roman or prefixed grades (``II``, ``G2``, ``grade 2``, ``2/3``),
positive over examined nodes (``3/12``), and the usual spellings of yes/no and of each category
(``present``/``absent``, ``positive``/``negative``, ``postmenopausal``, ``IDC``…). Percentages of
stained nuclei given as a fraction (``0.95``) are refused rather than read as 0.95 %: 0 < x < 1
is accepted only when the value itself carries a ``%`` sign. Column names are matched by field
name, label or a synonym (:func:`field_for_column`), with a unit in the header (``Tumour size (cm)``)
applying to the values below it.
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from mrrp.errors import InvalidValueError

UNKNOWN_WORDS = frozenset({"", "unknown", "na", "n/a", "nan", "none", "null", "not assessed", "not known", "nk", "?"})
MAX_SHOWN_CHARS = 60  # a value echoed in a message is cut here, so a 200 kB cell cannot fill the screen
# A file path is quoted whole up to here: the user has to find the file (PATH_MAX on Linux is 4096).
MAX_SHOWN_PATH_CHARS = 4096


def _spellings(text: str) -> tuple[str, ...]:
    """'a; b c; d' → ('a', 'b c', 'd'): long lists of words stay one readable line each."""
    return tuple(w.strip() for w in text.split(";") if w.strip())


# Units a value (or its column header) may carry, per field unit: the factor to the field's unit.
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "mm": dict.fromkeys(_spellings("mm; millimetre; millimetres; millimeter; millimeters"), 1.0)
    | dict.fromkeys(_spellings("cm; centimetre; centimetres; centimeter; centimeters"), 10.0),
    "years": dict.fromkeys(_spellings("years; year; y; yr; yrs; yo; y/o; years old; a"), 1.0),
    "%": dict.fromkeys(_spellings("%; percent; pct; per cent"), 1.0),
    "nodes": dict.fromkeys(_spellings("nodes; node; positive; positive nodes; ln"), 1.0),
}
UNIT_HINTS = {"mm": "mm or cm", "years": "years", "%": "% of stained nuclei", "nodes": "a count of nodes"}

# Other spellings of a category, by the category they mean (lower case, spaces collapsed). A field uses
# the entries of its own categories only, so "positive" is "yes" for LVI and "positive" for HER2.
CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "yes": _spellings("y; true; 1; present; positive; pos; +; detected; identified; seen; given; received; done"),
    "no": _spellings(
        "n; false; 0; absent; negative; neg; -; not detected; not identified; not seen; none seen; not given; "
        "not received; not done"
    ),
    "pre": _spellings("premenopausal; pre-menopausal; pre menopausal; premenopause"),
    "post": _spellings("postmenopausal; post-menopausal; post menopausal; postmenopause"),
    "positive": _spellings("pos; +; 3+; amplified"),
    "negative": _spellings("neg; -; 0; 1+; 0/1+; not amplified"),
    "invasive carcinoma of no special type": _spellings(
        "nst; ic nst; idc; ductal; invasive ductal carcinoma; invasive ductal; ductal nst; no special type; "
        "invasive carcinoma nst; invasive breast carcinoma of no special type"
    ),
    "invasive lobular carcinoma": _spellings("ilc; lobular; invasive lobular; lobular carcinoma"),
    "mucinous carcinoma": _spellings("mucinous; colloid; colloid carcinoma; mucinous adenocarcinoma"),
}

_NUMBER_WITH_UNIT = re.compile(r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?)\s*(?P<unit>\D.*)?")
_RANGE = re.compile(r"\d+(?:\.\d*)?\s*%?\s*(?:-|–|to)\s*\d+(?:\.\d*)?\s*\D*")
_GRADE_PREFIX = re.compile(
    r"^(?:(?:nottingham|elston|modified bloom[- ]richardson|bloom[- ]richardson|sbr|nhg|histologic(?:al)?|"
    r"tumou?r)\s+)?(?:grade|g)\s*[:.]?\s*"
)
_ROMAN = {"i": 1, "ii": 2, "iii": 3}
_FRACTION_OF = re.compile(r"(\d{1,4})\s*(?:/|of)\s*(\d{1,4})")


def shown(value: object, max_chars: int = MAX_SHOWN_CHARS) -> str:
    """A user's value as a message quotes it: one line, at most ``max_chars`` characters."""
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # an int beyond Python's int-to-str limit
        return "a number with thousands of digits"
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _is_nan(value: object) -> bool:
    """NaN as Python, pandas or numpy give it (an int is never NaN, and may be too large for a float)."""
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and math.isnan(value)


def _normal_text(text: str) -> str:
    """Lower case, NFKC (full-width digits, non-breaking spaces), spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


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
    aliases: tuple[str, ...] = ()  # other column names clinicians and exports use
    notation: str = ""  # "grade": I/II/III, G2, "grade 2", 2/3; "nodes": positive/examined as 3/12

    def parse(self, value: object, unit: str | None = None) -> float | str | None:
        """A clean value or None (unknown); raises InvalidValueError for a bad value.

        ``unit`` is the unit the column header gave (e.g. "cm"); a unit written with the value wins.
        """
        if value is None or _is_nan(value):
            return None
        if isinstance(value, (dict, list, tuple, set)):
            raise InvalidValueError(f"{self.label}: expected one value, not a list or a group of values.")
        if isinstance(value, bool):
            if self.kind == "categorical" and set(self.categories) == {"yes", "no"}:
                return "yes" if value else "no"
            raise InvalidValueError(f"{self.label}: '{value}' is not {self._expected()}.")
        if self.kind == "numeric":
            return self._parse_number(value, unit)
        if isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer()):
            value = int(value)  # 1.0 from a spreadsheet export means the code 1
        text = value if isinstance(value, str) else shown(value)
        key = _normal_text(text)
        if key in UNKNOWN_WORDS:
            return None
        for cat in self.categories:
            if key == cat.lower() or key in CATEGORY_SYNONYMS.get(cat, ()):
                return cat
        raise InvalidValueError(
            f"{self.label}: '{shown(text)}' is not one of {', '.join(self.categories)} (or unknown)."
        )

    def _parse_number(self, value: object, unit: str | None) -> float | None:
        if isinstance(value, numbers.Real):  # Python and numpy numbers
            value = int(value) if isinstance(value, numbers.Integral) else float(value)
            if isinstance(value, int) and abs(value) > 10**12:  # a huge int cannot become a float or a string
                raise InvalidValueError(f"{self.label}: the number given is far outside {self._range()}.")
            text = repr(value)
            if math.isfinite(value):
                self._refuse_fraction(float(value), text)
            number = float(value) * self._unit_factor(unit, text, from_header=True)
        else:
            text = value if isinstance(value, str) else shown(value)
            key = _normal_text(text)
            if key in UNKNOWN_WORDS or (self.notation == "grade" and key in ("gx", "grade x", "x")):
                return None
            number = self._number_from_text(key, text, unit)
        if not math.isfinite(number):
            raise InvalidValueError(f"{self.label}: '{shown(text)}' is not a number{self._unit_hint()}.")
        if self.integer and number != int(number):
            raise InvalidValueError(f"{self.label}: {shown(text)} must be a whole number.")
        if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
            raise InvalidValueError(f"{self.label}: {number:g}{self._unit_suffix()} is outside {self._range()}.")
        return int(number) if self.integer else number

    def _number_from_text(self, key: str, text: str, header_unit: str | None) -> float:
        """A number in this field's unit from text such as "2.2 cm", "95%", "II", "3/12"."""
        if self.notation == "grade":
            grade = _GRADE_PREFIX.sub("", key).strip()
            if grade in _ROMAN:
                return float(_ROMAN[grade])
            of = _FRACTION_OF.fullmatch(grade)
            key = of.group(1) if of and of.group(2) == "3" else grade
        elif self.notation == "nodes":
            of = _FRACTION_OF.fullmatch(key)
            if of:
                positive, examined = int(of.group(1)), int(of.group(2))
                if positive > examined:
                    raise InvalidValueError(
                        f"{self.label}: '{shown(text)}' has more positive nodes than nodes examined."
                    )
                key = str(positive)
        if _RANGE.fullmatch(key):
            raise InvalidValueError(f"{self.label}: '{shown(text)}' is a range; give one value{self._unit_hint()}.")
        match = _NUMBER_WITH_UNIT.fullmatch(key.replace(" %", "%"))
        if match is None:
            raise InvalidValueError(f"{self.label}: '{shown(text)}' is not {self._expected()}.")
        number = float(match.group("number"))
        written_unit = (match.group("unit") or "").strip().rstrip(".")
        if written_unit:
            factor = self._unit_factor(written_unit, text, from_header=False)
        else:
            factor = self._unit_factor(header_unit, text, from_header=True)
        if not written_unit.startswith("%"):
            self._refuse_fraction(number, text)
        return number * factor

    def _unit_factor(self, unit: str | None, text: str, *, from_header: bool) -> float:
        """The factor from ``unit`` to this field's unit; a unit this field cannot be in is refused."""
        if not unit:
            return 1.0
        factors = UNIT_FACTORS.get(self.unit, {})
        key = _normal_text(unit)
        if key in factors:
            return factors[key]
        hint = f"; give it in {UNIT_HINTS[self.unit]}" if self.unit in UNIT_HINTS else "; give a plain number"
        where = f"the column's unit '{shown(unit)}'" if from_header else f"the unit in '{shown(text)}'"
        raise InvalidValueError(f"{self.label}: {where} is not understood{hint}.")

    def _refuse_fraction(self, number: float, text: str) -> None:
        """A percentage written as a fraction (0.95 for 95 %) would be read 100 times too small: refuse it."""
        if self.unit == "%" and 0 < number < 1:
            raise InvalidValueError(
                f"{self.label}: '{shown(text)}' looks like a fraction; give the percentage of stained nuclei "
                f"(e.g. 95 for 95%), or write '{number:g}%' if under 1% is meant."
            )

    def _expected(self) -> str:
        if self.kind == "categorical":
            return f"one of {', '.join(self.categories)}"
        if self.unit == "%":
            return "a percentage (e.g. 95 or 95%)"
        if self.notation == "grade":
            return "a grade 1, 2 or 3 (I, II, III)"
        return f"a number{self._unit_hint()}"

    def _unit_suffix(self) -> str:
        return f" {self.unit}" if self.unit else ""

    def _range(self) -> str:
        return f"{self.minimum:g}–{self.maximum:g}{self._unit_suffix()}"

    def _unit_hint(self) -> str:
        return f" (in {self.unit})" if self.unit else ""


YES_NO = ("yes", "no")

# Column synonyms (matched ignoring case, spaces and punctuation: "Ki-67" = "ki67"; "LN+" = "ln positive").
CLINICAL_FIELDS: tuple[ClinicalField, ...] = (
    ClinicalField(
        "age_years",
        "Age",
        "numeric",
        "years",
        18,
        100,
        aliases=_spellings("age; age at diagnosis; patient age; age at surgery; age yrs; age years"),
    ),
    ClinicalField(
        "menopausal_status",
        "Menopausal status",
        "categorical",
        categories=("pre", "post"),
        aliases=_spellings("menopause; menopausal; menopause status; meno; menostat"),
    ),
    ClinicalField(
        "tumour_size_mm",
        "Invasive tumour size",
        "numeric",
        "mm",
        0.5,
        200,
        aliases=_spellings(
            "tumour size; tumor size; invasive tumor size; invasive size; size; pt size; tumour diameter; "
            "tumor diameter; tsize; invasive tumour size mm; tumor size mm"
        ),
    ),
    ClinicalField(
        "histological_grade",
        "Histological grade",
        "numeric",
        "",
        1,
        3,
        integer=True,
        notation="grade",
        aliases=_spellings(
            "grade; histologic grade; nottingham grade; tumour grade; tumor grade; elston grade; nhg; tgrade; "
            "sbr grade; bloom richardson grade"
        ),
    ),
    ClinicalField(
        "positive_lymph_nodes",
        "Positive lymph nodes",
        "numeric",
        "nodes",
        0,
        60,
        integer=True,
        notation="nodes",
        aliases=_spellings(
            "nodes; positive nodes; ln positive; positive ln; pnodes; nodes positive; node positive; "
            "lymph nodes positive; number of positive nodes; involved nodes; positive axillary nodes"
        ),
    ),
    ClinicalField(
        "er_percent",
        "ER",
        "numeric",
        "%",
        0,
        100,
        aliases=_spellings("er; oestrogen receptor; estrogen receptor; er status; er ihc; estrec"),
    ),
    ClinicalField(
        "pr_percent",
        "PR",
        "numeric",
        "%",
        0,
        100,
        aliases=_spellings("pr; pgr; progesterone receptor; pr status; pgr status; pr ihc; progrec"),
    ),
    ClinicalField(
        "ki67_percent",
        "Ki-67",
        "numeric",
        "%",
        0,
        100,
        aliases=_spellings("ki67; mib1; ki67 index; ki67 proliferation index; ki67 li"),
    ),
    ClinicalField(
        "lymphovascular_invasion",
        "Lymphovascular invasion",
        "categorical",
        categories=YES_NO,
        aliases=_spellings("lvi; lymph vascular invasion; lymphovascular; angiolymphatic invasion; lv invasion"),
    ),
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
        aliases=_spellings(
            "histology; histologic type; histotype; tumour type; tumor type; histological subtype; "
            "histologic subtype; histology type"
        ),
    ),
    ClinicalField(
        "endocrine_therapy",
        "Endocrine therapy",
        "categorical",
        categories=YES_NO,
        aliases=_spellings("hormone therapy; hormonal therapy; horth; endocrine; adjuvant endocrine therapy"),
    ),
    ClinicalField(
        "chemotherapy",
        "Chemotherapy",
        "categorical",
        categories=YES_NO,
        aliases=_spellings("chemo; adjuvant chemotherapy"),
    ),
    ClinicalField(
        "radiotherapy",
        "Radiotherapy",
        "categorical",
        categories=YES_NO,
        aliases=_spellings("radiation; radiation therapy; rt; adjuvant radiotherapy"),
    ),
)
CLINICAL_FIELD_NAMES = tuple(f.name for f in CLINICAL_FIELDS)
FIELDS_BY_NAME = {f.name: f for f in CLINICAL_FIELDS}


def column_key(column: str) -> str:
    """A column name reduced to what identifies it: lower case letters, digits and '%' only ("Ki-67" → "ki67")."""
    text = unicodedata.normalize("NFKC", column).lower().replace("+", " positive ")
    return re.sub(r"[^a-z0-9%]", "", text)


def _column_index(fields: tuple[ClinicalField, ...]) -> dict[str, ClinicalField]:
    index: dict[str, ClinicalField] = {}
    for f in fields:
        for spelling in (f.name, f.label, *f.aliases):
            key = column_key(spelling)
            if index.setdefault(key, f) is not f:
                raise ValueError(f"column spelling '{spelling}' names two clinical fields")
    return index


_COLUMNS = _column_index(CLINICAL_FIELDS)
_HEADER_UNIT = re.compile(r"^(?P<name>.*?)[\s_]*[\(\[]\s*(?P<unit>[^()\[\]]*?)\s*[\)\]]\s*$")
_UNIT_SUFFIXES = sorted({u for units in UNIT_FACTORS.values() for u in units if " " not in u}, key=len, reverse=True)


def field_for_column(column: str) -> tuple[ClinicalField, str | None] | None:
    """The clinical field a column name means and the unit its header gives, or None if it is not one.

    "Ki-67", "MIB-1" → Ki-67; "Tumour size (cm)" and "tumor_size_cm" → tumour size with unit cm.
    """
    whole = _COLUMNS.get(column_key(column))
    if whole is not None:
        return whole, None
    bracketed = _HEADER_UNIT.match(column.strip())
    if bracketed:
        f = _COLUMNS.get(column_key(bracketed.group("name")))
        if f is not None:
            # "(cm)" is a unit; in "Grade (1-3)" or "LVI (yes/no)" the brackets only describe the field.
            return f, (bracketed.group("unit") or None) if f.unit in UNIT_FACTORS else None
    words = re.split(r"[\s_\-]+", _normal_text(column))
    if len(words) > 1 and words[-1] in _UNIT_SUFFIXES:
        f = _COLUMNS.get(column_key(" ".join(words[:-1])))
        if f is not None:
            return f, words[-1]
    return None


def parse_clinical_record(
    raw: Mapping[str, object], units: Mapping[str, str | None] | None = None
) -> dict[str, float | str | None]:
    """Validate every field of ``raw`` (missing keys = unknown). Raises one InvalidValueError listing all problems.

    ``units`` gives, per field name, the unit a file's column header stated (e.g. {"tumour_size_mm": "cm"}).
    Keys of ``raw`` that are not field names are a problem too: nothing given is dropped without a word.
    """
    units = units or {}
    out: dict[str, float | str | None] = {}
    problems = [f"'{shown(k)}' is not a clinical field" for k in raw if k not in FIELDS_BY_NAME]
    for f in CLINICAL_FIELDS:
        try:
            out[f.name] = f.parse(raw.get(f.name), units.get(f.name))
        except InvalidValueError as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidValueError("; ".join(problems))
    return out
