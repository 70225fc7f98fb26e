"""The plan of the tree that import-linter cannot check.

``streams._native`` is an extension module (no .py file), which lint-imports cannot see, so the
rule that only ``streams.contract.native`` reaches it (STYLE.md, "One face per foreign thing") is
kept here by reading the package's imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FACE = Path("streams/contract/native.py")


def native_imports(path: Path) -> list[int]:
    """The lines of ``path`` that import ``streams._native`` (or ``_native`` from ``streams``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(name == "streams._native" or name.startswith("streams._native.") for name in names):
            found.append(node.lineno)
    return found


def package_files() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for package in ("streams", "senders")
        for path in (ROOT / package).rglob("*.py")
    )


def test_only_the_face_imports_the_native_core() -> None:
    offenders = {
        str(path): lines
        for path in package_files()
        if path != FACE and (lines := native_imports(ROOT / path))
    }
    assert offenders == {}
    assert native_imports(ROOT / FACE), "the face itself must import streams._native"


@pytest.mark.parametrize(
    "source",
    ["import streams._native", "from streams import _native", "from streams._native import Core"],
)
def test_every_spelling_of_the_import_is_seen(source: str, tmp_path: Path) -> None:
    path = tmp_path / "module.py"
    path.write_text(source + "\n")
    assert native_imports(path) == [1]
