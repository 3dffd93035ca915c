"""MQTT access control with real brokers: the embedded Mosquitto (and amqtt) started
with the generated password file, ACL and TLS listener (testbed/broker_config.py), real
clients logging in as nodes. What must not pass is asserted where it would arrive: at
a subscriber allowed to read the topic."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from testbed.broker import EmbeddedBroker
from testbed.broker_config import BrokerSecurity, bench_broker_security
from testbed.config import BrokerKind, TestbedConfig, config_from_dict
from testbed.mqtt import MqttClient, MqttRefused, MqttUnavailable
from testbed.mqtt_auth import COORDINATOR_ID, MONITOR_ID, node_broker_address
from testbed.schema import Secret
from testbed.security.certs import create_ca
from testbed.topics import Topics

from .harness import broker_kinds

pytestmark = pytest.mark.slow

needs_mosquitto = pytest.mark.skipif(
    shutil.which("mosquitto") is None, reason="Mosquitto is not installed (.ci/run installs it)"
)
FORGED = b"forged"
REPO = Path(__file__).resolve().parents[2]
_client_ids = itertools.count()


def secured_config(tmp_path: Path, **broker: object) -> TestbedConfig:
    """Two edges, one agent, logins + ACL + TLS, a fresh bench CA in tmp_path."""
    certs = tmp_path / "certs"
    create_ca(certs)
    return config_from_dict({
        "broker": {"auth": True, "tls": {"enabled": True}, **broker},
        "security": {"certs_dir": str(certs)},
        "edges": {"count": 2}, "agents": {"count": 1},
    })  # fmt: skip


@contextmanager
def secured_broker(
    tmp_path: Path, kind: str, **broker: object
) -> Iterator[tuple[TestbedConfig, EmbeddedBroker]]:
    cfg = secured_config(tmp_path, **broker)
    security = bench_broker_security(cfg, "127.0.0.1")
    with EmbeddedBroker.start(
        cfg.broker, tmp_path / "broker", kind=BrokerKind(kind), security=security
    ) as running:
        assert running.url.startswith("mqtts://")
        yield cfg, running


def connect(
    cfg: TestbedConfig, broker: EmbeddedBroker, node_id: str, **kwargs: object
) -> MqttClient:
    address = node_broker_address(broker.url, cfg, node_id)
    client = MqttClient(address, f"{node_id}-test-{next(_client_ids)}", **kwargs)  # type: ignore[arg-type]
    return client.connect(10)


class Inbox:
    """Every message a subscriber got, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._cond:
            self.messages.append((topic, payload))
            self._cond.notify_all()

    def wait_for(
        self, ok: Callable[[list[tuple[str, bytes]]], bool], timeout_s: float = 10
    ) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: ok(self.messages), timeout_s)


def _subscribed(inbox: Inbox, publisher: MqttClient, topic: str, copies: int) -> None:
    """Publish a probe on `topic` until `copies` subscriptions delivered it (a
    subscription takes effect some time after `subscribe` returns)."""
    probe = f"probe-{next(_client_ids)}".encode()
    for _ in range(50):
        publisher.publish(topic, probe).wait_for_publish(5)
        if inbox.wait_for(lambda m: m.count((topic, probe)) >= copies, 0.2):
            return
    raise AssertionError(f"subscriptions to {topic} never took effect")


