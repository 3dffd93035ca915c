"""The `testbed.yaml` schema, its validation and the resolved per-node specs.

`load_config(path)` returns a `TestbedConfig` or raises `ConfigError` whose message
names every bad key path and what was expected; the CLI turns that into exit code 2
with no traceback. Precedence: the file, then `TESTBED__SECTION__KEY=value`
environment variables, then `--set section.key=value` flags (values are YAML; a
malformed item exits 3).

The modules: `bench` (the bench's sections), `runs` (tasks, reward, runs, twin,
training), `testbed_config` (`TestbedConfig`, the whole file), `overrides` (the one
`--set` parser), `loading` (reading files), `errors` (`ConfigError`), `limits` (the
ranges every number is held to), `addresses` (HOST:PORT values), `inventory` (the
machines of a bench), `security` (gRPC transport security). Import from this
package; the modules import each other, never this package.

Every number is finite and has a lower and an upper bound, every node id follows
testbed/ids.py's pattern: what loads, runs (tests/unit/test_config_fuzz.py fuzzes it).

Units are in the key names: `_s`, `_ms`, `_mb` (10^6 bytes), `_mbit`, `_mbps`
(10^6 bit/s), `_ghz`, `_w`, `_m`, `_db`, `_dbm`.
"""

from testbed.config.allocation import AllocationConfig, AssignmentMethod
from testbed.config.bench import (
    AgentsConfig,
    AgentSettings,
    AgentSpec,
    BrokerConfig,
    BrokerKind,
    CloudConfig,
    EdgesConfig,
    EdgeSettings,
    EdgeSpec,
    EmulationConfig,
    EnergyConfig,
    LinkEmulation,
    LinksConfig,
    MeterKind,
    NodeAddress,
    NodeBase,
    PowerModelConfig,
    RegistryConfig,
    RuntimeKind,
    TelemetryConfig,
    TlsConfig,
    TopologyConfig,
    ZooConfig,
    ZooScale,
    split_url_credentials,
)
from testbed.config.coedge_learners import CoedgeLearnersConfig
from testbed.config.deploy import DeployConfig
from testbed.config.errors import ConfigError
from testbed.config.inventory import (
    BoardClass,
    HostConfig,
    InventoryConfig,
    ServiceManager,
)
from testbed.config.loading import DEFAULT_CONFIG_NAME, config_from_dict, load_config, read_yaml
from testbed.config.overrides import (
    ENV_PREFIX,
    KeyPathError,
    SetItem,
    apply_env,
    apply_overrides,
    apply_sets,
    parse_set,
    parse_value,
    set_path,
)
from testbed.config.quality import QualityConfig
from testbed.config.quality_live import AllocationMethod, QualityLiveConfig
from testbed.config.runs import (
    BenchSystem,
    FailedLatency,
    RewardConfig,
    RunConfig,
    SlotMode,
    TasksConfig,
    TaskTypeConfig,
    TrainConfig,
    TwinConfig,
)
from testbed.config.security import GrpcTls, SecurityConfig
from testbed.config.testbed_config import TestbedConfig

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "ENV_PREFIX",
    "AgentSettings",
    "AgentSpec",
    "AgentsConfig",
    "AllocationConfig",
    "AllocationMethod",
    "AssignmentMethod",
    "BenchSystem",
    "BoardClass",
    "BrokerConfig",
    "BrokerKind",
    "CloudConfig",
    "CoedgeLearnersConfig",
    "ConfigError",
    "DeployConfig",
    "EdgeSettings",
    "EdgeSpec",
    "EdgesConfig",
    "EmulationConfig",
    "EnergyConfig",
    "FailedLatency",
    "GrpcTls",
    "HostConfig",
    "InventoryConfig",
    "KeyPathError",
    "LinkEmulation",
    "LinksConfig",
    "MeterKind",
    "NodeAddress",
    "NodeBase",
    "PowerModelConfig",
    "QualityConfig",
    "QualityLiveConfig",
    "RegistryConfig",
    "RewardConfig",
    "RunConfig",
    "RuntimeKind",
    "SecurityConfig",
    "ServiceManager",
    "SetItem",
    "SlotMode",
    "TaskTypeConfig",
    "TasksConfig",
    "TelemetryConfig",
    "TestbedConfig",
    "TlsConfig",
    "TopologyConfig",
    "TrainConfig",
    "TwinConfig",
    "ZooConfig",
    "ZooScale",
    "apply_env",
    "apply_overrides",
    "apply_sets",
    "config_from_dict",
    "load_config",
    "parse_set",
    "parse_value",
    "read_yaml",
    "set_path",
    "split_url_credentials",
]
