"""The `testbed monitor` dashboard: a Textual app over a BenchView
(coordinator/monitor/model.py).

Messages arrive on a worker thread (a live broker or a replay, coordinator/commands/
monitor.py) and go into the view under a lock; the UI redraws from `snapshot()` on a
timer, so it never waits on the network. Keys: `p` pause (the view keeps filling, the
screen stops redrawing), `f` filter by node (cycles through the nodes, then all),
`q` quit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Label, Sparkline

from coordinator.monitor.model import BenchView

Feed = Callable[[str, bytes | str, float], None]
Source = Callable[[Feed, threading.Event], None]
"""Runs on a worker thread, feeding messages until the event is set."""

REFRESH_S = 0.5


class MonitorApp(App[None]):
    TITLE = "testbed monitor"
    BINDINGS: ClassVar = [
        ("p", "pause", "pause"),
        ("f", "filter", "filter node"),
        ("q", "quit", "quit"),
    ]
    CSS = "DataTable { height: auto; max-height: 16; } Sparkline { height: 2; }"

    def __init__(self, view: BenchView, source: Source | None = None) -> None:
        super().__init__()
        self.view = view
        self._source = source
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.paused = False
        self.node_filter: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("", id="state")
        yield DataTable(id="nodes")
        yield DataTable(id="edges")
        with Horizontal():
            with Vertical():
                yield Label("latency p50 (ms)")
                yield Sparkline([], id="latency")
            with Vertical():
                yield Label("power (W)")
                yield Sparkline([], id="power")
        yield DataTable(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#nodes", DataTable).add_columns(
            "node", "role", "host", "status", "telemetry age s"
        )
        self.query_one("#edges", DataTable).add_columns(
            "edge", "cached models", "used / total B", "hits", "misses", "hit rate"
        )
        self.query_one("#events", DataTable).add_columns("time", "node", "kind", "fields")
        if self._source is not None:
            source = self._source
            self.run_worker(lambda: source(self.feed, self._stop), thread=True, exit_on_error=False)
        self.set_interval(REFRESH_S, self.refresh_view)
        self.refresh_view()

    def feed(self, topic: str, payload: bytes | str, received_unix_s: float) -> None:
        """Called from the worker thread."""
        with self._lock:
            self.view.feed(topic, payload, received_unix_s)

    def on_unmount(self) -> None:
        self._stop.set()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.refresh_view(force=True)

    def action_filter(self) -> None:
        with self._lock:
            ids = sorted(self.view.nodes)
        choices: list[str | None] = [None, *ids]
        at = choices.index(self.node_filter) if self.node_filter in choices else 0
        self.node_filter = choices[(at + 1) % len(choices)]
        self.refresh_view(force=True)

    def refresh_view(self, force: bool = False) -> None:
        if self.paused and not force:
            return
        with self._lock:
            snap = self.view.snapshot()
        shown = self.node_filter
        state = "PAUSED  " if self.paused else ""
        self.query_one("#state", Label).update(
            f"{state}{len(snap['nodes'])} node(s), {snap['messages']} message(s); "
            f"filter: {shown or 'all'}"
        )
        self._fill_nodes(snap["nodes"], shown)
        self._fill_edges(snap["edges"], shown)
        self._fill_sparklines(snap["nodes"], shown)
        self._fill_events(snap["events"], shown)

    def _fill_nodes(self, nodes: dict[str, Any], shown: str | None) -> None:
        table = self.query_one("#nodes", DataTable)
        table.clear()
        for node_id, n in nodes.items():
            if shown in (None, node_id):
                age = "-" if n["telemetry_age_s"] is None else f"{n['telemetry_age_s']:.1f}"
                table.add_row(node_id, n["role"], n["host"] or "-", n["status"], age)

    def _fill_edges(self, edges: dict[str, Any], shown: str | None) -> None:
        table = self.query_one("#edges", DataTable)
        table.clear()
        for edge_id, e in edges.items():
            if shown in (None, edge_id):
                rate = "-" if e["hit_rate"] is None else f"{100 * e['hit_rate']:.0f}%"
                table.add_row(edge_id, ", ".join(e["cached_models"]) or "-",
                              f"{e['used_bytes']} / {e['total_bytes']}",
                              str(e["hits"]), str(e["misses"]), rate)  # fmt: skip

    def _fill_sparklines(self, nodes: dict[str, Any], shown: str | None) -> None:
        picked = [n for node_id, n in nodes.items() if shown in (None, node_id)]
        empty: list[float] = []
        latency = max((n["latency_p50_ms"] for n in picked), key=len, default=empty)
        powers = [n["power_w"] for n in picked if n["power_w"]]
        power = [sum(p) for p in zip(*powers, strict=False)]  # shortest series sets the length
        self.query_one("#latency", Sparkline).data = latency
        self.query_one("#power", Sparkline).data = power

    def _fill_events(self, events: list[dict[str, Any]], shown: str | None) -> None:
        table = self.query_one("#events", DataTable)
        table.clear()
        for e in reversed(events):
            if shown in (None, e["node_id"]):
                fields = ", ".join(f"{k}={v}" for k, v in (e["fields"] or {}).items())
                table.add_row(f"{e['ts_unix_s']}", str(e["node_id"]), str(e["kind"]), fields)
