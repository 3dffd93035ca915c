"""The bench's sections of `testbed.yaml`: broker, zoo, site, links, emulation, energy,
the edge servers, the agents (end devices), the cloud, registry and telemetry.

Units are in the key names: `_s`, `_ms`, `_mb` (10^6 bytes), `_mbit`, `_mbps`
(10^6 bit/s), `_ghz`, `_w`, `_m`, `_db`, `_dbm`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from testbed.config.addresses import host_port_problem
from testbed.config.edge_executor import EdgeExecutorSettings
from testbed.config.limits import (
    CLOCK_MAX_GHZ,
    COUNT_MAX,
    HOST_MAX_LEN,
    NAME_MAX_LEN,
    PERIOD_MAX_S,
    PERIOD_MIN_S,
    POSITION_MAX_M,
    POWER_MAX_W,
    RATE_MAX_MBPS,
    SEED_END,
    STEPS_MAX,
    TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
)
from testbed.ids import NODE_ID_PATTERN
from testbed.schema import Secret, meta


class BrokerKind(enum.StrEnum):
    AUTO = "auto"
    AMQTT = "amqtt"
    MOSQUITTO = "mosquitto"


class ZooScale(enum.StrEnum):
    TINY = "tiny"
    DEMO = "demo"
    PAPER = "paper"


class RuntimeKind(enum.StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    TENSORRT = "tensorrt"


class LinkEmulation(enum.StrEnum):
    """Whether transfers are paced to the configured link rates."""

    AUTO = "auto"  # on for the embedded bench, off on a bench of hosts (real networks)
    ON = "on"
    OFF = "off"


class MeterKind(enum.StrEnum):
    AUTO = "auto"
    NVML = "nvml"
    JETSON = "jetson"
    RAPL = "rapl"
    ESTIMATED = "estimated"


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = field(
        default=False,
        metadata=meta("Embedded broker: TLS only (mqtts://), certificate from the bench CA."),
    )
    ca_file: str | None = field(
        default=None,
        metadata=meta("CA certificate (PEM) to trust; null: the bench CA if any.", path=True),
    )
    cert_file: str | None = field(
        default=None, metadata=meta("Client certificate (PEM).", path=True)
    )
    key_file: str | None = field(
        default=None, metadata=meta("Client private key (PEM).", path=True)
    )


@dataclass(frozen=True)
class BrokerConfig:
    url: str | None = field(
        default=None,
        metadata=meta("mqtt://HOST:PORT or mqtts://HOST:PORT; null: embedded broker."),
    )
    embedded: BrokerKind = field(
        default=BrokerKind.AUTO,
        metadata=meta("Embedded broker: auto (mosquitto if installed, else amqtt)."),
    )
    host: str = field(
        default="127.0.0.1",
        metadata=meta("Bind address of the embedded broker.", max_len=HOST_MAX_LEN),
    )
    port: int = field(
        default=0, metadata=meta("Embedded broker port; 0: a free one.", ge=0, le=65535)
    )
    auth: bool = field(
        default=False,
        metadata=meta("Usernames, passwords and the per-role ACL (docs/security.md)."),
    )
    username: str | None = field(
        default=None, metadata=meta("MQTT username; null: the node id.", max_len=NAME_MAX_LEN)
    )
    password: Secret | None = field(
        default=None, metadata=meta("MQTT password (a secret: written out as <redacted>).")
    )
    password_file: str | None = field(
        default=None,
        metadata=meta("File of the password; null: <certs_dir>/mqtt/<id>.password.", path=True),
    )
    protocol: int = field(
        default=4, metadata=meta("MQTT protocol: 4 (3.1.1) or 5 (denials seen).", ge=4, le=5)
    )
    tls: TlsConfig = field(default_factory=TlsConfig, metadata=meta("TLS files for mqtts://."))
    keepalive_s: int = field(default=30, metadata=meta("MQTT keepalive.", ge=5, le=3600))
    topic_prefix: str = field(
        default="testbed", metadata=meta("Root of every topic.", max_len=NAME_MAX_LEN)
    )

    def __post_init__(self) -> None:
        # Credentials written into the URL leave it at once: the URL is printed, logged,
        # recorded and passed on command lines; the password becomes a `Secret`.
        url, username, password = split_url_credentials(self.url)
        if url != self.url:
            object.__setattr__(self, "url", url)
            object.__setattr__(self, "username", username or self.username)
            object.__setattr__(self, "password", Secret(password) if password else self.password)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.url is not None:
            try:
                parsed = urlparse(self.url)
            except ValueError:  # e.g. an unclosed [IPv6 bracket
                parsed = urlparse("")
            if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
                want = "expected mqtt://HOST:PORT or mqtts://HOST:PORT"
                problems.append(("url", f"{want}, got {self.url!r}"))
            else:
                try:
                    parsed.port  # noqa: B018 - raises on a bad port
                except ValueError:
                    problems.append(("url", f"expected a port number in {self.url!r}"))
            if self.tls.enabled and parsed.scheme != "mqtts":
                why = "tls.enabled: the broker listens with TLS only"
                problems.append(("url", f"{why}, expected mqtts://, got {self.url!r}"))
        if not self.topic_prefix or "#" in self.topic_prefix or "+" in self.topic_prefix:
            problems.append(("topic_prefix", "expected a non-empty topic without '#' or '+'"))
        return problems


_URL_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")
"""`scheme://` and the user info before the last `@` of the authority (a password
written with a bare `@` in it included)."""


def split_url_credentials(url: Any) -> tuple[Any, str | None, str | None]:
    """`url` without `user:password@`, and the user and password it held (decoded);
    anything else comes back unchanged. Textual, so that even a URL that does not
    parse loses its password before any message quotes it."""
    match = _URL_USERINFO.match(url) if isinstance(url, str) else None
    if match is None:
        return url, None, None
    username, _, password = match.group(2).partition(":")
    clean = match.group(1) + url[match.end() :]
    return clean, unquote(username) or None, unquote(password) or None


@dataclass(frozen=True)
class ZooConfig:
    scale: ZooScale = field(
        default=ZooScale.DEMO,
        metadata=meta("Model sizes: tiny (≤5 MB each, tests), demo, paper (90–250 MB)."),
    )
    dir: str = field(
        default=".zoo", metadata=meta("Folder the zoo is built in (per scale).", path=True)
    )
    seed: int = field(
        default=0, metadata=meta("Seed of weight init and training data.", ge=0, lt=SEED_END)
    )
    train_steps: int = field(
        default=200,
        metadata=meta("Training steps for the trained models (0: untrained).", ge=0, le=STEPS_MAX),
    )


@dataclass(frozen=True)
class TopologyConfig:
    area_m: tuple[float, float] = field(
        default=(1000.0, 1000.0),
        metadata=meta("Width and height of the site.", gt=0, le=POSITION_MAX_M),
    )


@dataclass(frozen=True)
class LinksConfig:
    bandwidth_mhz: float = field(
        default=20.0, metadata=meta("Bandwidth of an ED→ES link.", gt=0, le=1e5)
    )
    noise_dbm_per_hz: float = field(
        default=-174.0, metadata=meta("Noise power spectral density.", ge=-250, le=0)
    )
    path_loss_exponent: float = field(default=3.0, metadata=meta("Path loss exponent.", ge=1, le=6))
    gain_at_1m_db: float = field(
        default=-30.0, metadata=meta("Channel gain at 1 m (dB).", ge=-250, le=50)
    )
    min_distance_m: float = field(
        default=1.0, metadata=meta("Distances are at least this.", gt=0, le=POSITION_MAX_M)
    )


@dataclass(frozen=True)
class EmulationConfig:
    links: LinkEmulation | bool = field(
        default=LinkEmulation.AUTO,
        metadata=meta("Pace transfers to the link rates: auto (on locally, off on hosts)."),
    )
    compute: bool = field(
        default=True,
        metadata=meta("Stretch compute time by host_ghz / node cpu_ghz (slower nodes only)."),
    )
    host_ghz: float = field(
        default=3.0,
        metadata=meta("The clock this host's real compute counts as.", gt=0, le=CLOCK_MAX_GHZ),
    )

    def __post_init__(self) -> None:
        if isinstance(self.links, bool):  # `links: true` (and YAML's on/off) as before
            object.__setattr__(self, "links", LinkEmulation.ON if self.links else LinkEmulation.OFF)

    def links_paced(self, remote: bool) -> bool:
        """Whether transfers are paced; `remote`: a bench of hosts (`inventory.remote`)."""
        return self.links is LinkEmulation.ON or (self.links is LinkEmulation.AUTO and not remote)


@dataclass(frozen=True)
class PowerModelConfig:
    idle_w: float = field(
        default=5.0, metadata=meta("Idle power of the node.", ge=0, le=POWER_MAX_W)
    )
    active_w_per_core: float = field(
        default=10.0,
        metadata=meta(
            "Extra power per fully busy CPU core (estimated meter).", ge=0, le=POWER_MAX_W
        ),
    )


@dataclass(frozen=True)
class EnergyConfig:
    meter: MeterKind = field(
        default=MeterKind.AUTO,
        metadata=meta("Energy meter: auto (first that reads: nvml, jetson, rapl), or one."),
    )
    poll_interval_ms: float = field(
        default=20.0,
        metadata=meta("Power polling period for rails and NVML power.", ge=1, le=60_000),
    )
    power: PowerModelConfig = field(
        default_factory=PowerModelConfig,
        metadata=meta("Power model of the `estimated` meter."),
    )
    jetson_sysfs_root: str = field(
        default="/sys/bus/i2c/drivers/ina3221",
        metadata=meta("Where Jetson INA3221 rails live.", path=True),
    )
    rapl_sysfs_root: str = field(
        default="/sys/class/powercap", metadata=meta("Where RAPL powercap zones live.", path=True)
    )


@dataclass(frozen=True)
class NodeBase:
    """Settings every node of a class shares unless a per-node entry overrides them."""

    kappa: float = field(
        default=1e-28,
        metadata=meta("Effective switched capacitance κ of the chip.", ge=0, le=1e-18),
    )
    runtime: RuntimeKind = field(
        default=RuntimeKind.AUTO,
        metadata=meta("ONNX Runtime provider: auto (TensorRT, CUDA, CPU), cpu, cuda, tensorrt."),
    )
    intra_op_threads: int = field(
        default=1, metadata=meta("ONNX Runtime intra-op threads per session.", ge=1, le=256)
    )
    energy: EnergyConfig = field(default_factory=EnergyConfig, metadata=meta("Energy meter."))


@dataclass(frozen=True)
class EdgeSettings(EdgeExecutorSettings, NodeBase):
    cpu_ghz: float = field(
        default=7.0, metadata=meta("CPU clock f_j of the edge.", gt=0, le=CLOCK_MAX_GHZ)
    )
    cache_capacity_mb: float = field(
        default=60.0, metadata=meta("Model cache capacity (10^6 bytes).", gt=0, le=1e7)
    )
    cache_dir: str | None = field(
        default=None, metadata=meta("Cache folder; null: <run folder>/cache/<edge id>.", path=True)
    )
    parallel_slots: int = field(default=1, metadata=meta("Tasks executed at once.", ge=1, le=64))
    queue_capacity: int = field(
        default=256, metadata=meta("Tasks waiting at most; more are rejected.", ge=1, le=COUNT_MAX)
    )
    cloud_link_mbps: float = field(
        default=400.0, metadata=meta("Cloud→edge rate r_cj.", gt=0, le=RATE_MAX_MBPS)
    )
    uplink_capacity_mbps: float = field(
        default=200.0,
        metadata=meta("Capacity B_j for uploads into this edge.", gt=0, le=RATE_MAX_MBPS),
    )
    preload: list[str] = field(default_factory=list, metadata=meta("Models fetched at start."))
    max_batch: int = field(
        default=32, metadata=meta("Samples per model invocation.", ge=1, le=4096)
    )
    fetch_timeout_s: float = field(
        default=120.0,
        metadata=meta("Give up a model fetch after this long.", ge=TIMEOUT_MIN_S, le=TIMEOUT_MAX_S),
    )
    max_steps: int = field(
        default=1000, metadata=meta("Denoising steps a task may ask for.", ge=1, le=STEPS_MAX)
    )
    max_units: int = field(
        default=100_000, metadata=meta("Units (samples) of one task's share.", ge=1, le=STEPS_MAX)
    )
    max_task_data_mb: float = field(
        default=64.0, metadata=meta("Data one task may send (10^6 bytes).", gt=0, le=1e5)
    )
    max_output_kb: float = field(
        default=1024.0,
        metadata=meta("Generated outputs a task may ask back (10^3 bytes; §C).", ge=0, le=3000),
    )


@dataclass(frozen=True)
class NodeAddress:
    id: str = field(
        default="",
        metadata=meta(
            "Node id (lower-case letters, digits, -); empty: <class>-<index>.",
            pattern=NODE_ID_PATTERN,
        ),
    )
    host: str = field(
        default="127.0.0.1", metadata=meta("Address the node listens on.", max_len=HOST_MAX_LEN)
    )
    port: int = field(default=0, metadata=meta("gRPC port; 0: a free one.", ge=0, le=65535))
    position_m: tuple[float, float] | None = field(
        default=None,
        metadata=meta(
            "Position on the site; null: placed automatically.",
            ge=-POSITION_MAX_M,
            le=POSITION_MAX_M,
        ),
    )


@dataclass(frozen=True)
class EdgeSpec(EdgeSettings, NodeAddress):
    """One edge server, resolved from `edges`."""


@dataclass(frozen=True)
class EdgesConfig(EdgeSettings):
    count: int = field(default=3, metadata=meta("Number of edge servers M.", ge=0, le=256))
    nodes: list[dict[str, Any]] = field(
        default_factory=list,
        metadata=meta("Per-edge overrides by index (beyond count: unused); keys above, id, ..."),
    )


@dataclass(frozen=True)
class AgentSettings(NodeBase):
    cpu_ghz_range: tuple[float, float] = field(
        default=(1.0, 2.0),
        metadata=meta("f of each agent is drawn uniformly from this.", gt=0, le=CLOCK_MAX_GHZ),
    )
    transmit_power_w: float = field(
        default=0.5, metadata=meta("Transmit power p_i.", gt=0, le=1000)
    )
    queue_capacity: int = field(
        default=16, metadata=meta("Tasks an agent queues at most.", ge=1, le=COUNT_MAX)
    )
    max_batch: int = field(
        default=32, metadata=meta("Samples per local invocation.", ge=1, le=4096)
    )


@dataclass(frozen=True)
class AgentSpec(AgentSettings, NodeAddress):
    """One agent (end device), resolved from `agents`."""

    cpu_ghz: float | None = field(
        default=None,
        metadata=meta("CPU clock f_i; null: drawn from cpu_ghz_range.", gt=0, le=CLOCK_MAX_GHZ),
    )


@dataclass(frozen=True)
class AgentsConfig(AgentSettings):
    count: int = field(default=10, metadata=meta("Number of end devices N.", ge=0, le=1024))
    nodes: list[dict[str, Any]] = field(
        default_factory=list,
        metadata=meta("Per-agent overrides by index (beyond count: unused); keys above, id, ..."),
    )


@dataclass(frozen=True)
class CloudConfig:
    host: str = field(
        default="127.0.0.1", metadata=meta("Host the cloud node runs on.", max_len=HOST_MAX_LEN)
    )
    position_m: tuple[float, float] = field(
        default=(500.0, 500.0),
        metadata=meta("Position of the cloud centre.", ge=-POSITION_MAX_M, le=POSITION_MAX_M),
    )
    cpu_ghz: float = field(
        default=40.0, metadata=meta("CPU clock of the cloud centre.", gt=0, le=CLOCK_MAX_GHZ)
    )
    transmit_power_w: float = field(
        default=20.0,
        metadata=meta("Power p_c while sending a model, in (8).", ge=0, le=POWER_MAX_W),
    )
    chunk_kib: int = field(
        default=1024, metadata=meta("Bytes per chunk on the MQTT model feed.", ge=4, le=1024)
    )
    max_parallel_transfers: int = field(
        default=8, metadata=meta("Model transfers served at once.", ge=1, le=64)
    )
    max_fetch_requests_per_edge: int = field(
        default=120,
        metadata=meta("Fetch requests one edge may make per window.", ge=1, le=COUNT_MAX),
    )
    fetch_request_window_s: float = field(
        default=60.0,
        metadata=meta("The sliding window of that bound.", ge=TIMEOUT_MIN_S, le=TIMEOUT_MAX_S),
    )
    energy: EnergyConfig = field(default_factory=EnergyConfig, metadata=meta("Energy meter."))


@dataclass(frozen=True)
class RegistryConfig:
    listen: str = field(
        default="127.0.0.1:0",
        metadata=meta("HOST:PORT the registry listens on (0: a free port).", max_len=HOST_MAX_LEN),
    )
    advertise: str = field(
        default="",
        metadata=meta("HOST:PORT the nodes reach the registry at; '': the listen address.",
                      max_len=HOST_MAX_LEN),
    )  # fmt: skip
    heartbeat_interval_s: float = field(
        default=1.0, metadata=meta("Heartbeat period.", ge=PERIOD_MIN_S, le=PERIOD_MAX_S)
    )
    missing_after_beats: int = field(
        default=3,
        metadata=meta("Missed heartbeats before a node is marked missing.", ge=1, le=1000),
    )
    remove_after_s: float = field(
        default=30.0,
        metadata=meta("Silence after which a node is removed.", ge=PERIOD_MIN_S, le=TIMEOUT_MAX_S),
    )

    def check(self) -> list[tuple[str, str]]:
        # Removed before it could be marked missing: a node would leave and re-register
        # between two of its own heartbeats, an event each time.
        missing_s = self.missing_after_beats * self.heartbeat_interval_s
        if self.remove_after_s <= missing_s:
            want = "expected more than missing_after_beats × heartbeat_interval_s"
            return [("remove_after_s", f"{want} = {missing_s:g}, got {self.remove_after_s:g}")]
        problems = [("listen", p) for p in [host_port_problem(self.listen)] if p]
        if self.advertise:
            problems += [("advertise", p) for p in [host_port_problem(self.advertise, 1)] if p]
        return problems


@dataclass(frozen=True)
class TelemetryConfig:
    interval_s: float = field(
        default=1.0, metadata=meta("Telemetry publishing period.", ge=PERIOD_MIN_S, le=PERIOD_MAX_S)
    )
    bench_id: str = field(
        default="default",
        metadata=meta(
            "This bench's name in the topic tree: {broker.topic_prefix}/{bench_id}/...",
            pattern=NODE_ID_PATTERN,
        ),
    )