@needs_mosquitto
def test_an_agent_cannot_publish_a_model_feed_an_edge_state_or_the_catalog(
    tmp_path: Path,
) -> None:
    with secured_broker(tmp_path, "mosquitto", protocol=5) as (cfg, broker):
        t = Topics.of(cfg)
        inbox = Inbox()
        cloud, edge = connect(cfg, broker, "cloud"), connect(cfg, broker, "edge-0")
        monitor = connect(cfg, broker, COORDINATOR_ID)  # may read the whole tree
        monitor.subscribe(t.everything, inbox)
        edge.subscribe(t.feed("edge-0"), inbox)  # the one reader of that feed
        _subscribed(inbox, cloud, t.feed("edge-0"), copies=2)
        agent = connect(cfg, broker, "agent-0")
        forged_by_agent = [
            t.feed("edge-0"), t.edge_state("edge-0"), t.catalog, t.fetch_requests,
            t.status("edge-0"), t.telemetry("cloud"),
        ]  # fmt: skip
        forged_by_edge = [t.edge_state("edge-1"), t.catalog, t.feed("edge-1"), t.status("cloud")]
        watcher = connect(cfg, broker, MONITOR_ID)  # `testbed monitor`'s login: reads only
        forged_by_watcher = [t.events(COORDINATOR_ID), t.status("edge-0"), t.feed("edge-0")]
        forging = ((agent, forged_by_agent), (edge, forged_by_edge), (watcher, forged_by_watcher))
        for client, topics in forging:
            for topic in topics:
                client.publish(topic, FORGED, qos=1).wait_for_publish(5)
        # What the owners publish still arrives, after everything forged was answered.
        edge.publish(t.edge_state("edge-0"), b"real-state").wait_for_publish(5)
        cloud.publish(t.feed("edge-0"), b"real-feed").wait_for_publish(5)
        assert inbox.wait_for(lambda m: m.count((t.feed("edge-0"), b"real-feed")) == 2)
        assert (t.edge_state("edge-0"), b"real-state") in inbox.messages
        assert not [m for m in inbox.messages if m[1] == FORGED]
        # MQTT v5: each denial came back to its publisher as NotAuthorized, counted.
        assert agent.denied_publishes == dict.fromkeys(forged_by_agent, 1)
        assert edge.denied_publishes == dict.fromkeys(forged_by_edge, 1)
        assert watcher.denied_publishes == dict.fromkeys(forged_by_watcher, 1)
        assert cloud.denied_publishes == {} and monitor.denied_publishes == {}
        for client in (agent, edge, cloud, monitor, watcher):
            client.close()


@pytest.mark.parametrize("kind", broker_kinds())
def test_a_wrong_password_no_password_and_no_tls_are_refused(tmp_path: Path, kind: str) -> None:
    with secured_broker(tmp_path, kind) as (cfg, broker):
        good = node_broker_address(broker.url, cfg, "agent-0")
        for address in (
            replace(good, password=Secret("not-the-password")),
            replace(good, username="intruder"),
            replace(good, username=None, password=None),
        ):
            with pytest.raises(MqttRefused, match=r"Not authorized|Bad user name"):
                MqttClient(address, f"bad-{next(_client_ids)}").connect(10)
        for address in (
            replace(good, tls=False),  # plaintext to the TLS listener
            replace(good, ca_file=str(_other_ca(tmp_path))),  # a broker it cannot verify
        ):
            with pytest.raises(MqttUnavailable) as refused:
                MqttClient(address, f"bad-{next(_client_ids)}").connect(3)
            assert not isinstance(refused.value, MqttRefused)
        connect(cfg, broker, "agent-0").close()  # the right password still logs in


def _other_ca(tmp_path: Path) -> Path:
    create_ca(tmp_path / "other-ca")
    return tmp_path / "other-ca" / "ca.pem"


WILL_NODE = """
import sys, time
from testbed.config import load_config
from testbed.mqtt import MqttClient
from testbed.mqtt_auth import node_broker_address
from testbed.topics import Topics
cfg = load_config(sys.argv[1], env={})
status = Topics.of(cfg).status("edge-1")
client = MqttClient(node_broker_address(sys.argv[2], cfg, "edge-1"), "edge-1-will",
                    will=(status, b"offline"))
client.connect(10)
client.publish_retained(status, b"online").wait_for_publish(10)
print("online", flush=True)
time.sleep(120)
"""


