"""The size counts docs/architecture.md reports: functions over 80 lines and files over 600 lines.

    python tools/code_metrics.py            # counts over mrrp/, pages/, app.py, tests/, benchmarks/
    python tools/code_metrics.py --list     # and every function and file that counts

A function's length is its whole definition (decorators excluded, docstring included), as ``ast`` gives it.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCOPE = ("mrrp", "pages", "app.py", "tests", "benchmarks")
LONG_FUNCTION_LINES = 80
LONG_FILE_LINES = 600


def python_files(root: Path = ROOT) -> list[Path]:
    files: list[Path] = []
    for name in SCOPE:
        p = root / name
        files.extend([p] if p.is_file() else sorted(p.rglob("*.py")))
    return files


def long_functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > LONG_FUNCTION_LINES
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list what counts")
    args = parser.parse_args()
    functions, files = [], []
    for path in python_files():
        rel = path.relative_to(ROOT)
        n_lines = len(path.read_text(encoding="utf-8").splitlines())
        if n_lines > LONG_FILE_LINES:
            files.append((str(rel), n_lines))
        functions.extend((str(rel), name, n) for name, n in long_functions(path))
    print(f"functions over {LONG_FUNCTION_LINES} lines: {len(functions)}")
    print(f"files over {LONG_FILE_LINES} lines: {len(files)}")
    if args.list:
        for rel, name, n in sorted(functions):
            print(f"  {rel}:{name} {n}")
        for rel, n in sorted(files):
            print(f"  {rel} {n}")


if __name__ == "__main__":
    main()
