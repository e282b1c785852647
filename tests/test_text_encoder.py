"""Report encoder (all-MiniLM-L6-v2, offline) and report reader."""

from __future__ import annotations

import codecs
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mrrp.errors import InputError
from mrrp.features.text import EMBEDDING_DIM, MODEL_NAME, ReportTokens, SentenceEncoder, get_sentence_encoder
from mrrp.io.reports import (
    MAX_REPORT_BYTES,
    EmptyReportError,
    ReportError,
    ReportNotFoundError,
    ReportTooLargeError,
    UnsupportedReportFormatError,
    read_report,
    split_sentences,
)

SPICULATED = "The mass has spiculated margins."
SPICULATED_2 = "Margins are spiculated."
KI67 = "Ki-67 is 5 percent."

REPORT = """BREAST ULTRASOUND, LEFT

FINDINGS:
At 2 o'clock, 3 cm from the nipple, there is an irregular hypoechoic mass measuring
14 x 9 mm with spiculated margins. Posterior acoustic shadowing is present.
No suspicious axillary lymph nodes.

IMPRESSION:
1. Suspicious mass, BI-RADS 5.
2. Ultrasound-guided core biopsy recommended.
"""


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return get_sentence_encoder()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------------


def test_loads_offline_with_the_network_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:1]))
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    enc = SentenceEncoder.load()  # a fresh load, not the shared instance
    emb = enc.encode([SPICULATED])
    assert emb.shape == (1, EMBEDDING_DIM)
    assert attempts == []  # nothing even tried (a library could swallow the error and fall back)


def test_identity_and_shared_instance(encoder: SentenceEncoder) -> None:
    assert encoder.name == MODEL_NAME == "all-MiniLM-L6-v2"
    assert encoder.embedding_dim == 384 and encoder.max_tokens == 256
    assert len(encoder.version) == 64 and int(encoder.version, 16) >= 0  # sha256 hex of the weights
    assert get_sentence_encoder() is encoder  # loaded once per process


def test_embeddings_are_deterministic_unit_384d(encoder: SentenceEncoder) -> None:
    sentences = [SPICULATED, SPICULATED_2, KI67, "", "word " * 400]  # empty and over-long inputs too
    a = encoder.encode(sentences)
    b = encoder.encode(sentences)
    assert a.shape == (5, 384) and a.dtype == np.float32
    assert np.array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([encoder.encode([s], batch_size=1) for s in sentences])
    np.testing.assert_allclose(one_by_one, a, atol=1e-5)  # padding and batching do not change results
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        encoder.encode(SPICULATED)  # type: ignore[arg-type]


def test_similar_sentences_are_closer(encoder: SentenceEncoder) -> None:
    e = encoder.encode([SPICULATED, SPICULATED_2, KI67])
    close = _cos(e[0], e[1])
    assert close > _cos(e[0], e[2]) + 0.2
    assert close > _cos(e[1], e[2]) + 0.2


def test_encode_report_splits_and_embeds(encoder: SentenceEncoder) -> None:
    tokens = encoder.encode_report(REPORT)
    assert isinstance(tokens, ReportTokens)
    assert tokens.sentences == split_sentences(REPORT)
    assert len(tokens) >= 5 and tokens.embeddings.shape == (len(tokens), 384)
    assert any("spiculated margins" in s for s in tokens.sentences)
    np.testing.assert_allclose(tokens.embeddings[2], encoder.encode([tokens.sentences[2]])[0], atol=1e-5)
    assert encoder.encode_report("").embeddings.shape == (0, 384)


