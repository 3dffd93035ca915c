"""`testbed train` as a user runs it: every algorithm on a tiny twin writes its run
folder; exported actors agree with torch; a run resumes from its checkpoint, and one
stopped by Ctrl-C or SIGTERM keeps its checkpoints and resumes; a trained actor decides
on the boards of a live bench."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml

pytest.importorskip("torch")

from coordinator.cli import main
from coordinator.policy_choice import parse_policy
from testbed.exit_codes import ExitCode
from tests.processes import default_sigint
from tests.zoo_fixtures import tiny_bench

from .test_live_bench import make_bench

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

STEPS = 12
TINY_TRAIN = {
    "hidden": 32, "batch_size": 64, "buffer_size": 1000, "steps": STEPS, "warmup_steps": 4,
    "num_envs": 4, "eval_every": 6, "checkpoint_every": 6, "eval_episodes": 2, "threads": 1,
}  # fmt: skip


@pytest.fixture
def tiny_config(tmp_path: Path, tiny_zoo: Path) -> Path:
    """The bench of test_live_bench.make_bench (3 agents, 2 edges, 3 task types) on the
    tiny zoo (as <dir>/tiny), 5-slot episodes."""
    cfg = tiny_bench(tmp_path, tiny_zoo, run={"out_dir": str(tmp_path / "runs")}, train=TINY_TRAIN)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(config: Path, *args: str) -> tuple[int, Path | None]:
    code = main(["train", "-c", str(config), *args])
    algo = args[args.index("--algo") + 1] if "--algo" in args else "mato"
    runs = sorted((config.parent / "runs").glob(f"*__{algo}__*"), key=lambda p: p.stat().st_mtime)
    return code, (runs[-1] if runs else None)


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("algo", ["mato", "nomodel", "saddpg"])
def test_every_algorithm_trains_and_writes_its_run_folder(tiny_config: Path, algo: str) -> None:
    code, run = _train(tiny_config, "--algo", algo, "--seed", "3")
    assert code == 0 and run is not None
    assert run.name.startswith(f"default__{algo}__3__")
    for name in ("config.yaml", "manifest.json", "metrics.csv", "reward_curve.png",
                 "summary.json", "checkpoints/step-6.pt", "checkpoints/step-12.pt",
                 "checkpoints/latest.pt"):  # fmt: skip
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "actors").iterdir()) == [
        "agent-0.onnx", "agent-1.onnx", "agent-2.onnx"
    ]  # fmt: skip
    rows = _metrics(run)
    assert int(rows[-1]["step"]) == STEPS
    assert [r["step"] for r in rows if r["eval_reward"]] == ["6", "12"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["algo"] == algo and summary["export_max_abs_error"] <= 1e-5
    assert set(summary["baselines_eval"]) == {"random", "greedy", "local"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert (manifest["algo"], manifest["backend"]) == (algo, "twin")


def test_exported_actors_agree_with_the_trained_torch_actors(tiny_config: Path) -> None:
    import torch

    from coordinator.actors import build_actor, read_actor

    code, run = _train(tiny_config, "--algo", "mato")
    assert code == 0 and run is not None
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    for i in range(3):
        actor_file = read_actor(run / "actors" / f"agent-{i}.onnx")
        spec = actor_file.spec
        obs = np.random.default_rng(i).uniform(0, 1, (64, spec.obs_dim)).astype(np.float32)
        actor = build_actor(spec, (TINY_TRAIN["hidden"],) * 2)
        actor.load_state_dict({k.removeprefix("actor."): v[i]
                               for k, v in state["agent"]["actor"].items()})  # fmt: skip
        with torch.no_grad():
            expected = actor(torch.from_numpy(obs)).numpy()
        session = ort.InferenceSession(actor_file.model, providers=["CPUExecutionProvider"])
        got = session.run(None, {"obs": obs})[0]
        assert np.max(np.abs(got - expected)) <= 1e-5


def test_resume_continues_from_the_latest_checkpoint(tiny_config: Path) -> None:
    code, run = _train(tiny_config, "--algo", "saddpg")
    assert code == 0 and run is not None
    # as if the run had been stopped after its first checkpoint
    checkpoints = run / "checkpoints"
    (checkpoints / "step-12.pt").unlink()
    (checkpoints / "latest.pt").unlink()
    shutil.copyfile(checkpoints / "step-6.pt", checkpoints / "latest.pt")
    shutil.rmtree(run / "actors")
    (run / "summary.json").unlink()
    assert main(["train", "--resume", str(run)]) == 0
    rows = _metrics(run)
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and steps[-1] == STEPS
    assert (checkpoints / "step-12.pt").is_file() and (run / "actors" / "agent-0.onnx").is_file()
    assert json.loads((run / "summary.json").read_text())["algo"] == "saddpg"
    assert main(["train", "--resume", str(run)]) == 0  # complete: nothing to do


def _stopped(args: list[str], folder: Path, pattern: str, stop: signal.Signals) -> tuple[int, str]:
    """`testbed ARGS` run in `folder`, sent `stop` once a file matching `pattern` (under
    `folder`) exists: its exit code and output."""
    log = folder / f"train-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coordinator.cli", *args], cwd=folder, stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)},
            preexec_fn=default_sigint,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not any(folder.glob(pattern)) and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        proc.send_signal(stop)
        code = proc.wait(60)
    return code, log.read_text()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_training_keeps_its_checkpoints_and_resumes(
    tiny_config: Path, stop: signal.Signals
) -> None:
    from coordinator.algorithms.run_writer import load_checkpoint

    folder = tiny_config.parent
    train = ["train", "-c", str(tiny_config), "--algo", "saddpg", "--steps", "1000000"]
    code, log = _stopped(train, folder, "runs/*/checkpoints/step-6.pt", stop)
    assert code == ExitCode.INTERRUPTED, log
    (run,) = (folder / "runs").iterdir()
    assert f"interrupted; resume with `testbed train --resume {run}`" in log
    assert not (run / "summary.json").exists()  # not finished, and not said to be
    first = int(load_checkpoint(run)["step"])
    assert first >= 6 and (run / "checkpoints" / f"step-{first}.pt").is_file()
    # resumed from that checkpoint, stopped again after the next one
    code, log = _stopped(["train", "--resume", str(run)], folder,
                         f"runs/*/checkpoints/step-{first + 6}.pt", stop)  # fmt: skip
    assert code == ExitCode.INTERRUPTED, log
    assert f"(resuming at step {first})" in log
    assert int(load_checkpoint(run)["step"]) >= first + 6
    steps = [int(r["step"]) for r in _metrics(run)]
    assert steps == sorted(set(steps)) and steps[0] < first < steps[-1]  # one row a step


def test_clear_errors(
    tiny_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["train", "-c", str(tiny_config), "--algo", "ppo"]) == ExitCode.USAGE
    assert "choose from mato, nomodel, saddpg" in capsys.readouterr().err
    assert main(["train", "-c", str(tiny_config), "--algo", "random"]) == ExitCode.USAGE
    assert main(["train", "-c", str(tiny_config), "--backend", "sim"]) == ExitCode.USAGE
    assert main(["train", "--resume", str(tiny_config.parent)]) == ExitCode.USAGE
    run = tiny_config.parent / "damaged"  # a run folder whose files are not what they say
    (run / "checkpoints").mkdir(parents=True)
    shutil.copyfile(tiny_config, run / "config.yaml")
    (run / "checkpoints" / "latest.pt").write_bytes(b"\x80\x02junk")
    (run / "manifest.json").write_text(json.dumps({"command": "train", "algo": "mato"}))
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == ExitCode.USAGE  # was a KeyError
    assert "names no trained algorithm and backend" in capsys.readouterr().err
    (run / "manifest.json").write_text(json.dumps({"command": "train", "algo": "mato",
                                                   "backend": "twin"}))  # fmt: skip
    assert main(["train", "--resume", str(run)]) == ExitCode.USAGE  # was torch's traceback
    assert "copy one of its step-N.pt over it" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    assert main(["train", "-c", str(tiny_config)]) == ExitCode.DEPENDENCY_MISSING
    assert "pip install" in capsys.readouterr().err
    assert not (tiny_config.parent / "runs").exists()  # no half-made run folder


def test_a_trained_actor_decides_on_the_boards_of_a_live_bench(
    tiny_config: Path, tmp_path: Path, tiny_zoo: Path
) -> None:
    code, run = _train(tiny_config, "--algo", "mato")
    assert code == 0 and run is not None
    policies = parse_policy(str(run)).board_policies(["agent-0", "agent-1", "agent-2"])
    assert isinstance(policies, dict) and set(policies) == {"agent-0", "agent-1", "agent-2"}
    (tmp_path / "live").mkdir()
    with make_bench(tmp_path / "live", tiny_zoo) as bench:  # 3 agents, 2 edges, as trained
        bench.start(policies)
        sessions = {
            a: ort.InferenceSession(p.actor.model, providers=["CPUExecutionProvider"])
            for a, p in policies.items()
            if p.actor is not None
        }
        for slot in range(2):
            result = bench.step(slot)
            assert len(result.records) == 3
            for agent_id, step in result.steps.items():
                assert step.acted and step.observation is not None and step.decision
                expected = sessions[agent_id].run(None, {"obs": step.observation[None]})[0][0]
                assert np.allclose(step.decision.raw, expected, atol=1e-5)


def test_the_same_trainer_trains_on_the_live_bench(tiny_config: Path) -> None:
    """Backend live: LiveVecEnv (E = 1) behind the same VecEnv protocol; the boards
    serve the trainer's actions and the run folder is the same."""
    code, run = _train(
        tiny_config, "--algo", "nomodel", "--backend", "live", "--steps", "4",
        "--set", "train.warmup_steps=2", "--set", "train.batch_size=8",
        "--set", "train.checkpoint_every=2", "--set", "twin.episode_slots=2",
    )  # fmt: skip
    assert code == 0 and run is not None
    rows = _metrics(run)
    assert [int(r["step"]) for r in rows] == [2, 4]  # one row per 2-slot episode
    assert all(not r["eval_reward"] for r in rows)  # no evaluation twin on the live bench
    assert all(float(r["completion"]) > 0 for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["backend"] == "live" and summary["final_eval"] is None
    assert (run / "actors" / "agent-2.onnx").is_file() and (run / "checkpoints/step-4.pt").is_file()
