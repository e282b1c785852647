"""Who vouches for a model bundle: the bundled models by their pinned digest, a site's bundles by its signature.

Integrity (checksums.json) says a bundle is unchanged since its checksums were written; it does not say who
wrote them. So:

- the bundled models are vouched for by the package itself: their digests are pinned in
  :data:`mrrp.resources.BUNDLED_DIGESTS` (a byte-identical copy anywhere is the bundled model too);
- a site signs the bundles it trains with its own Ed25519 key (``mrrp keygen`` once, ``mrrp sign`` per
  bundle) and lists the public keys it trusts, with a name for each, in the file named by
  ``MRRP_TRUSTED_KEYS`` (one ``<name> <key>`` a line);
- anything else (unsigned, or signed by a key the site does not list) is refused, unless the site sets
  ``MRRP_ALLOW_UNSIGNED``, and then it is used with a visible warning.

The signature covers the bytes of checksums.json, which holds the sha256 of every other file, so a signed
bundle cannot change by one byte. It is kept in ``signature.json`` beside it, not listed in checksums.json,
so signing changes neither the bundle's checksum nor its version string. The name shown for a signer is the
one the site gave the key in its trusted-keys file, never one the bundle claims. The private key stays where
the site keeps it: ``mrrp keygen`` and ``mrrp sign`` refuse to put it in a bundle or a git working tree.

    signature.json   {"format": "mrrp-signature-1", "public_key": <base64, 32 bytes>, "signature": <base64, 64 bytes>}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mrrp._fs import atomic_write_json, atomic_write_text
from mrrp._hashing import sha256_bytes
from mrrp.errors import InputError
from mrrp.model.bundle import CHECKSUMS, BundleError, _read_plain_file, open_bundle
from mrrp.resources import BUNDLED_DIGESTS
from mrrp.settings import Settings, load_settings

SIGNATURE = "signature.json"
SIGNATURE_FORMAT = "mrrp-signature-1"
_MAX_KEYS_FILE_BYTES = 1 << 20


class UntrustedBundleError(BundleError):
    """A site bundle that nobody this site trusts has signed, while the site does not allow unsigned bundles."""


class SigningError(InputError):
    """A key or trusted-keys file cannot be used, or a signature cannot be written."""


@dataclass(frozen=True)
class Provenance:
    """Who vouches for a bundle: ``kind`` is "bundled", "signed", "unsigned" or "untrusted"."""

    kind: str
    signer: str | None = None  # the site's name for the key, for "signed"

    @property
    def trusted(self) -> bool:
        return self.kind in ("bundled", "signed")

    def describe(self) -> str:
        """One sentence for the sidebar and ``mrrp predict``."""
        if self.kind == "bundled":
            return "Bundled with mrrp (its digest is pinned in the package)."
        if self.kind == "signed":
            return f"Signed by {self.signer}."
        if self.kind == "untrusted":
            return "Signed with a key this site does not list as trusted: nobody here vouches for this model."
        return "Not signed: nobody vouches for this model."


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, n: int) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == n else None


def _refuse_unsafe_key_place(path: Path) -> None:
    """A private key never goes into a bundle folder or a git working tree (it would travel with them)."""
    for folder in (path.parent.resolve(), *path.parent.resolve().parents):
        if (folder / CHECKSUMS).exists():
            raise SigningError(f"The private key '{path.name}' may not be kept inside a model bundle.")
        if (folder / ".git").exists():
            raise SigningError(
                f"The private key '{path.name}' may not be kept inside a git repository ({folder}); keep it elsewhere."
            )


def generate_key(out: str | os.PathLike[str], name: str) -> tuple[Path, str]:
    """Write a new Ed25519 private key to ``out`` (PEM, readable by its owner only) and ``out.pub`` (the line
    for the trusted-keys file). Returns (the public file, the line). Never overwrites a key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    name = " ".join(name.split())
    if not name:
        raise SigningError("Give the key a name (the site or person that signs), e.g. --name 'Site A'.")
    key_path = Path(out)
    pub_path = key_path.with_name(key_path.name + ".pub")
    if key_path.exists() or pub_path.exists():
        raise SigningError(f"'{key_path.name}' already exists; a key is never overwritten.")
    if not key_path.parent.is_dir():
        raise SigningError(f"The folder '{key_path.parent}' does not exist.")
    _refuse_unsafe_key_place(key_path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    line = f"{name} {_b64(raw)}"
    atomic_write_text(pub_path, line + "\n")
    return pub_path, line


def _load_private_key(path: Path):  # -> Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise SigningError(f"The private key '{path.name}' was not found.") from None
    except (OSError, ValueError, TypeError):
        raise SigningError(f"'{path.name}' is not an unencrypted Ed25519 private key (PEM).") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"'{path.name}' is not an Ed25519 private key.")
    return key


