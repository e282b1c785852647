"""Free-text breast ultrasound and surgical pathology reports for the synthetic cohort.

The report encoder turns every sentence into one token (MiniLM), so the generator aims at the variability
that makes real reports hard to read by machine while keeping every stated value true to the record:

- two template families, one per site ``report_style``: ``"internal"`` writes full prose (BI-RADS,
  Nottingham grade, sizes in mm, Allred/H-scores); ``"external"`` is terse and abbreviated, with
  capitalised headers, "BIRADS", ultrasound sizes in cm and "T3 P2 M2" grade shorthand;
- synonyms for every descriptor (listed in :data:`REPORT_LEXICON`), several sentence orders and groupings;
- occasional omission of individual descriptor sentences (``omission_rate``, per sentence) and letter
  typos (``typo_rate``, per sentence: a swapped, dropped or doubled letter, never in a token with digits).

Each report draws from three independent random streams (content, omissions, typos), so changing
``omission_rate`` or ``typo_rate`` never changes which templates or numbers were chosen. Every sentence
ends with a period, and the report reader's :func:`mrrp.io.reports.split_sentences` (the one the text
encoder uses on real reports) splits these reports back into sentences.

The package: :mod:`.lexicon` (styles, descriptor phrases, BI-RADS and Nottingham tables), :mod:`.common`
(streams, sections, typos, rendering), :mod:`.ultrasound` and :mod:`.pathology` (one report each, built
section by section).

Usage::

    from mrrp.io.reports import split_sentences
    from mrrp.synth.reports import pathology_report, ultrasound_report

    text = ultrasound_report(patient.us_findings, seed=patient.seed, style="external", age_years=61)
    sentences = split_sentences(text)
"""

from mrrp.synth.reports.lexicon import (
    BIRADS_SUSPICION,
    MARGIN_STATUSES,
    NOTTINGHAM_SCORE_RANGE,
    REPORT_LEXICON,
    STYLES,
)
from mrrp.synth.reports.pathology import pathology_report, pn_stage, pt_stage
from mrrp.synth.reports.ultrasound import ultrasound_report

__all__ = [
    "BIRADS_SUSPICION",
    "MARGIN_STATUSES",
    "NOTTINGHAM_SCORE_RANGE",
    "REPORT_LEXICON",
    "STYLES",
    "pathology_report",
    "pn_stage",
    "pt_stage",
    "ultrasound_report",
]