def test_import_stays_cheap() -> None:
    code = (
        "import sys, mrrp.features.text, mrrp.io.reports, mrrp.io.ultrasound; "
        "heavy = [m for m in ('torch', 'transformers', 'tokenizers', 'pydicom', 'PIL') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------------------------------
# Report reader
# --------------------------------------------------------------------------------------------------


def _raises(arg: object, cls: type[Exception], fragment: str) -> None:
    with pytest.raises(cls) as info:
        read_report(arg)  # type: ignore[arg-type]
    msg = str(info.value)
    assert isinstance(info.value, ReportError) and isinstance(info.value, InputError)
    assert "\n" not in msg and msg.endswith(".") and ". " not in msg, msg
    assert fragment in msg, msg


def test_pasted_text_is_normalised() -> None:
    text = "  FINDINGS:\r\nIrregular mass, 14 mm.  \rER/PR positive.\r\n\r\n"
    assert read_report(text) == "FINDINGS:\nIrregular mass, 14 mm.\nER/PR positive."
    assert read_report("ER/PR positive.") == "ER/PR positive."  # a slash is not a path
    assert read_report("Cafe\u0301 au lait spots.") == "Caf\u00e9 au lait spots."  # NFC


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
    ],
)
def test_unicode_files(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    text = "Größe 14 mm, Herdbefund suspekt (BI-RADS 5).\r\nKi-67 ≈ 20 %."
    path = tmp_path / "report.txt"
    path.write_bytes(prefix + text.encode(encoding))
    expected = "Größe 14 mm, Herdbefund suspekt (BI-RADS 5).\nKi-67 ≈ 20 %."
    assert read_report(path) == expected
    assert read_report(str(path)) == expected


def test_legacy_single_byte_files(tmp_path: Path) -> None:
    path = tmp_path / "old.txt"
    path.write_bytes("Läsion 12 mm \u2013 “suspekt”.".encode("cp1252"))
    assert read_report(path) == "Läsion 12 mm \u2013 “suspekt”."
    # 0x81 is undefined in cp1252: the file falls back to Latin-1 and the stray C1 control is dropped.
    path.write_bytes(
        b"L\xe4sion rechts bei 2 Uhr, 12 mm, unscharf begrenzt, dorsale Schallausl\xf6schung. " * 3 + b"\x81"
    )
    assert read_report(path).startswith("Läsion rechts") and "\x81" not in read_report(path)


def test_bad_reports(tmp_path: Path) -> None:
    _raises(tmp_path / "missing.txt", ReportNotFoundError, "was not found")
    _raises(str(tmp_path / "missing.txt"), ReportNotFoundError, "was not found")
    _raises(tmp_path, ReportNotFoundError, "is a folder")
    (tmp_path / "empty.txt").write_bytes(b"")
    _raises(tmp_path / "empty.txt", EmptyReportError, "is empty")
    (tmp_path / "blank.txt").write_text(" \n\t\r\n  ")
    _raises(tmp_path / "blank.txt", EmptyReportError, "is empty")
    _raises("   \n  ", EmptyReportError, "is empty")
    (tmp_path / "r.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj")
    _raises(tmp_path / "r.pdf", UnsupportedReportFormatError, "PDF document")
    (tmp_path / "r.docx").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    _raises(tmp_path / "r.docx", UnsupportedReportFormatError, "Word document")
    (tmp_path / "img.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    _raises(tmp_path / "img.txt", UnsupportedReportFormatError, "PNG image")
    (tmp_path / "bin.txt").write_bytes(b"Mass 12 mm.\x00\x01\x02\x03binary")
    _raises(tmp_path / "bin.txt", UnsupportedReportFormatError, "binary")
    (tmp_path / "ctrl.txt").write_bytes(bytes(range(1, 32)) * 20)
    _raises(tmp_path / "ctrl.txt", UnsupportedReportFormatError, "binary")
    _raises("Mass 12 mm.\x00", UnsupportedReportFormatError, "binary")
    (tmp_path / "big.txt").write_text("The mass is 12 mm. " * (MAX_REPORT_BYTES // 19 + 10))
    _raises(tmp_path / "big.txt", ReportTooLargeError, "100 kB limit")
    _raises("The mass is 12 mm.\n" * (MAX_REPORT_BYTES // 19 + 10), ReportTooLargeError, "100 kB limit")
