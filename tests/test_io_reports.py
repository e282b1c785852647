"""The report reader's sentence splitter: decimals, abbreviations, initials, list markers, headers, wrapped lines."""

from __future__ import annotations

from mrrp.io.reports import split_sentences


def test_split_sentences_examples() -> None:
    text = "Mass measures 1.5 x 1.2 cm. BI-RADS 4C. Biopsy recommended, e.g. US-guided core."
    assert split_sentences(text) == [
        "Mass measures 1.5 x 1.2 cm.",
        "BI-RADS 4C.",
        "Biopsy recommended, e.g. US-guided core.",
    ]
    text = "IMPRESSION:\n1. Mass approx. 12 mm, i.e. small.\n2. Seen by Dr. A. B. Smith. Done!\n\n- pT1c pN0(sn).\n"
    assert split_sentences(text) == [
        "IMPRESSION: Mass approx. 12 mm, i.e. small.",
        "Seen by Dr. A. B. Smith.",
        "Done!",
        "pT1c pN0(sn).",
    ]
    # Wrapped lines join; a title without a period and a header with an empty section stand alone.
    text = (
        "BREAST REPORT\nThe mass lies in the\nupper outer quadrant and measures\n14 mm. Grade 2.\nNOTES:\n\nFINDINGS:\n"
    )
    assert split_sentences(text) == [
        "BREAST REPORT",
        "The mass lies in the upper outer quadrant and measures 14 mm.",
        "Grade 2.",
        "NOTES:",
        "FINDINGS:",
    ]
    assert split_sentences("Ratio 1.4 (HER2/CEP17).\r\nER 90%. pTNM: pT2 pN1a.") == [
        "Ratio 1.4 (HER2/CEP17).",
        "ER 90%.",
        "pTNM: pT2 pN1a.",
    ]
    assert split_sentences("") == [] and split_sentences(" \n\n ") == []
