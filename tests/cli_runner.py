"""Run ``python -m pconv ARGS`` many times without paying torch's import each time (for the bad-input tests).

``CliRunner`` starts one Python process that imports pconv, torch and the server/training modules (and computes
nothing, so no thread pool exists yet), then forks it once per command: the child changes to the requested
folder, points file descriptors 1 and 2 at files, sets ``sys.argv`` and runs the ``pconv`` package as
``__main__``, exactly as ``python -m pconv`` would after its imports. An uncaught exception prints Python's usual
traceback and exits with status 1, a signal gives a negative status, and a command running past its timeout is
killed (status -9). ``real_subprocess`` runs the true ``python -m pconv`` to check that both agree.

Used as a script, this file is the forking server: one JSON request per stdin line, one JSON reply per line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def env() -> dict[str, str]:
    """The environment of a user's shell, with this checkout's sources first on the path."""
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PCONV_DEBUG": ""}


def real_subprocess(args: list[str], *, cwd: Path, timeout: float = 120) -> Result:
    """``python -m pconv ARGS`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "pconv", *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


class CliRunner:
    """One pre-imported pconv process, forked per command (see the module docstring)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env(),
            text=True,
            bufsize=1,
        )
        if self._proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the pconv fork server did not start")

    def run(self, args: list[str], *, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {
                "argv": args,
                "cwd": str(cwd),
                "stdout": str(out),
                "stderr": str(err),
                "timeout": timeout,
                "env": env or {},
            }
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            reply = self._proc.stdout.readline()
            if not reply:
                raise RuntimeError("the pconv fork server died")
            return Result(json.loads(reply)["rc"], out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


def _child(request: dict) -> None:
    """In the forked child: become ``python -m pconv ARGV`` and never return."""
    import runpy
    import traceback

    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - the child exits without returning
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)  # noqa: SIM115
        sys.argv = ["pconv", *request["argv"]]
        runpy.run_module("pconv", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - show what Python shows for an uncaught exception
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.005)


def _serve() -> None:
    import torch  # noqa: F401 - the import this server exists to pay once

    import pconv.cli  # noqa: F401
    import pconv.commands.inpaint  # noqa: F401
    import pconv.inference  # noqa: F401
    import pconv.train  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"rc": _wait(pid, request["timeout"])}), flush=True)


if __name__ == "__main__":
    _serve()
