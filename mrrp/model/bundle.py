"""Model bundles: everything needed to predict, in one folder, with a checksum per file.

    config.json            fusion + training config, encoders (names and weight hashes), clinical standardisation
    fold_<k>.pt            state dicts of the cross-validation fold models (the ensemble)
    baseline.json          Breslow baseline cumulative hazards (months) from the training data: one per
                           member (on that member's centred log-risk) and one for the ensemble mean
    cutoffs.json           risk-group cut-offs fixed on training data
    reference_risk.json    ensemble log-risk of every training patient (for percentiles)
    reference_km.json      Kaplan–Meier curve of each training risk group (drawn under a patient's curve)
    training_summary.json  folds, epochs, out-of-fold C-index, counts
    model_card.json        intended use, data, metrics, limitations
    checksums.json         sha256 of every other file

A bundle is written to ``<out>.partial`` and swapped in only when complete, so a failed run never
replaces a good bundle; a folder that is not a bundle (or holds files besides the bundle's) is refused
before any work starts (:func:`check_bundle_destination`), and a run killed between the two renames of
the swap is recovered on the next load or write, the previous bundle put back. Loading (:func:`open_bundle`) reads only files listed in checksums.json, each a plain
file inside the folder (no ``..``, no absolute path, no link), hashes the bytes it then uses, and refuses a
tampered, missing or malformed file with one BundleError; the bundled models must also match the digests
pinned in :data:`mrrp.resources.BUNDLED_DIGESTS`.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from mrrp._fs import build_dir_atomically, recover_dir_swap
from mrrp._hashing import sha256_bytes, sha256_file
from mrrp.errors import InputError

BUNDLE_FORMAT = "mrrp-bundle-1"


class BundleError(InputError):
    """A model bundle is missing, incomplete or altered."""


def recover_bundle(path: str | os.PathLike[str]) -> None:
    """Put back a bundle whose replacement was interrupted (:func:`mrrp._fs.recover_dir_swap`). Called
    before a bundle is loaded or written, so a run killed between the two renames of the swap never
    leaves the site without its model; cheap, and writes nothing, when there is nothing to recover."""
    recover_dir_swap(path)


def _listed_files(folder: Path) -> set[str] | None:
    """The names checksums.json lists, or None when ``folder`` is not a bundle (no readable list)."""
    try:
        sums = json.loads((folder / "checksums.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return {str(name) for name in sums} if isinstance(sums, dict) else None


def _refuse_unsafe_destination(out: Path, shown: str) -> None:
    """BundleError unless a bundle may be written at ``out`` (absolute): it is new, an empty folder, or a
    bundle holding nothing but its own files (replacing it then loses nothing a person put there)."""
    if out.is_symlink():
        raise BundleError(f"The output '{shown}' is a link; give the bundle folder itself.")
    if out.exists() and not out.is_dir():
        raise BundleError(f"The output '{shown}' is a file, not a folder; choose a new folder for the bundle.")
    real = out.resolve()
    here = Path.cwd().resolve()
    if real == here or real in here.parents:
        raise BundleError(
            f"The output '{shown}' is the current folder or a folder above it; choose a new folder for the bundle."
        )
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        listed = _listed_files(out) if entries else set()
        if listed is None:
            raise BundleError(
                f"The output folder '{shown}' is not empty and is not a model bundle, so it was left untouched; "
                "choose a new or empty folder, or an existing bundle to replace."
            )
        # signature.json (mrrp.model.signing) vouches for checksums.json and is not listed in it
        extra = [name for name in entries if name not in ("checksums.json", "signature.json") and name not in listed]
        if extra:
            more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
            raise BundleError(
                f"The bundle folder '{shown}' also holds files that are not part of the bundle "
                f"({', '.join(extra[:3])}{more}), so it was left untouched; move them out or choose another folder."
            )
    backup = out.with_name(out.name + ".previous")
    if backup.exists() or backup.is_symlink():
        raise BundleError(
            f"A folder '{backup.name}' from an earlier run is beside the output and may hold a previous bundle; "
            "move it away, then train again."
        )
    existing = next((p for p in out.parents if p.exists()), Path(out.anchor))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BundleError(f"The bundle cannot be saved under '{existing}': that folder cannot be written.")


def check_bundle_destination(out: str | os.PathLike[str], *, keep: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """``out`` as an absolute path once a bundle may be written there; BundleError (one sentence) otherwise.

    Meant to run before any training starts. Allowed: a new folder, an empty one, or an existing bundle
    that holds only its own files. Refused: ``.`` or ``..`` or any folder above the current one, a file, a
    link, a folder holding any of ``keep`` (what the run reads or writes: the manifest, the feature cache),
    a non-empty folder that is not a bundle, a stray ``<out>.previous``, an unwritable parent. An
    interrupted earlier replacement of ``out`` is recovered first.
    """
    shown = os.fspath(out)
    if not shown.strip():
        raise BundleError("No output folder was given for the bundle.")
    dst = Path(os.path.abspath(shown))  # lexical: '.' and '..' become the folders they name
    if not dst.name:
        raise BundleError(f"The output '{shown}' is the top of the filesystem; choose a new folder for the bundle.")
    recover_bundle(dst)
    real = dst.resolve()
    for item in keep:
        kept = Path(item).resolve()
        if real == kept or real in kept.parents:
            raise BundleError(
                f"The output '{shown}' holds '{os.fspath(item)}', which this run reads or writes; choose a folder "
                "outside it."
            )
    _refuse_unsafe_destination(dst, shown)
    return dst


def write_atomic_bundle(out: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Build a bundle folder with ``write(folder)``, add ``checksums.json`` (sha256 of every file), and
    swap it in for ``out`` only when complete: a failed run never replaces a good bundle.

    ``out`` is checked first (:func:`check_bundle_destination`) and again just before the swap, so a
    folder that is not a bundle is never replaced, not even one that appeared during training.
    """
    dst = check_bundle_destination(out)

    def write_with_checksums(folder: Path) -> None:
        write(folder)
        sums = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
        (folder / "checksums.json").write_text(json.dumps(sums, indent=2) + "\n")

    return build_dir_atomically(
        dst, write_with_checksums, check_replaceable=lambda d: _refuse_unsafe_destination(d, os.fspath(out))
    )


