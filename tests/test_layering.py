"""Imports flow one way: the module table of ``docs/design.md`` runs bottom to top, and no module of ``src/pconv``
imports one in a lower row (nor is any module missing from the table). Module-level and lazy (in-function)
imports both count; ``pconv.commands.*`` sit on top of everything and are left out."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pconv"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    return ".".join(("pconv", *path.relative_to(PACKAGE).with_suffix("").parts))


def _modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.glob("*.py")) if p.name not in ("__init__.py", "__main__.py")]


def _pconv_imports(path: Path) -> set[str]:
    """The ``pconv.X`` modules that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pconv."):
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("pconv.")]
        found |= {".".join(name.split(".")[:2]) for name in names}
    return found


def _rows() -> dict[str, int]:
    """``pconv.X`` -> its row in the design page's module table (0 = the top row, the bottom of the stack)."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    table = text[text.index("| module | owns |") :].split("\n\n")[0]
    rows: dict[str, int] = {}
    for i, line in enumerate(table.splitlines()[2:]):
        first_cell = line.split("|")[1]
        for name in re.findall(r"`([a-z_]+)`", first_cell):
            rows[f"pconv.{name}"] = i
    return rows


def test_every_module_has_a_row_in_the_design_table() -> None:
    rows = _rows()
    missing = [_module_name(p) for p in _modules() if _module_name(p) not in rows]
    assert missing == [], f"add these to the module table of docs/design.md: {missing}"


def test_no_module_imports_one_below_it_in_the_design_table() -> None:
    rows = _rows()
    upward = [
        f"{_module_name(p)} imports {dep}"
        for p in _modules()
        for dep in sorted(_pconv_imports(p))
        if not dep.startswith("pconv.commands") and dep in rows and rows[dep] > rows[_module_name(p)]
    ]
    assert upward == [], f"imports that go the wrong way (or reorder docs/design.md): {upward}"


def test_no_module_is_over_the_line_limit() -> None:
    files = [*_modules(), *sorted((PACKAGE / "commands").glob("*.py"))]
    long = {str(p.relative_to(PACKAGE)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these by concern (issue 38: at most {MAX_LINES} lines a module): {long}"
