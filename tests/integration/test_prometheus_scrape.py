"""`testbed exporter`'s aggregator (coordinator/exporter.py) as Prometheus sees it: on a
short live bench, `promtool check metrics` accepts its `/metrics`, and a real Prometheus
server scraping it every second answers a PromQL query listing the bench's edges."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordinator.exporter import MetricsServer
from coordinator.policy_choice import PolicySource
from testbed.topics import Topics

from ..waiting import wait_until
from .test_live_bench import make_bench

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("prometheus") and shutil.which("promtool")),
        reason="needs prometheus and promtool (apt-get install prometheus)",
    ),
]

PROMETHEUS_WAIT_S = 90.0
"""Prometheus starts, scrapes and answers within seconds; a loaded host may need more."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode()


def _query(base_url: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query; empty while Prometheus cannot answer yet."""
    try:
        body = json.loads(_get(f"{base_url}/api/v1/query?query={urllib.parse.quote(promql)}"))
    except (OSError, ValueError):
        return []
    return list(body.get("data", {}).get("result", [])) if body.get("status") == "success" else []


def _start_prometheus(tmp_path: Path, exporter_port: int) -> tuple[subprocess.Popen, str]:
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "testbed",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }))  # fmt: skip
    port = _free_port()
    with (tmp_path / "prometheus.log").open("w") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def test_prometheus_scrapes_the_exporter_of_a_live_bench(tmp_path: Path, tiny_zoo: Path) -> None:
    bench = make_bench(tmp_path, tiny_zoo, telemetry={"interval_s": 0.2, "bench_id": "lab-1"})
    prometheus: subprocess.Popen | None = None
    try:
        bench.start(PolicySource("offload"))
        topics = Topics.of(bench.cfg)
        with MetricsServer(bench.cfg, bench.launcher.broker_url, topics, "127.0.0.1", 0) as ex:
            for slot in range(3):
                bench.step(slot)
            edges = {s.id for s in bench.cfg.edge_specs()}
            wanted = [f'testbed_cache_used_bytes{{node="{e}",role="edge"}}' for e in edges]
            assert wait_until(lambda: all(w in _get(ex.url) for w in wanted)), _get(ex.url)

            text = _get(ex.url)
            lint = subprocess.run(["promtool", "check", "metrics"], input=text,
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
            assert lint.returncode == 0, lint.stdout + lint.stderr

            prometheus, base_url = _start_prometheus(tmp_path, ex.server.server_port)

            def edges_answered() -> set[str]:
                result = _query(base_url, "testbed_cache_used_bytes")
                return {r["metric"].get("node", "") for r in result}

            assert wait_until(lambda: edges_answered() >= edges, PROMETHEUS_WAIT_S), (
                edges_answered(),
                (tmp_path / "prometheus.log").read_text()[-3000:],
            )
    finally:
        if prometheus is not None:
            prometheus.kill()
            prometheus.wait(30)
        bench.close()
