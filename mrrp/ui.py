"""Texts and small helpers shared by the pages (no Streamlit import here)."""

from __future__ import annotations

import html
import re

NOTICE = (
    "Research and demonstration software. The bundled models are trained on synthetic data "
    "and are not for clinical decisions."
)

UNEXPECTED = (
    "Something went wrong while processing this input. Your other inputs are kept; "
    "try again, or report the problem with the file name."
)

# -- showing user-supplied text ------------------------------------------------------------------
# Streamlit renders the body of st.markdown/caption/error/warning/info/success/write, headers, image
# captions, progress and status texts, metric labels, tooltips and st.table cells as GitHub-flavoured
# Markdown with its own directives (":red[…]", ":material/x:", emoji ":smile:", "$LaTeX$"). A file name,
# a clinical value or a patient id echoed there raw can draw a live link or fetch an external image.

_WJ = "\u2060"  # WORD JOINER: zero-width and invisible; breaks a pattern without changing what is shown
# Streamlit's Markdown turns bare "https://…", "www.…" and "name@host.tld" into links after backslash
# escapes are resolved (remark-gfm's autolink-literal pass over the text), so a backslash cannot stop
# them; a word joiner inside the pattern does. The same holds for emoji shortcodes (":smile:").
_BARE_LINK = re.compile(r"(?i)(?<=https:)(?=//)|(?<=http:)(?=//)|(?<=www)(?=\.)|(?<=@)")
# Streamlit replaces ":material/" in the raw text before parsing, so any occurrence gets the joiner too.
_SHORTCODE = re.compile(r":(?=[\w+/-]+:|material/)")
# Characters that open Markdown, HTML, entity or LaTeX syntax anywhere in a line get CommonMark's
# backslash escape (valid for any ASCII punctuation), and so does ":" before a name (Streamlit's
# ":name[…]" directives). "!" and "(" ")" need none: an image or link needs an unescaped "[" first. "_"
# between two letters or digits cannot open emphasis, so "path_report_path" stays as it is.
_SPECIAL = re.compile(r"[\\`*\[\]<>#|~$&]|(?<![^\W_])_|_(?![^\W_])|:(?=[A-Za-z])")
_INDENT = re.compile(r"(?m)^[ \t]+")  # four leading spaces would make a code block
_BULLET = re.compile(r"(?m)^([-+=])")  # "- x", "+ x" lists; "---" / "===" under a line make a heading
_NUMBERED = re.compile(
    r"(?m)^(\d{1,9})([.)])(?=[ \t]|$)"
)  # "1. x", "1) x" ordered lists (CommonMark: 1-9 digits, then a space or the end)


def md_escape(text: object) -> str:
    """``text`` as Markdown that Streamlit shows literally: no link, image, HTML, emphasis, heading or directive.

    For every user-supplied string (file names, record values, patient ids, report text, and the error
    messages that embed them) on its way to a Markdown-rendering Streamlit call; escape once, at display.
    Special characters get CommonMark's backslash escape, block starts at the beginning of a line are
    neutralised, and bare URLs, e-mail addresses and emoji shortcodes get an invisible word joiner; the text
    reads the same on screen (``AppTest`` sees the escaped source).
    """
    s = str(text).replace("\r\n", "\n").replace("\r", "\n")
    s = _BARE_LINK.sub(_WJ, s)
    s = _SHORTCODE.sub(":" + _WJ, s)
    s = _SPECIAL.sub(lambda m: "\\" + m.group(0), s)
    s = _INDENT.sub("", s)
    s = _BULLET.sub(r"\\\1", s)
    return _NUMBERED.sub(r"\1\\\2", s)


def html_escape(text: object) -> str:
    """``text`` for an HTML element's content or a quoted attribute: ``& < > " '`` as entities.

    Line breaks become spaces (what HTML shows anyway), so text placed in HTML inside ``st.markdown``
    cannot end the HTML block with a blank line and be read as Markdown.
    """
    return html.escape(re.sub(r"[\r\n]+", " ", str(text)), quote=True)


def md_code(text: object) -> str:
    """``text`` as an inline code span that cannot be closed early: a fence longer than any run of backticks in it.

    Code spans are shown verbatim (no links, emphasis or directives), so this suits versions, folders and
    file names shown in code style.
    """
    s = re.sub(r"[\r\n]+", " ", str(text))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"
