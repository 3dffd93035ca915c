"""What `testbed COMMAND --help` says: a one-line description first, then the details,
then examples (docs/cli.md). Every command's parser is made with `help_texts`."""

from __future__ import annotations

import argparse
from typing import Any


def help_texts(summary: str, *examples: str, details: str = "") -> dict[str, Any]:
    """Keyword arguments for `subparsers.add_parser(name, **help_texts(...))`: `summary`
    (one line) is both the line in the command list and the first line of `--help`;
    `details` a paragraph after it; `examples` are shown, as typed, at the end."""
    description = summary[:1].upper() + summary[1:] + "."
    if details:
        description += "\n\n" + details.strip()
    label = "example:" if len(examples) == 1 else "examples:"
    epilog = label + "".join(f"\n  {e}" for e in examples) if examples else None
    return {
        "help": summary,
        "description": description,
        "epilog": epilog,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def add_inventory_flag(parser: argparse.ArgumentParser) -> None:
    """`--inventory FILE`: a bench of hosts from an inventory file (docs/deploy.md)."""
    parser.add_argument(
        "--inventory",
        metavar="FILE",
        default=None,
        help="the bench's hosts from this file, not the config's (`testbed lab up` writes one)",
    )
