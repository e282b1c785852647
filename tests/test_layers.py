"""Imports flow one way: nothing imports a layer above its own (function-local imports included).

The layers, low to high (docs/architecture.md draws them):

    0  ground floor: errors, _fs/_hashing/_locks/_parallel/_threads/_uploads, settings, vocabulary, schema, ui
    1  io, slides                    readers of files
    2  features, case                a validated Case → CaseFeatures
    3  model                         fusion model, survival, bundles, Prediction
    4  explain                       one patient's explanation
    5  train, evaluate, synth, pcr   offline jobs, the synthetic generators, the MRI model's own vertical
    6  dashboard                     what the pages call
    7  cli, resources of the app     the shell and the entry points (pages/ and app.py are above everything)
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "mrrp.errors": 0,
    "mrrp.schema": 0,
    "mrrp.ui": 0,
    "mrrp.settings": 0,
    "mrrp.vocabulary": 0,
    "mrrp.resources": 0,
    "mrrp.io": 1,
    "mrrp.slides": 1,
    "mrrp.features": 2,
    "mrrp.case": 2,
    "mrrp.model": 3,
    "mrrp.explain": 4,
    "mrrp.train": 5,
    "mrrp.evaluate": 5,
    "mrrp.synth": 5,
    "mrrp.pcr": 5,
    "mrrp.dashboard": 6,
    "mrrp.cli": 7,
}


def layer_of(module: str) -> int:
    """The layer of a module: its longest listed prefix; ground-floor modules (mrrp._x) are layer 0."""
    parts = module.split(".")
    if module == "mrrp" or parts[1].startswith("_"):
        return 0
    for n in range(len(parts), 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"{module} has no layer: add it to LAYERS and to docs/architecture.md")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def mrrp_imports(path: Path) -> set[str]:
    """Every mrrp module a file imports, at the top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out.update(n for n in names if n == "mrrp" or n.startswith("mrrp."))
    return out


def test_layer_of_reads_prefixes():
    assert layer_of("mrrp._fs") == 0
    assert layer_of("mrrp.features.case") == 2
    assert layer_of("mrrp.dashboard.intake") == 6
    assert layer_of("mrrp.synth.reports.pathology") == 5


def test_no_import_runs_up_the_layers():
    upward = []
    for path in sorted((ROOT / "mrrp").rglob("*.py")):
        src = module_name(path)
        for dst in mrrp_imports(path):
            if dst == "mrrp" or dst.split(".")[1] == src.split(".")[1]:
                continue  # the package itself, or within one package
            if layer_of(dst) > layer_of(src):
                upward.append(f"{src} (layer {layer_of(src)}) imports {dst} (layer {layer_of(dst)})")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_runtime_path_never_imports_the_generator_or_offline_jobs():
    """The patient path (io → features → model → explain) never reads the synthetic generator or the studies."""
    offenders = []
    for package in ("io", "slides", "features", "model", "explain"):
        for path in sorted((ROOT / "mrrp" / package).rglob("*.py")):
            for dst in mrrp_imports(path):
                if dst.startswith(("mrrp.synth", "mrrp.train", "mrrp.evaluate", "mrrp.dashboard")):
                    offenders.append(f"{module_name(path)} imports {dst}")
    assert not offenders, "\n".join(offenders)


def test_nothing_in_the_package_imports_pages_or_app():
    for path in sorted((ROOT / "mrrp").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("pages", "app")), f"{module_name(path)} imports {node.module}"
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert not a.name.startswith(("pages", "app")), f"{module_name(path)} imports {a.name}"
