"""Graft blocks of one pconv weights file into another of the same architecture.

Run: PYTHONPATH=src python tools/graft_weights.py BASE.safetensors DONOR.safetensors \
         --blocks encoder.0,encoder.1,decoder.0,decoder.1,decoder.2 --output GRAFT.safetensors [--fp16]
Every tensor of the listed blocks (names as in ``PConvUNet.state_dict()``: ``encoder.i`` / ``decoder.i``, where
``decoder.i`` produces the resolution of ``encoder.i``'s input) comes from DONOR, every other one from BASE.
Version 5 of the shipped model is version 4 with the full-, half- and quarter-resolution blocks of a fine-tune on
ragged masks (docs/model_history.md, "Schedule"). Useful only for models fine-tuned from one another.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pconv.model import PConvUNet, load_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from average_weights import build_and_save  # noqa: E402


def graft_weights(base: str | Path, donor: str | Path, blocks: Sequence[str]) -> PConvUNet:
    """``base``'s network with the tensors of ``blocks`` (e.g. ``["encoder.0", "decoder.0"]``) from ``donor``."""
    model, other = load_weights(base), load_weights(donor)
    if model.config != other.config:
        raise ValueError("the two weights files hold different model configs; blocks graft only within one")
    state, donor_state = model.state_dict(), other.state_dict()
    prefixes = tuple(f"{b.strip()}." for b in blocks)
    unknown = [p[:-1] for p in prefixes if not any(k.startswith(p) for k in state)]
    if unknown or not prefixes:
        names = sorted({".".join(k.split(".")[:2]) for k in state})
        raise ValueError(f"unknown block {unknown[0] if unknown else '(none)'!r}; blocks are {', '.join(names)}")
    model.load_state_dict({k: donor_state[k] if k.startswith(prefixes) else v for k, v in state.items()})
    return model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("donor", type=Path)
    parser.add_argument("--blocks", required=True, help="comma-separated blocks taken from DONOR, e.g. decoder.0")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--fp16", action="store_true", help="store fp16 tensors (half the file)")
    args = parser.parse_args(argv)
    build = lambda: graft_weights(args.base, args.donor, args.blocks.split(","))  # noqa: E731
    return build_and_save("graft_weights", build, args.output, fp16=args.fp16)


if __name__ == "__main__":
    sys.exit(main())
