"""Build step that makes a wheel self-contained: it carries the dashboard and the bundled models.

The product keeps ``app.py``, ``pages/``, ``assets/`` (bundled models, logo), ``.streamlit/config.toml`` and
``docs/model_report.json`` at the repository's top level, where ``make run`` uses them. A wheel has no top
level, so ``build_py`` copies that list (``SHIPPED`` in mrrp/resources.py, read here without importing the
package) into ``mrrp/_bundled/``, keeping the layout, and ``mrrp.resources`` finds them there once installed.
An editable install copies nothing: its ``mrrp.resources`` reads the checkout. The source distribution
includes the same files, so a wheel built from it (``python -m build``) is complete too. Everything else
about the package is declared in pyproject.toml.
"""

from __future__ import annotations

import os
import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
_resources = runpy.run_path(str(ROOT / "mrrp" / "resources.py"))
SHIPPED: tuple[str, ...] = _resources["SHIPPED"]
INSTALLED_DIR = os.path.join("mrrp", _resources["INSTALLED_SUBDIR"])


def _shipped_files() -> list[str]:
    """Every shipped file, relative to the repository root, in a stable order (no caches or hidden files)."""
    found: list[str] = []
    for rel in SHIPPED:
        path = ROOT / rel
        if path.is_file():
            found.append(rel)
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                parts = file.relative_to(ROOT).parts
                hidden = any(p.startswith(".") or p == "__pycache__" for p in parts[len(Path(rel).parts) :])
                if file.is_file() and not hidden and file.suffix != ".pyc":
                    found.append(file.relative_to(ROOT).as_posix())
        else:
            raise FileNotFoundError(f"{rel} is shipped with mrrp but missing from the source tree")
    return found


class BuildPyWithBundle(build_py):
    """``build_py`` plus the shipped tree under ``mrrp/_bundled/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        # Start from empty: a build folder left by an earlier build must not ship a file that is gone since.
        shutil.rmtree(os.path.join(self.build_lib, INSTALLED_DIR), ignore_errors=True)
        for rel in _shipped_files():
            target = os.path.join(self.build_lib, INSTALLED_DIR, rel)
            self.mkpath(os.path.dirname(target))
            self.copy_file(str(ROOT / rel), target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        return outputs + [os.path.join(self.build_lib, INSTALLED_DIR, rel) for rel in _shipped_files()]

    def get_source_files(self) -> list[str]:
        # sdist takes its list from here: the source distribution must carry what the wheel copies.
        return super().get_source_files() + _shipped_files()


setup(cmdclass={"build_py": BuildPyWithBundle})
