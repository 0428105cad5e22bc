"""Run Python in a fresh interpreter and report which torch modules it imported (for the torch-free tests).

A test in the full venv has usually imported torch already, so "no torch module was imported" can only be checked
in a new process: ``run_probe(code)`` runs ``code`` with this checkout's sources first on the path; at exit the
process prints the names in ``sys.modules`` that belong to torch (or torchvision / functorch) as its last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TORCH_PACKAGES = ("torch", "torchvision", "functorch")
_MARK = "TORCH_MODULES="
# Registered first, so the report comes at exit even after SystemExit (``--help``) or an uncaught error.
_REPORT = f"""
import atexit as _atexit, json as _json, sys as _sys
_atexit.register(lambda: print({_MARK!r} + _json.dumps(
    sorted(m for m in _sys.modules if m.split(".")[0] in {TORCH_PACKAGES!r})), flush=True))
"""


@dataclass
class Probe:
    returncode: int
    stdout: str  # without the report line
    stderr: str
    torch_modules: list[str] | None  # None if the interpreter died before reporting


def run_probe(code: str, *, cwd: Path, timeout: float = 180) -> Probe:
    """Run ``code`` in ``python -c``; at exit the interpreter reports the torch modules it imported."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PCONV_DEBUG": ""}
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT + code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = proc.stdout.splitlines()
    report = [line for line in lines if line.startswith(_MARK)]
    modules = json.loads(report[-1][len(_MARK) :]) if report else None
    stdout = "\n".join(line for line in lines if not line.startswith(_MARK))
    return Probe(proc.returncode, stdout, proc.stderr, modules)