def write_bundle(
    out: str | os.PathLike[str],
    *,
    models: list,
    config: dict,
    baselines: list,
    ensemble_baseline,
    member_offsets: list[float],
    cutoffs,
    reference_risk: np.ndarray,
    training_summary: dict,
    model_card: dict,
    reference_km: dict | None = None,
) -> Path:
    import torch

    def write(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps({"format": BUNDLE_FORMAT, **config}, indent=2) + "\n")
        for k, m in enumerate(models):
            # Half precision on disk keeps the bundle small; weights are restored to fp32 on load.
            torch.save(
                {n: t.half() if t.is_floating_point() else t for n, t in m.state_dict().items()},
                folder / f"fold_{k}.pt",
            )
        (folder / "baseline.json").write_text(
            json.dumps(
                {
                    "ensemble": ensemble_baseline.to_dict(),
                    "members": [b.to_dict() for b in baselines],
                    "member_offsets": [float(o) for o in member_offsets],
                }
            )
            + "\n"
        )
        (folder / "cutoffs.json").write_text(json.dumps(cutoffs.to_dict(), indent=2) + "\n")
        (folder / "reference_risk.json").write_text(json.dumps([round(float(v), 6) for v in reference_risk]) + "\n")
        if reference_km is not None:
            (folder / "reference_km.json").write_text(json.dumps(reference_km, default=float) + "\n")
        (folder / "training_summary.json").write_text(json.dumps(training_summary, indent=2, default=float) + "\n")
        (folder / "model_card.json").write_text(json.dumps(model_card, indent=2, default=float) + "\n")

    return write_atomic_bundle(out, write)


