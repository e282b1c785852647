"""Read a free-text ultrasound or pathology report, from a file or pasted, into clean Unicode text.

Accepts UTF-8 (with or without BOM), UTF-16/32 with a BOM, and Windows-1252/Latin-1 legacy exports; refuses
what is not plain text (PDF, Word, images, DICOM, anything with NUL bytes or many control characters), files
that mix UTF-8 with another encoding, empty reports and reports over
:data:`MAX_REPORT_BYTES`. Line endings are normalised to ``\\n``. Every failure a user can cause is a
:class:`ReportError` with a one-sentence message meant for a clinician.

:func:`split_sentences` cuts a report into the sentences the text encoder embeds one by one (real reports
and the synthetic cohort's alike).
"""

from __future__ import annotations

import codecs
import os
import re
import unicodedata
from pathlib import Path

from mrrp._uploads import shown_name
from mrrp.errors import InputError

# A long pathology report is ~10 kB; 100 kB is ten times that, and bounds the encoder's work.
MAX_REPORT_BYTES = 100_000

# Share of control characters (other than tab/newline/form feed) above which decoded "text" is binary.
_MAX_CONTROL_FRACTION = 0.01

# Never split after these (lower case, without the final period). The synthetic report generator never
# puts a typo in them either, so its reports split as they were written.
ABBREVIATIONS = frozenset(
    {"approx", "appr", "e.g", "i.e", "eg", "ie", "dr", "prof", "mr", "mrs", "ms", "vs", "cf", "incl", "resp", "fig"}
)

# A pasted single line that names a file rather than being report text (so a typo in a path is reported
# as a missing file, not analysed as a one-sentence report).
_PATH_SUFFIXES = (".txt", ".text", ".md", ".rtf", ".pdf", ".doc", ".docx", ".odt", ".csv", ".log", ".dat", ".hl7")
_PATH_PREFIX = re.compile(r"^(?:/|~/|\./|\.\./|[A-Za-z]:[\\/]|\\\\)")

_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a Word document or ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "a legacy Word/Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)
# A well-formed UTF-8 sequence of two to four bytes; one in a file that is not valid UTF-8 means mixed encodings
# (legacy single-byte text practically never pairs a lead byte with the right continuation bytes).
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
# BOMs, longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class ReportError(InputError):
    """A report cannot be used."""


class ReportNotFoundError(ReportError):
    """The report file does not exist or is a folder."""


class EmptyReportError(ReportError):
    """The report has no text."""


class UnsupportedReportFormatError(ReportError):
    """The file is not plain text (PDF, Word, image, other binary)."""


class ReportTooLargeError(ReportError):
    """The report is larger than :data:`MAX_REPORT_BYTES`."""


def _looks_like_path(text: str) -> bool:
    candidate = text.strip()
    if not candidate or "\n" in candidate or len(candidate) > 1024:
        return False
    return bool(_PATH_PREFIX.match(candidate)) or candidate.lower().endswith(_PATH_SUFFIXES)


def _too_large(what: str, size_bytes: int, limit_bytes: int = MAX_REPORT_BYTES) -> ReportTooLargeError:
    return ReportTooLargeError(
        f"{what} is {size_bytes / 1000:.0f} kB, more than the {limit_bytes / 1000:g} kB limit for one report; "
        "please submit a single report."
    )


