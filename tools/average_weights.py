"""Average the parameters of pconv weights files of one architecture (a "model soup", Wortsman et al. 2022).

Run: PYTHONPATH=src python tools/average_weights.py A.safetensors B.safetensors --output SOUP.safetensors [--fp16]
Floating tensors (weights, biases, BatchNorm running statistics) are averaged with equal weights; integer
BatchNorm counters are taken from the last file. Made the shipped model's version 4 from version 3 and its
fine-tune (docs/model_history.md). Useful only for models fine-tuned from one another.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from pconv.model import PConvUNet, load_weights, save_weights


def average_weights(paths: Sequence[str | Path]) -> PConvUNet:
    """The network whose floating tensors are the mean of those in ``paths`` (all one ``ModelConfig``)."""
    if len(paths) < 2:
        raise ValueError("give at least two weights files to average")
    models = [load_weights(path) for path in paths]
    if any(m.config != models[0].config for m in models):
        raise ValueError("the weights files hold different model configs; only one architecture can be averaged")
    states = [m.state_dict() for m in models]
    mean = {
        k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else states[-1][k]
        for k, v in states[0].items()
    }
    models[0].load_state_dict(mean)
    return models[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--fp16", action="store_true", help="store fp16 tensors (half the file)")
    args = parser.parse_args(argv)
    return build_and_save("average_weights", lambda: average_weights(args.weights), args.output, fp16=args.fp16)


def build_and_save(prog: str, build: Callable[[], PConvUNet], output: Path, *, fp16: bool) -> int:
    """Write ``build()`` to ``output`` (never over an existing file); a bad input is one line on stderr, exit 2."""
    if output.exists():
        print(f"{prog}: {output} exists; choose another --output", file=sys.stderr)
        return 2
    try:
        model = build()
    except (OSError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    save_weights(model, output, dtype=torch.float16 if fp16 else torch.float32)
    print(f"{prog}: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