def bundle_checksum(path: str | os.PathLike[str]) -> str:
    """sha256 of checksums.json: one number that identifies the whole bundle."""
    return sha256_file(Path(path) / "checksums.json")


@dataclass
class LoadedBundle:
    path: Path
    config: dict
    models: list
    baselines: list
    ensemble_baseline: object
    member_offsets: np.ndarray
    cutoffs: object
    reference_risk: np.ndarray
    training_summary: dict
    model_card: dict
    checksum: str
    reference_km: dict | None = None  # {"curves": {group: {n, events, time_months, survival}}, "logrank_p"}


CHECKSUMS = "checksums.json"


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle folder whose every listed file was read once and matched its checksum.

    ``checksums.json`` may list only plain files directly inside the folder (no ``..``, no absolute path,
    no link): a name that points elsewhere is refused before anything is opened. Loaders read files only
    through :meth:`read_bytes` / :meth:`read_json`, which hand back the very bytes that were hashed, so a
    file that is not listed is never read and a file changed after the check is never used.
    """

    path: Path  # the folder, links resolved
    label: str  # the folder's name, for messages
    sums: dict[str, str]  # file name -> sha256, as listed
    checksum: str  # sha256 of checksums.json: the bundle's identity
    _contents: dict[str, bytes]

    def has(self, name: str) -> bool:
        return name in self.sums

    def read_bytes(self, name: str) -> bytes:
        if name not in self._contents:
            raise BundleError(
                f"The model bundle '{self.label}' does not list {name} in its checksums.json, so it cannot be "
                "trusted; reinstall or retrain it."
            )
        return self._contents[name]

    def read_json(self, name: str, kind: type = dict, *, finite: bool = False) -> Any:
        """``name`` parsed as JSON of type ``kind``; ``finite`` refuses NaN and infinities (numbers the
        model computes with: a NaN reference risk would silently put every patient in one group)."""

        def refuse_constant(constant: str) -> float:
            raise ValueError(constant)

        try:
            text = self.read_bytes(name).decode("utf-8")
            value = json.loads(text, parse_constant=refuse_constant) if finite else json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise self.malformed(
                name, "is not valid JSON of finite numbers" if finite else "is not valid JSON"
            ) from None
        if not isinstance(value, kind):
            raise self.malformed(name, f"does not hold a JSON {'object' if kind is dict else 'list'}")
        return value

    def malformed(self, name: str, why: str) -> BundleError:
        return BundleError(f"The model bundle '{self.label}' is damaged: {name} {why}; reinstall or retrain it.")

    @contextmanager
    def parsing(self, name: str, why: str = "does not have the expected contents") -> Iterator[None]:
        """Turn any error while building objects from ``name`` into one sentence about that file."""
        try:
            yield
        except BundleError:
            raise
        except MemoryError:
            raise
        except Exception:
            raise self.malformed(name, why) from None


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_MAX_CHECKSUMS_BYTES = 1 << 20  # a real checksums.json is about 1 kB


def _is_plain_name(name: str) -> bool:
    """A file name directly inside the bundle: no folder part, no ``..``, not absolute, nothing hidden in it."""
    return (
        bool(name)
        and name not in (".", "..", CHECKSUMS)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and PurePosixPath(name).name == name
    )


def _read_plain_file(folder: Path, name: str) -> bytes | str:
    """The bytes of ``folder/name``, or why it cannot be used: missing, a link, or not a regular file.

    The file is opened without following links (``O_NOFOLLOW``), so a link swapped in after the check is
    refused too.
    """
    f = folder / name
    try:
        st = os.lstat(f)
    except FileNotFoundError:
        return f"{name} is missing"
    if stat.S_ISLNK(st.st_mode):
        return f"{name} is a link to a file elsewhere"
    if not stat.S_ISREG(st.st_mode):
        return f"{name} is not a file"
    try:
        fd = os.open(f, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return f"{name} cannot be read"
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def open_bundle(path: str | os.PathLike[str], *, verify_pin: bool = True) -> VerifiedBundle:
    """Check the bundle at ``path`` and read every file it lists, each matched against its checksum.

    Refused (BundleError) when the folder or its checksums.json is missing or malformed, when an entry
    names a file outside the folder or a link, when a listed file is missing or changed, and, for the
    bundled models (by location, see :func:`mrrp.resources.bundled_model_name`), when the bundle is not
    the one whose digest is pinned in :data:`mrrp.resources.BUNDLED_DIGESTS`. ``verify_pin=False`` is
    for the offline jobs that rebuild the bundled models in place (``make model``).
    """
    given = Path(path)
    recover_bundle(given)  # a replacement killed mid-swap: its previous bundle is put back first
    if not given.is_dir():
        raise BundleError(f"'{given.name}' is not a model bundle (no such folder).")
    folder = given.resolve()
    label = given.name or folder.name
    raw = _read_plain_file(folder, CHECKSUMS)
    if isinstance(raw, str):
        why = "no checksums.json" if raw.endswith("missing") else raw
        raise BundleError(f"'{label}' is not a model bundle ({why}).")
    if len(raw) > _MAX_CHECKSUMS_BYTES:
        raise BundleError(
            f"The model bundle '{label}' is damaged: checksums.json is too large; reinstall or retrain it."
        )
    try:
        sums = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        sums = None
    if not isinstance(sums, dict) or not all(isinstance(v, str) and _SHA256_HEX.fullmatch(v) for v in sums.values()):
        raise BundleError(
            f"The model bundle '{label}' is damaged: checksums.json is not a list of file checksums; reinstall or "
            "retrain it."
        )
    outside = [name for name in sums if not _is_plain_name(name)]
    if outside:
        raise BundleError(
            f"The model bundle '{label}' lists a file outside its folder ({outside[0][:80]!r}), which was not "
            "opened; reinstall or retrain it."
        )
    contents: dict[str, bytes] = {}
    bad = []
    for name, digest in sums.items():
        data = _read_plain_file(folder, name)
        if isinstance(data, str):
            bad.append(data)
        elif sha256_bytes(data) != digest:
            bad.append(f"{name} was changed")
        else:
            contents[name] = data
    if bad:
        raise BundleError(
            f"The model bundle '{label}' failed its integrity check ({'; '.join(bad)}); reinstall or retrain it."
        )
    bundle = VerifiedBundle(folder, label, dict(sums), sha256_bytes(raw), contents)
    if verify_pin:
        _check_pinned(bundle)
    return bundle


def _check_pinned(bundle: VerifiedBundle) -> None:
    """A bundled model must be byte for byte the one this release ships: integrity is not authenticity."""
    from mrrp.resources import BUNDLED_DIGESTS, bundled_model_name

    name = bundled_model_name(bundle.path)
    if name is not None and bundle.checksum != BUNDLED_DIGESTS[name]:
        raise BundleError(
            f"The bundled model '{name}' is not the one this version of mrrp ships (its files were changed), so "
            "it was not loaded; reinstall mrrp."
        )


def verify_bundle(path: str | os.PathLike[str], *, verify_pin: bool = True) -> dict[str, str]:
    """The checksums of the bundle at ``path`` after :func:`open_bundle`'s checks (BundleError if any fails)."""
    return dict(open_bundle(path, verify_pin=verify_pin).sums)


