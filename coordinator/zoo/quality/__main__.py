"""`python -m coordinator.zoo.quality --scale S --out DIR [--seed N]`: the quality zoo
alone (three digit generators, the evaluator, the gate) into its own folder, with a
catalog of those four models — to re-measure the gate without rebuilding the IIoT
models. `testbed zoo build` builds the same models, byte for byte, beside the others.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from coordinator.zoo.build import built_with, deterministic_torch
from coordinator.zoo.quality.build import build_quality_zoo
from testbed.config import ZooScale
from testbed.zoo.catalog import Catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coordinator.zoo.quality")
    parser.add_argument("--scale", choices=[s.value for s in ZooScale], default="tiny")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scale = ZooScale(args.scale)
    args.out.mkdir(parents=True, exist_ok=True)
    with deterministic_torch():
        entries, report = build_quality_zoo(scale, args.out, args.seed)
    Catalog(scale, entries, built_with()).save(args.out)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