def sign_bundle(bundle: str | os.PathLike[str], key: str | os.PathLike[str]) -> Path:
    """Sign the bundle at ``bundle`` (checked first, as a load would) with the private key at ``key``;
    writes ``signature.json`` in the bundle and returns its path. The key itself is never written."""
    from cryptography.hazmat.primitives import serialization

    key_path = Path(key)
    verified = open_bundle(bundle, verify_pin=False)
    if key_path.resolve().parent == verified.path:
        raise SigningError(f"The private key '{key_path.name}' may not be kept inside the bundle it signs.")
    private = _load_private_key(key_path)
    checksums = _read_plain_file(verified.path, CHECKSUMS)
    if isinstance(checksums, str):  # changed since open_bundle: refuse rather than sign something else
        raise BundleError(f"The model bundle '{verified.label}' changed while it was being signed.")
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return atomic_write_json(
        verified.path / SIGNATURE,
        {"format": SIGNATURE_FORMAT, "public_key": _b64(raw_public), "signature": _b64(private.sign(checksums))},
        indent=2,
    )


def read_trusted_keys(path: str | os.PathLike[str] | None) -> dict[bytes, str]:
    """Raw public key -> the site's name for it, from the trusted-keys file (``<name> <base64 key>`` a line,
    ``#`` comments); no file configured means no trusted keys."""
    if path is None:
        return {}
    p = Path(path)
    try:
        data = p.read_bytes()[: _MAX_KEYS_FILE_BYTES + 1]
    except OSError:
        raise SigningError(f"The trusted-keys file '{p.name}' (MRRP_TRUSTED_KEYS) cannot be read.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or len(data) > _MAX_KEYS_FILE_BYTES:
        raise SigningError(f"The trusted-keys file '{p.name}' (MRRP_TRUSTED_KEYS) is not a text file of keys.")
    keys: dict[bytes, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        raw = _unb64(parts[-1], 32) if len(parts) == 2 else None
        if raw is None:
            raise SigningError(
                f"Line {number} of the trusted-keys file '{p.name}' is not '<name> <public key>' (as mrrp keygen "
                "writes it)."
            )
        keys[raw] = parts[0]
    return keys


def provenance(path: str | os.PathLike[str], checksum: str, settings: Settings | None = None) -> Provenance:
    """Who vouches for the (already verified) bundle at ``path`` whose checksum is ``checksum``.

    A signature that is present but does not match the bundle's files is tampering: BundleError, whatever
    the site allows.
    """
    if checksum in BUNDLED_DIGESTS.values():
        return Provenance("bundled")
    settings = settings or load_settings()
    folder = Path(path).resolve()
    label = Path(path).name
    raw = _read_plain_file(folder, SIGNATURE)
    if isinstance(raw, str):
        if raw.endswith("missing"):
            return Provenance("unsigned")
        raise BundleError(f"The model bundle '{label}' has an unusable signature ({raw}).")
    checksums = _read_plain_file(folder, CHECKSUMS)
    try:
        sig = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        sig = None
    public = _unb64(sig.get("public_key"), 32) if isinstance(sig, dict) else None
    signature = _unb64(sig.get("signature"), 64) if isinstance(sig, dict) else None
    if public is None or signature is None or sig.get("format") != SIGNATURE_FORMAT or isinstance(checksums, str):
        raise BundleError(f"The model bundle '{label}' has a malformed signature.json; sign it again or retrain it.")
    if sha256_bytes(checksums) != checksum or not _verifies(public, signature, checksums):
        raise BundleError(
            f"The model bundle '{label}' does not match its signature (it was changed after signing), so it was "
            "not loaded."
        )
    signer = read_trusted_keys(settings.trusted_keys).get(public)
    return Provenance("signed", signer) if signer else Provenance("untrusted")


def _verifies(public: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def require_trusted(path: str | os.PathLike[str], checksum: str, settings: Settings | None = None) -> Provenance:
    """:func:`provenance`, refusing (UntrustedBundleError) a bundle nobody here vouches for unless the site
    allows unsigned bundles (``MRRP_ALLOW_UNSIGNED``); the caller shows ``describe()`` either way."""
    settings = settings or load_settings()
    found = provenance(path, checksum, settings)
    if not found.trusted and not settings.allow_unsigned:
        why = "is not signed" if found.kind == "unsigned" else "is signed with a key this site does not trust"
        raise UntrustedBundleError(
            f"The model bundle '{Path(path).name}' {why}, so it was not loaded; sign it with the site's key "
            "(mrrp sign) or allow unsigned bundles (MRRP_ALLOW_UNSIGNED)."
        )
    return found