def load_torch_state(bundle: VerifiedBundle, name: str) -> Any:
    """``torch.load`` of a verified file, tensors only (``weights_only``): a pickle payload never runs."""
    import torch

    with bundle.parsing(name, "is not a readable model file"):
        return torch.load(io.BytesIO(bundle.read_bytes(name)), map_location="cpu", weights_only=True)


def load_state_into(bundle: VerifiedBundle, name: str, module: Any, state: Any) -> None:
    """Load a half-precision state dict into ``module`` as fp32; refuse one that does not fit or is not finite."""
    import torch

    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise bundle.malformed(name, "does not hold model weights")
    if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
        raise bundle.malformed(name, "holds weights that are not numbers")
    with bundle.parsing(name, "does not match the model described in config.json"):
        module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    module.eval()


def _fold_names(bundle: VerifiedBundle) -> list[str]:
    """``fold_0.pt`` … ``fold_<n-1>.pt`` in number order (the order of the baselines in baseline.json)."""
    numbers = []
    for name in bundle.sums:
        match = re.fullmatch(r"fold_(\d{1,3})\.pt", name)
        if match:
            numbers.append(int(match.group(1)))
        elif name.startswith("fold_"):
            raise bundle.malformed(name, "is not a fold model's name")
    if sorted(numbers) != list(range(len(numbers))) or not numbers:
        raise bundle.malformed("checksums.json", "does not list the fold models fold_0.pt, fold_1.pt, …")
    return [f"fold_{k}.pt" for k in range(len(numbers))]