def _decode(raw: bytes, what: str) -> str:
    """Bytes → str: BOM first, then strict UTF-8, then Windows-1252, then Latin-1 (which never fails); binary
    files and files mixing UTF-8 with another encoding are refused."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                raise UnsupportedReportFormatError(
                    f"{what} claims to be {encoding.upper()} text but cannot be decoded; please save it as UTF-8 text."
                ) from None
    for magic, desc in _BINARY_MAGIC:
        if raw.startswith(magic):
            raise UnsupportedReportFormatError(
                f"{what} is {desc}, not plain text; please copy the report text or save it as a .txt file."
            )
    if b"\0" in raw:
        # UTF-16 without a BOM is rare in practice; NULs nearly always mean a binary file.
        raise UnsupportedReportFormatError(
            f"{what} is a binary file, not plain text; please copy the report text or save it as a .txt file."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if _UTF8_MULTIBYTE.search(raw):
        # Part UTF-8, part something else (a UTF-8 report with a Latin-1 tail pasted on): no one decoding
        # reads both parts, and guessing would misspell every accented word of one of them.
        raise UnsupportedReportFormatError(
            f"{what} mixes two text encodings, so some of its characters cannot be read correctly; "
            "please save it again as UTF-8 text."
        )
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def normalise_report_text(text: str, *, what: str = "The report", max_bytes: int | None = MAX_REPORT_BYTES) -> str:
    """Validate and clean report text: NFC, ``\\n`` line endings, no BOM, no trailing spaces, stripped.

    Raises :class:`ReportError` subclasses for empty text, binary content and text over ``max_bytes``
    (UTF-8 encoded; None skips the check, e.g. when the file size was already checked).
    """
    if "\0" in text:
        raise UnsupportedReportFormatError(
            f"{what} contains binary data, not plain text; please copy the report text or save it as a .txt file."
        )
    if max_bytes is not None:
        size_bytes = len(text.encode("utf-8", errors="surrogatepass"))
        if size_bytes > max_bytes:
            raise _too_large(what, size_bytes, max_bytes)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = text.replace("\f", "\n\n").replace("\ufeff", "")
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n")
    if controls > _MAX_CONTROL_FRACTION * max(len(text), 1):
        raise UnsupportedReportFormatError(
            f"{what} looks like a binary file, not plain text; please copy the report text or save it as a .txt file."
        )
    if controls:
        text = "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) != "Cc")
    # NFC: "é" typed and "e + combining accent" exported by some systems must tokenise the same.
    text = unicodedata.normalize("NFC", text)
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    if not text:
        raise EmptyReportError(f"{what} is empty; please paste the report text or choose the report file.")
    return text


def read_report(path_or_text: str | os.PathLike[str]) -> str:
    """A report as clean text, from a file path (``PathLike``, or a ``str`` naming an existing file) or pasted text.

    A ``str`` that is a single line ending in a document extension or starting like a path but names no file
    raises :class:`ReportNotFoundError` rather than being analysed as a one-line report.
    """
    if isinstance(path_or_text, str):
        candidate = path_or_text.strip()
        is_file = False
        if candidate and "\n" not in candidate and len(candidate) <= 4096:
            try:
                is_file = Path(candidate).expanduser().is_file()
            except (OSError, ValueError):
                is_file = False
        if not is_file:
            if _looks_like_path(path_or_text):
                p = Path(candidate)
                raise ReportNotFoundError(f"The report file '{shown_name(p.name)}' was not found at {p.parent}.")
            return normalise_report_text(path_or_text, what="The pasted report")
        path = Path(candidate).expanduser()
    else:
        path = Path(path_or_text)

    what = f"The report file '{shown_name(path.name)}'"
    if not path.exists():
        raise ReportNotFoundError(f"{what} was not found at {path.parent}.")
    if not path.is_file():
        raise ReportNotFoundError(f"'{shown_name(path.name)}' is a folder, not a report file.")
    size_bytes = path.stat().st_size
    if size_bytes == 0:
        raise EmptyReportError(f"{what} is empty (0 bytes); please choose the file that contains the report.")
    if size_bytes > MAX_REPORT_BYTES:
        raise _too_large(what, size_bytes)  # checked before reading: never load a large file to reject it
    raw = path.read_bytes()
    return normalise_report_text(_decode(raw, what), what=what, max_bytes=None)


# --- sentence splitting -------------------------------------------------------------------------------------

# A list marker at the start of a line: "- ", "* ", "• ", "1. ", "2) ", "(a) ", "a) ". Not "1.5 cm".
_LIST_MARKER = re.compile(r"^(?:[-*•·]|\(?\d{1,2}[.)]|\(?[a-zA-Z]\))\s+")
# Sentence-final punctuation (with closing quotes/brackets) followed by whitespace or the end.
_TERMINAL = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")
_INITIALISM = re.compile(r"(?:[a-z]\.)+[a-z]")  # "e.g", "i.e", "u.s" (the final period is the candidate)
_TITLES = frozenset({"dr", "prof", "mr", "mrs", "ms"})


def _is_header(line: str) -> bool:
    """A section header alone on its line ("FINDINGS:", "Macroscopic description:")."""
    return line.endswith(":") and len(line.split()) <= 6 and not re.search(r"[.!?]\s", line)


def _line_closed(line: str) -> bool:
    letters = re.sub(r"[^A-Za-z]", "", line)
    return bool(re.search(r"[.!?:;][\"')\]]*$", line)) or (letters.isupper() and len(letters) > 1)


def _is_boundary(text: str, start: int, end: int) -> bool:
    """Whether the punctuation text[start:end] ends a sentence."""
    before = text[:start].split()
    prev = before[-1].lstrip("([\"'").lower() if before else ""
    after = text[end:].split(maxsplit=1)
    nxt = after[0] if after else ""
    if not nxt:
        return True
    if text[start] == "." and (prev in ABBREVIATIONS or _INITIALISM.fullmatch(prev)):
        return False
    word = nxt.strip(".,;:()\"'")
    if word.isalpha() and word.islower():
        return False  # "approx. twelve": a lower-case word after a period continues; "pTNM", "pT1c" start one
    if text[start] == "." and len(prev) == 1 and prev.isalpha() and nxt[0].isupper():
        # An initial ("Dr. A. Smith") when preceded by a title or another initial.
        earlier = before[-2].rstrip(".").lower() if len(before) >= 2 else ""
        if earlier in _TITLES or (len(earlier) == 1 and earlier.isalpha()):
            return False
    return True


def _split_block(block: str) -> list[str]:
    out: list[str] = []
    last = 0
    for m in _TERMINAL.finditer(block):
        if _is_boundary(block, m.start(), m.end()):
            piece = block[last : m.end()].strip()
            if piece:
                out.append(piece)
            last = m.end()
    tail = block[last:].strip()
    if tail:
        out.append(tail)
    return out


def split_sentences(text: str) -> list[str]:
    """Split a report into non-empty, stripped sentences.

    Handles decimals ("1.5 cm"), abbreviations ("approx.", "e.g.", "Dr. A. Smith"), list markers
    ("1. ", "- "), headers alone on a line ("FINDINGS:", joined to the first sentence of their section, as
    if written inline), titles without a period, and line breaks: a line that ends without punctuation
    continues on the next line when that starts in lower case or with a digit (wrapped text).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[str] = []
    current = ""
    header = ""
    for raw in lines:
        line = " ".join(raw.split())
        if not line:
            if current:
                blocks.append(current)
            current = ""
            continue
        marker = _LIST_MARKER.match(line)
        if marker:
            line = line[marker.end() :].strip()
            if not line:
                continue
        if _is_header(line):
            if current:
                blocks.append(current)
            if header:
                blocks.append(header)  # a header whose section is empty
            current, header = "", line
            continue
        wrapped = current and not marker and not _line_closed(current) and (line[0].islower() or line[0].isdigit())
        if wrapped:
            current = f"{current} {line}"
        else:
            if current:
                blocks.append(current)
            current = f"{header} {line}" if header else line
            header = ""
    if current:
        blocks.append(current)
    if header:
        blocks.append(header)
    return [s for block in blocks for s in _split_block(block)]
