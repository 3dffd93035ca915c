"""`testbed zoo build | list | register`: the model zoo from the command line.

Defaults come from the config file (`-c/--config`, else ./testbed.yaml): the scale,
the folder `<zoo.dir>/<scale>`, the seed and the training steps; flags override them.
torch and onnx are imported when a command runs, so `testbed --help` stays fast and a
missing one is a clear error (exit code 10), not a traceback.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from coordinator.command_help import help_texts
from coordinator.jsonout import add_json_flag, print_json
from coordinator.progress import progress_enabled
from testbed.config import TestbedConfig, ZooScale, load_config
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.zoo.catalog import Catalog, CatalogError, CatalogNotFound, ModelFamily


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `zoo` command group to the testbed CLI."""
    zoo = subparsers.add_parser("zoo", **help_texts(
        "build and inspect the generative model zoo",
        "testbed zoo build --scale tiny", "testbed zoo list --json",
        details="Defaults come from the testbed file's zoo section (docs/zoo.md).",
    ))  # fmt: skip
    sub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="COMMAND")
    scales = [s.value for s in ZooScale]

    build = sub.add_parser("build", **help_texts(
        "build the zoo's models and catalog.json (needs torch)",
        "testbed zoo build --scale tiny", "testbed zoo build --scale paper --out /data/zoo",
        details="Writes <zoo.dir>/<scale>/ (or --out): the ONNX files and catalog.json.",
    ))  # fmt: skip
    build.add_argument("--scale", choices=scales, help="model sizes (default: zoo.scale)")
    build.add_argument("--out", type=Path, help="output folder (default: <zoo.dir>/<scale>)")
    build.add_argument("--seed", type=int, help="build seed (default: zoo.seed)")
    build.add_argument(
        "--train-steps",
        type=int,
        help="training steps per model (default: zoo.train_steps; 0 at the paper scale)",
    )
    build.add_argument(
        "--no-quality",
        action="store_true",
        help="leave out the quality zoo (digit generators, evaluator, gate; docs/quality.md)",
    )
    _config_flag(build)
    build.set_defaults(func=_build)

    show = sub.add_parser("list", **help_texts(
        "print a zoo's catalog as a table",
        "testbed zoo list", "testbed zoo list --dir .zoo/demo --json",
    ))  # fmt: skip
    show.add_argument("--dir", type=Path, help="zoo folder (default: <zoo.dir>/<scale>)")
    show.add_argument("--scale", choices=scales, help="scale (default: zoo.scale)")
    _config_flag(show)
    add_json_flag(show)
    show.set_defaults(func=_list)

    reg = sub.add_parser("register", **help_texts(
        "add an operator's own ONNX file to a zoo's catalog",
        "testbed zoo register my_model.onnx --id mine-s --family cgan",
        details="The file is checked with onnx.checker, copied into the zoo folder and listed\n"
        "with its checksum, signature and FLOPs (counted unless --flops given); task types\n"
        "can then name it by --id (docs/zoo.md).",
    ))  # fmt: skip
    reg.add_argument("file", type=Path, help="the ONNX file")
    reg.add_argument("--id", required=True, dest="model_id", help="model id task types use")
    reg.add_argument("--family", required=True, choices=[f.value for f in ModelFamily])
    reg.add_argument("--version", default="1", help="version string (default: 1)")
    reg.add_argument("--steps", type=int, default=1, help="default steps (diffusion only)")
    reg.add_argument(
        "--flops", type=int, help="FLOPs of one pass for one sample (default: counted)"
    )
    reg.add_argument("--description", default="", help="what the model does")
    reg.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D1,D2,...",
        help="sizes of an input's non-batch dimensions (for symbolic ones); repeatable",
    )
    reg.add_argument("--dir", type=Path, help="zoo folder (default: <zoo.dir>/<scale>)")
    reg.add_argument("--scale", choices=scales, help="scale (default: zoo.scale)")
    _config_flag(reg)
    reg.set_defaults(func=_register)


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="testbed file (default: ./testbed.yaml)")


def _zoo_dir(args: argparse.Namespace, cfg: TestbedConfig, flag: str) -> tuple[ZooScale, Path]:
    scale = ZooScale(args.scale) if args.scale else cfg.zoo.scale
    folder = getattr(args, flag, None)
    return scale, Path(folder) if folder else cfg.zoo_path(scale)