def _finite_vector(bundle: VerifiedBundle, name: str, values: Any, *, n: int | None = None) -> np.ndarray:
    with bundle.parsing(name):
        out = np.asarray(values, dtype=float)
    if out.ndim != 1 or out.size == 0 or not np.isfinite(out).all() or (n is not None and out.size != n):
        raise bundle.malformed(name, "does not hold the expected numbers")
    return out


def load_bundle(path: str | os.PathLike[str], *, verify_pin: bool = True) -> LoadedBundle:
    """The MRRP ensemble at ``path``, every file checked (:func:`open_bundle`).

    Any malformed part (a fold that is not a model file or does not fit the configuration, JSON that is
    invalid, of the wrong type or with non-finite numbers, counts that disagree) is one BundleError.
    """
    from mrrp.model.fusion import MRRP, FusionConfig
    from mrrp.model.survival import BaselineHazard, RiskCutoffs

    b = open_bundle(path, verify_pin=verify_pin)
    config = b.read_json("config.json", finite=True)
    if config.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"The model bundle '{b.label}' has format {str(config.get('format'))[:40]}; this mrrp reads "
            f"{BUNDLE_FORMAT}."
        )
    with b.parsing("config.json"):
        fusion_config = FusionConfig.from_dict(config["fusion"])
    models = []
    for name in _fold_names(b):
        with b.parsing("config.json", "describes a model that cannot be built"):
            m = MRRP(fusion_config)
        load_state_into(b, name, m, load_torch_state(b, name))
        models.append(m)
    base = b.read_json("baseline.json", finite=True)
    with b.parsing("baseline.json"):
        baselines = [BaselineHazard.from_dict(d) for d in base["members"]]
        ensemble_baseline = BaselineHazard.from_dict(base["ensemble"])
    for hazard in (*baselines, ensemble_baseline):
        times, cum = np.asarray(hazard.times), np.asarray(hazard.cum_hazard)
        if times.ndim != 1 or times.shape != cum.shape or times.size == 0:
            raise b.malformed("baseline.json", "does not hold the expected curves")
    if len(baselines) != len(models):
        raise b.malformed("baseline.json", f"has {len(baselines)} member curves for {len(models)} fold models")
    member_offsets = _finite_vector(b, "baseline.json", base.get("member_offsets"), n=len(models))
    with b.parsing("cutoffs.json"):
        cutoffs = RiskCutoffs.from_dict(b.read_json("cutoffs.json", finite=True))
    reference_risk = _finite_vector(b, "reference_risk.json", b.read_json("reference_risk.json", list, finite=True))
    return LoadedBundle(
        path=Path(path),
        config=config,
        models=models,
        baselines=baselines,
        ensemble_baseline=ensemble_baseline,
        member_offsets=member_offsets,
        cutoffs=cutoffs,
        reference_risk=reference_risk,
        training_summary=b.read_json("training_summary.json"),
        model_card=b.read_json("model_card.json"),
        checksum=b.checksum,
        reference_km=b.read_json("reference_km.json") if b.has("reference_km.json") else None,
    )