@needs_mosquitto
def test_retained_state_and_last_wills_still_work_under_the_acl(tmp_path: Path) -> None:
    with secured_broker(tmp_path, "mosquitto") as (cfg, broker):
        t = Topics.of(cfg)
        edge = connect(cfg, broker, "edge-0")
        edge.publish_retained(t.edge_state("edge-0"), b"state-1").wait_for_publish(5)
        config_file = tmp_path / "node.yaml"
        config_file.write_text(cfg.to_yaml())  # redacted: the node reads its password file
        node = subprocess.Popen(
            [sys.executable, "-c", WILL_NODE, str(config_file), broker.url],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert node.stdout is not None and node.stdout.readline().strip() == "online"
        finally:
            node.kill()  # no DISCONNECT: the broker publishes the last will
            node.wait()
        inbox = Inbox()
        agent = connect(cfg, broker, "agent-0")  # connects after both: retained values only
        agent.subscribe(t.all_edge_states, inbox)
        agent.subscribe(t.status("+"), inbox)
        assert inbox.wait_for(lambda m: (t.status("edge-1"), b"offline") in m), inbox.messages
        assert inbox.wait_for(lambda m: (t.edge_state("edge-0"), b"state-1") in m)
        # A will on another node's topic is never published (Mosquitto drops it).
        liar = connect(cfg, broker, "agent-0", will=(t.status("edge-0"), FORGED))
        liar._client.socket().close()  # type: ignore[union-attr]  # dies without DISCONNECT
        time.sleep(1.0)
        assert not [m for m in inbox.messages if m[1] == FORGED]
        for client in (edge, agent, liar):
            client.close()


def test_amqtt_applies_the_publish_acl_and_refuses_a_foreign_last_will(tmp_path: Path) -> None:
    """amqtt speaks 3.1.1 only: a denied publish is dropped without a reason code."""
    with secured_broker(tmp_path, "amqtt") as (cfg, broker):
        t = Topics.of(cfg)
        inbox = Inbox()
        cloud, monitor = connect(cfg, broker, "cloud"), connect(cfg, broker, COORDINATOR_ID)
        monitor.subscribe(t.everything, inbox)
        _subscribed(inbox, cloud, t.catalog, copies=1)
        agent = connect(cfg, broker, "agent-0")
        for topic in (t.catalog, t.feed("edge-0"), t.edge_state("edge-0"), t.status("cloud")):
            agent.publish(topic, FORGED).wait_for_publish(5)
        cloud.publish(t.catalog, b"real").wait_for_publish(5)
        assert inbox.wait_for(lambda m: (t.catalog, b"real") in m)
        assert not [m for m in inbox.messages if m[1] == FORGED]
        with pytest.raises(MqttRefused):  # testbed/broker_amqtt.py: LastWillCheck
            connect(cfg, broker, "agent-0", will=(t.status("edge-0"), FORGED))
        connect(cfg, broker, "agent-0", will=(t.status("agent-0"), b"offline")).close()
        for client in (agent, cloud, monitor):
            client.close()


# ---------------------------------------------------------------------- a whole bench

PRIVATE_KEY = re.compile(rb"BEGIN .*PRIVATE KEY")


@contextmanager
def command_lines_seen() -> Iterator[set[str]]:
    """Every process command line on this machine, sampled every 0.1 s meanwhile."""
    seen: set[str] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for proc in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    seen.add(proc.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    continue  # gone meanwhile
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()


def run_up(
    tmp_path: Path, tiny_zoo: Path, **sections: object
) -> tuple[subprocess.CompletedProcess, set[str], Path]:
    """`testbed up` as a user runs it, with the command lines seen while it ran and its
    run folder."""
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "tiny").symlink_to(tiny_zoo)
    data = {
        "zoo": {"scale": "tiny", "dir": str(tmp_path / "zoo")},
        "emulation": {"links": False, "compute": False},
        "edges": {"count": 1, "energy": {"meter": "estimated"}, "nodes": [{"preload": ["cgan-s"]}]},
        "agents": {"count": 1, "energy": {"meter": "estimated"}},
        "cloud": {"energy": {"meter": "estimated"}},
        "tasks": {"num_types": 3, "flops_per_cycle": 1.0},
        "run": {"out_dir": str(tmp_path / "runs"), "slots": 3, "policy": "offload",
                "start_timeout_s": 60.0, "task_timeout_s": 30.0},
        **sections,
    }  # fmt: skip
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump(data))
    with command_lines_seen() as seen:
        done = subprocess.run(
            [sys.executable, "-m", "coordinator.cli", "up", "-c", str(config)],
            cwd=REPO, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    runs = list((tmp_path / "runs").iterdir())
    assert done.returncode == 0 and len(runs) == 1, done.stdout[-2000:] + done.stderr[-3000:]
    return done, seen, runs[0]


def assert_nowhere(secrets: list[bytes], done: subprocess.CompletedProcess, seen: set[str],
                   run_dir: Path) -> None:  # fmt: skip
    """No secret and no private key in the run folder (node and broker logs included),
    on the command's output, or on any command line seen while it ran."""
    places = {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    places |= {"stdout": done.stdout.encode(), "stderr": done.stderr.encode()}
    places |= {f"command line {line[:80]!r}": line.encode() for line in seen}
    assert any(p.endswith(".log") for p in places) and (run_dir / "summary.json").is_file()
    for daemon in ("cloud_node", "edge_node", "agent_node"):  # the nodes were seen running
        assert any(f"-m {daemon} " in line for line in seen), daemon
    for where, data in places.items():
        assert not PRIVATE_KEY.search(data), f"private key material in {where}"
        for secret in secrets:
            assert secret not in data, f"a password in {where}"


def _completed(run_dir: Path) -> tuple[int, int]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["tasks"], summary["completed"]


@needs_mosquitto
def test_a_bench_with_auth_and_tls_runs_and_writes_no_secret(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    certs = tmp_path / "certs"
    create_ca(certs)
    done, seen, run_dir = run_up(
        tmp_path, tiny_zoo, security={"certs_dir": str(certs)},
        broker={"auth": True, "tls": {"enabled": True}, "protocol": 5, "embedded": "mosquitto"},
    )  # fmt: skip
    assert "(auth, ACL, TLS)" in done.stdout and "mqtts://" in done.stdout
    tasks, completed = _completed(run_dir)
    assert tasks == 3 and completed == tasks, done.stdout[-2000:]
    logs = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    assert "denied" not in logs and "refused" not in logs  # the ACL lets real work through
    passwords = [p.read_text().strip().encode() for p in (certs / "mqtt").glob("*.password")]
    assert len(passwords) == 5  # cloud, edge-0, agent-0, coordinator, monitor
    assert_nowhere(passwords, done, seen, run_dir)


@needs_mosquitto
def test_a_password_in_the_broker_url_reaches_the_nodes_and_nothing_else(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    password = f"url-secret-{time.time_ns()}"
    cfg = config_from_dict({"security": {"certs_dir": str(tmp_path / "broker-certs")}})
    security = BrokerSecurity({"bench": Secret(password)}, None, None, tmp_path / "broker-secrets")
    with EmbeddedBroker.start(
        cfg.broker, tmp_path / "broker", kind=BrokerKind.MOSQUITTO, security=security
    ) as external:
        url = f"mqtt://bench:{password}@127.0.0.1:{external.port}"
        done, seen, run_dir = run_up(
            tmp_path, tiny_zoo, broker={"url": url},
            security={"certs_dir": str(tmp_path / "certs")},
        )  # fmt: skip
    tasks, completed = _completed(run_dir)
    assert tasks == 3 and completed == tasks, done.stdout[-2000:]
    assert any("--set broker.password_file=" in line for line in seen)  # handed by path
    assert_nowhere([password.encode()], done, seen, run_dir)
