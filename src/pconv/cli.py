"""The ``pconv`` command line: ``pconv <command> [options]`` (also ``python -m pconv``).

Each command lives in ``pconv.commands.<name>`` with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
those modules import torch lazily, so ``pconv --help`` is instant and ``pconv inpaint``, ``serve`` and ``demo`` run on
the base install, which has no torch (docs/light.md); the other commands say which extra to install. Errors a user
can fix print one line and exit with status 2; set ``PCONV_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pconv.distributed import one_line

# Command name -> module under pconv.commands. Keep sorted.
COMMANDS: dict[str, str] = {
    "bench": "bench",
    "demo": "demo",
    "evaluate": "evaluate",
    "explain": "explain",
    "export-onnx": "export_onnx",
    "export-weights": "export_weights",
    "inpaint": "inpaint",
    "masks": "masks",
    "serve": "serve",
    "train": "train",
}

# Module -> the extra that installs it (README, "Install"); the base install runs inpaint, serve and demo only.
_EXTRA_OF = {"torch": "torch", "torchvision": "train", "cv2": "eval", "fastapi": "serve", "uvicorn": "serve"}


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line that points at ``--help`` (not usage + error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def missing_package_message(module: str) -> str:
    """What to install for a missing module: PyTorch comes with the extras, the base install lacks it."""
    top = module.split(".")[0]
    if top in _EXTRA_OF:
        return f"this command needs {top}, which is not installed: pip install 'pconv[{_EXTRA_OF[top]}]'"
    return f"this command needs the {top} module, which is not installed (the extras: pip install 'pconv[train,eval]')"


def build_parser(*, only: str | None = None) -> argparse.ArgumentParser:
    """The ``pconv`` parser with every command, or with the command ``only`` alone.

    Each command's module is imported to add its options; ``main`` passes ``only`` when the command line names one,
    so that ``pconv inpaint`` does not import the modules of the nine other commands.
    """
    from pconv import __version__

    parser = _Parser(prog="pconv", description="Image inpainting with partial convolutions.")
    parser.add_argument("--version", action="version", version=f"pconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"pconv.commands.{module_name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run, _parser=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=words[0] if words and words[0] in COMMANDS else None)
    args, extra = parser.parse_known_args(words)
    if extra:  # reported by the command's own parser, so the message names the command
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("pconv: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # e.g. `pconv train` on the base install, which has no torch
        if os.environ.get("PCONV_DEBUG") or exc.name is None or exc.name.startswith("pconv"):
            raise
        print(f"pconv {args.command}: error: {missing_package_message(exc.name)}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as exc:
        if os.environ.get("PCONV_DEBUG"):
            raise
        print(f"pconv {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
