"""Node ids: the one pattern every node id follows (docs/registry.md, "Node ids").

A node id names a process of the bench everywhere: MQTT topics
(`<prefix>/node/<id>/status`), file names in the run folder (`logs/<id>.log`,
`ready/<id>.json`), log lines, the registry's table and the summary. So it is short,
lower-case ASCII, starts with a letter and holds no `/`, `+`, `#`, blank, newline or
terminal escape. The ids the config generates (`edge-0`, `agent-12`, `cloud`) all
follow it; the config schema (testbed/config/bench.py) and the registry
(coordinator/registry.py) check it.
"""

from __future__ import annotations

import re

NODE_ID_MAX_LEN = 32
NODE_ID_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
"""A lower-case letter, then up to 31 lower-case letters, digits or `-`."""

_NODE_ID_RE = re.compile(NODE_ID_PATTERN)
_SHOWN_CHARS = 40


def shown_id(node_id: str) -> str:
    """`node_id` safe to print: its repr (escapes newlines and control characters),
    cut to a few dozen characters with the full length said."""
    text = repr(node_id[:_SHOWN_CHARS])
    return text if len(node_id) <= _SHOWN_CHARS else f"{text}... ({len(node_id)} characters)"


def node_id_problem(node_id: object) -> str | None:
    """None for a valid node id, else what is wrong with it (never echoing it whole)."""
    if not isinstance(node_id, str):
        return f"expected a node id (a string), got {type(node_id).__name__}"
    if _NODE_ID_RE.fullmatch(node_id):  # fullmatch: no trailing newline slips past `$`
        return None
    return f"expected a node id matching {NODE_ID_PATTERN}, got {shown_id(node_id)}"


def is_node_id(node_id: object) -> bool:
    """Whether `node_id` follows the node id pattern."""
    return node_id_problem(node_id) is None
