"""What a user names as "a policy", parsed in one place.

`testbed up --policy`, `testbed eval --policies`, experiments and the envs all take
the same forms:

| form | meaning |
|---|---|
| `random`, `greedy`, `local`, `offload` | a heuristic, run on the boards |
| `oracle` | the per-slot optimum (docs/optimum.md), in the twin only |
| `PATH.onnx` | one exported actor for every agent |
| `FOLDER` | per-agent actors `FOLDER/<agent-id>.onnx`, or a training run's `FOLDER/actors/` |
| `LABEL=ANY_OF_THE_ABOVE` | the same, shown as `LABEL` in tables and figures |

A heuristic runs on the boards by name; an actor is sent to them (`LoadPolicy`) as
ONNX bytes with its observation spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coordinator.actors import ActorFile, read_actor
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.policies import HEURISTICS, PolicyKind

ORACLE = "oracle"
"""The per-slot optimum (coordinator/envs/oracle.py, docs/optimum.md): twin only."""


@dataclass(frozen=True)
class PolicySource:
    """What `LoadPolicy` sends to one board: a heuristic by name, or an ONNX actor."""

    name: str
    actor: ActorFile | None = None

    @classmethod
    def heuristic(cls, kind: PolicyKind | str) -> PolicySource:
        return cls(PolicyKind(kind).value)

    @classmethod
    def onnx(cls, actor: ActorFile) -> PolicySource:
        return cls(PolicyKind.ONNX.value, actor)


BoardPolicies = PolicySource | dict[str, PolicySource]
"""One policy for every board, or one per agent id."""


@dataclass(frozen=True)
class PolicyChoice:
    """A parsed policy with its label: a heuristic (or the oracle) by name, or actors by
    agent id (`"*"`: one actor for every agent)."""

    label: str
    heuristic: str = ""
    actors: dict[str, ActorFile] = field(default_factory=dict)

    def actor_for(self, agent_id: str) -> ActorFile:
        actor = self.actors.get(agent_id) or self.actors.get("*")
        if actor is None:
            raise TestbedExit(ExitCode.MODEL_INVALID, f"{self.label} has no actor for {agent_id}")
        return actor

    @property
    def model_aware(self) -> bool:
        return all(a.spec.model_aware for a in self.actors.values()) if self.actors else True

    def board_policies(self, agent_ids: list[str]) -> BoardPolicies:
        """What the boards get: the heuristic's name, or each agent's actor."""
        if self.heuristic == ORACLE:
            raise TestbedExit(
                ExitCode.USAGE,
                "the oracle searches copies of the slot's state: it runs in the twin only "
                "(--backend twin)",
            )
        if self.heuristic:
            return PolicySource.heuristic(self.heuristic)
        if set(self.actors) == {"*"}:
            return PolicySource.onnx(self.actors["*"])
        return {a: PolicySource.onnx(self.actor_for(a)) for a in agent_ids}


def policy_names() -> str:
    """The valid forms, for error messages."""
    return (
        f"a heuristic ({', '.join(HEURISTICS)}), {ORACLE} (twin only), an ONNX actor file, "
        "a folder of per-agent actors, or a training run folder, optionally as LABEL=…"
    )


def parse_policy(text: str) -> PolicyChoice:
    """A policy from the command line or a spec (the forms in the module docstring).
    An unknown name is a usage error listing the valid forms; an actor file that
    cannot be read is MODEL_INVALID."""
    label, sep, what = text.partition("=")
    if not sep:
        label, what = "", text
    what = what.strip()
    if what in HEURISTICS or what == ORACLE:
        return PolicyChoice(label or what, heuristic=what)
    path = Path(what)
    if path.is_dir():
        folder = path / "actors" if (path / "actors").is_dir() else path
        files = sorted(folder.glob("*.onnx"))
        if not files:
            raise TestbedExit(ExitCode.MODEL_INVALID, f"no actors (*.onnx) in {folder}")
        name = label or (folder.parent.name if folder.name == "actors" else folder.name)
        return PolicyChoice(name, actors={f.stem: read_actor(f) for f in files})
    if path.is_file():
        return PolicyChoice(label or path.stem, actors={"*": read_actor(path)})
    raise TestbedExit(ExitCode.USAGE, f"unknown policy {text!r}: expected {policy_names()}")