def _build(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    scale, out_dir = _zoo_dir(args, cfg, "out")
    seed = cfg.zoo.seed if args.seed is None else args.seed
    if seed < 0 or (args.train_steps is not None and args.train_steps < 0):
        raise TestbedExit(ExitCode.USAGE, "--seed and --train-steps must be ≥ 0")
    train_steps = args.train_steps
    if train_steps is None and scale is not ZooScale.PAPER:
        train_steps = cfg.zoo.train_steps
    try:
        from coordinator.zoo.build import ZooBuildError, build_zoo
    except ImportError as exc:
        raise TestbedExit(
            ExitCode.DEPENDENCY_MISSING,
            f"building the zoo needs {exc.name or 'torch and onnx'}, which is not installed: "
            "pip install -e '.[train]'",
        ) from None
    try:
        progress = print if progress_enabled() else (lambda _line: None)  # -q: no chatter
        build_zoo(scale, out_dir, seed=seed, train_steps=train_steps, progress=progress,
                  quality=not args.no_quality)  # fmt: skip
    except ZooBuildError as exc:
        raise TestbedExit(ExitCode.FAILURE, str(exc)) from None
    except ImportError as exc:  # the quality zoo's scikit-learn (its real digits)
        raise TestbedExit(
            ExitCode.DEPENDENCY_MISSING,
            f"building the quality zoo needs {exc.name or 'scikit-learn'}, which is not "
            "installed: pip install -e '.[train]' (or --no-quality)",
        ) from None
    return 0


def _list(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    _, folder = _zoo_dir(args, cfg, "dir")
    try:
        catalog = Catalog.load(folder)
    except CatalogNotFound as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, str(exc)) from None
    except CatalogError as exc:
        raise TestbedExit(ExitCode.MODEL_INVALID, str(exc)) from None
    if args.json:  # catalog.json's document, and the folder it was read from
        print_json({**json.loads(catalog.to_json()), "dir": str(folder)})
    else:
        print(format_catalog(catalog))
    return 0


def format_catalog(catalog: Catalog) -> str:
    """The catalog as a plain-text table, one model a line."""
    head = (
        f"{'id':<14} {'family':<11} {'ver':>3} {'size MB':>8} {'params M':>9} "
        f"{'MFLOP/pass':>10} {'steps':>5} {'trained':>7}  {'origin':<8} sha256"
    )
    lines = [f"zoo {catalog.root} ({catalog.scale.value}, {len(catalog.entries)} models)", head]
    for e in catalog.entries:
        lines.append(
            f"{e.id:<14} {e.family.value:<11} {e.version:>3} {e.size_mb:8.2f} "
            f"{e.params / 1e6:9.2f} {e.flops_per_invocation / 1e6:10.2f} {e.default_steps:>5} "
            f"{'yes' if e.trained else 'no':>7}  {e.origin.value:<8} {e.sha256[:12]}"
        )
    return "\n".join(lines)


def _parse_shapes(items: list[str]) -> dict[str, list[int]]:
    shapes = {}
    for item in items:
        name, _, dims = item.partition("=")
        try:
            shapes[name.strip()] = [int(d) for d in dims.split(",") if d.strip()]
        except ValueError:
            raise TestbedExit(ExitCode.USAGE, f"expected NAME=D1,D2,... got {item!r}") from None
        if not name.strip() or not shapes[name.strip()]:
            raise TestbedExit(ExitCode.USAGE, f"expected NAME=D1,D2,... got {item!r}")
    return shapes


def _register(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    scale, folder = _zoo_dir(args, cfg, "dir")
    try:
        from coordinator.zoo.register import RegisterError, register_model
    except ImportError as exc:
        raise TestbedExit(
            ExitCode.DEPENDENCY_MISSING,
            f"registering a model needs {exc.name or 'onnx'}, which is not installed: "
            "pip install -e '.[coordinator]'",
        ) from None
    try:
        entry = register_model(
            folder,
            args.file,
            args.model_id,
            ModelFamily(args.family),
            version=args.version,
            default_steps=args.steps,
            flops_per_invocation=args.flops,
            description=args.description,
            input_shapes=_parse_shapes(args.input_shape),
            scale=scale,
        )
    except RegisterError as exc:
        raise TestbedExit(ExitCode.MODEL_INVALID, str(exc)) from None
    except CatalogError as exc:
        raise TestbedExit(ExitCode.MODEL_INVALID, str(exc)) from None
    print(
        f"registered {entry.key} ({entry.size_mb:.2f} MB, "
        f"{entry.flops_per_invocation / 1e6:.2f} MFLOP/pass) in {folder / 'catalog.json'}"
    )
    return 0
