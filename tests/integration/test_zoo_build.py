"""The tiny zoo built for real: ONNX files, catalog, determinism, ORT vs torch, runtime.

Real torch training, real ONNX export, real ONNX Runtime sessions; no mocks. The zoo
itself comes from the cached `tiny_zoo` fixture; one test rebuilds it from scratch.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from coordinator.zoo.build import ZOO, build_model, build_zoo, deterministic_torch  # noqa: E402
from coordinator.zoo.export import export_onnx, io_names  # noqa: E402
from coordinator.zoo.onnx_info import graph_flops  # noqa: E402
from coordinator.zoo.register import RegisterError, register_model  # noqa: E402
from testbed.config import RuntimeKind, ZooScale  # noqa: E402
from testbed.runtime import ModelRuntime  # noqa: E402
from testbed.types import FailureReason, TestbedError  # noqa: E402
from testbed.zoo.catalog import Catalog, ModelFamily, ModelOrigin, file_sha256  # noqa: E402
from testbed.zoo.workload import invocations  # noqa: E402
from tests.zoo_fixtures import TINY_ZOO_SEED, TINY_ZOO_TRAIN_STEPS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
IDS = ["diffusion-s", "cgan-s", "ae-s", "diffusion-l", "cgan-l", "ae-l"]
PAYLOAD = bytes(np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8))


@pytest.fixture(scope="module")
def catalog(tiny_zoo: Path) -> Catalog:
    return Catalog.load(tiny_zoo)


@pytest.fixture(scope="module")
def runtime() -> ModelRuntime:
    return ModelRuntime(RuntimeKind.CPU, intra_op_threads=1)


def test_the_catalog_lists_the_six_models_one_family_each_first(catalog: Catalog):
    assert catalog.ids() == IDS
    assert catalog.scale is ZooScale.TINY
    families = [e.family for e in catalog.entries]
    assert families[:3] == [ModelFamily.DIFFUSION, ModelFamily.CGAN, ModelFamily.AUTOENCODER]
    assert families[3:] == families[:3]
    for e in catalog.entries:
        assert e.default_steps == (20 if e.family is ModelFamily.DIFFUSION else 1)
        assert e.trained and e.train_steps == TINY_ZOO_TRAIN_STEPS and e.origin is ModelOrigin.ZOO
        assert all(spec.shape[0] == "batch" for spec in (*e.inputs, *e.outputs))
    assert set(catalog.built_with) == {"torch", "onnx", "numpy"}


def test_files_pass_the_checker_and_match_the_catalog(catalog: Catalog, tiny_zoo: Path):
    sizes = []
    for e in catalog.entries:
        path = e.path(tiny_zoo)
        onnx.checker.check_model(str(path), full_check=True)
        assert path.stat().st_size == e.size_bytes <= 5_000_000
        assert file_sha256(path) == e.sha256
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["id"] == e.id and meta["family"] == e.family.value
        sizes.append(e.size_bytes)
    assert len(set(sizes)) == 6 and min(sizes) >= 400_000 and sizes == sorted(sizes)


def test_flops_from_the_architecture_match_the_graph(catalog: Catalog, tiny_zoo: Path):
    for e in catalog.entries:
        flops, skipped = graph_flops(onnx.load(str(e.path(tiny_zoo))))
        assert (flops, skipped) == (e.flops_per_invocation, 0), e.id
        assert e.flops_per_invocation == pytest.approx(2 * e.params, rel=0.05)


def test_training_learned_something(catalog: Catalog):
    for e in catalog.entries:
        m = e.metrics
        if e.family is ModelFamily.CGAN:
            assert m["quality_mae"] < m["quality_mae_baseline"], e.id
        else:
            assert m["loss_last"] < 0.8 * m["loss_first"], e.id
        if e.family is ModelFamily.AUTOENCODER:
            assert m["auroc"] > 0.75 and m["score_threshold"] > 0, e.id


def test_a_second_build_is_byte_identical(tiny_zoo: Path, tmp_path: Path):
    lines: list[str] = []
    build_zoo(
        ZooScale.TINY,
        tmp_path,
        seed=TINY_ZOO_SEED,
        train_steps=TINY_ZOO_TRAIN_STEPS,
        progress=lines.append,
    )
    assert (tmp_path / "catalog.json").read_bytes() == (tiny_zoo / "catalog.json").read_bytes()
    for model_id in IDS:
        name = f"{model_id}.onnx"
        assert (tmp_path / name).read_bytes() == (tiny_zoo / name).read_bytes(), model_id
    assert len(lines) == 8 and all(model_id in "".join(lines) for model_id in IDS)


@pytest.mark.parametrize("model_id", ["diffusion-s", "cgan-s", "ae-s"])
def test_onnx_runtime_computes_what_torch_computes(model_id: str):
    row = next(r for r in ZOO if r.id == model_id)
    with deterministic_torch():
        built = build_model(row, ZooScale.TINY, seed=3, train_steps=20)
        blob = export_onnx(built.module, row.family, {"id": model_id})
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    names, outputs = io_names(row.family)
    batch = 5  # not the tracing batch: the batch dimension really is dynamic
    feeds = {}
    for spec in session.get_inputs():
        shape = [batch, *spec.shape[1:]]
        feeds[spec.name] = rng.uniform(-1, 1, shape).astype(np.float32)
    got = session.run(list(outputs), feeds)
    with torch.no_grad():
        want = built.module(*(torch.from_numpy(feeds[n]) for n in names))
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)


def test_diffusion_runs_steps_per_batch_and_pays_for_them(
    catalog: Catalog, tiny_zoo: Path, runtime: ModelRuntime
):
    entry = catalog.get("diffusion-l")
    with runtime.load(entry.path(tiny_zoo), entry) as model:
        model.warmup()
        result = model.run(units=40, steps=None, data=PAYLOAD, max_batch=16)
        assert result.units_done == 40
        assert result.invocations == 3 * 20 == invocations(entry, 40, None, 16)
        assert model.run(units=40, steps=7, data=PAYLOAD, max_batch=16).invocations == 21

        def best_time(steps: int) -> float:
            return min(model.run(64, steps, PAYLOAD, 32).compute_s for _ in range(5))

        ratio = best_time(20) / best_time(10)
    assert 1.5 < ratio < 2.7, ratio


@pytest.mark.parametrize("model_id", ["cgan-s", "ae-s"])
def test_one_invocation_per_batch_for_one_shot_models(
    catalog: Catalog, tiny_zoo: Path, runtime: ModelRuntime, model_id: str
):
    entry = catalog.get(model_id)
    with runtime.load(entry.path(tiny_zoo), entry) as model:
        result = model.run(units=70, steps=50, data=PAYLOAD, max_batch=32)
        assert (result.units_done, result.invocations) == (70, 3)
        empty = model.run(units=0, steps=None, data=PAYLOAD)
        assert (empty.units_done, empty.invocations) == (0, 0)


@pytest.mark.parametrize("model_id", ["diffusion-s", "cgan-s", "ae-s"])
def test_outputs_depend_on_the_data_and_only_on_it(
    catalog: Catalog, tiny_zoo: Path, runtime: ModelRuntime, model_id: str
):
    entry = catalog.get(model_id)
    other = bytes(b ^ 0x5A for b in PAYLOAD)
    with runtime.load(entry.path(tiny_zoo), entry) as model:
        a = model.run(8, 4, PAYLOAD, 4).output_sha256
        assert len(a) == 32
        assert model.run(8, 4, PAYLOAD, 4).output_sha256 == a
        assert model.run(8, 4, other, 4).output_sha256 != a
        assert model.run(8, 4, b"", 4).output_sha256 == model.run(8, 4, b"", 4).output_sha256


def test_one_model_serves_parallel_runs(catalog: Catalog, tiny_zoo: Path, runtime: ModelRuntime):
    entry = catalog.get("diffusion-s")
    payloads = [bytes([i]) * 3000 for i in range(8)]
    with runtime.load(entry.path(tiny_zoo), entry) as model:
        alone = [model.run(6, 5, p, 4).output_sha256 for p in payloads]
        with ThreadPoolExecutor(max_workers=4) as pool:
            together = list(pool.map(lambda p: model.run(6, 5, p, 4).output_sha256, payloads))
    assert together == alone and len(set(alone)) == len(payloads)


def test_a_corrupt_or_missing_file_fails_to_load(
    catalog: Catalog, tiny_zoo: Path, tmp_path: Path, runtime: ModelRuntime
):
    entry = catalog.get("cgan-s")
    good = entry.path(tiny_zoo).read_bytes()
    cases = {
        "truncated.onnx": good[: len(good) // 2],
        "garbage.onnx": b"\x08\x07not a model" * 100,
        "empty.onnx": b"",
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(TestbedError) as info:
            runtime.load(tmp_path / name, entry)
        assert info.value.reason is FailureReason.LOAD_FAILED, name
        assert name in info.value.detail
    with pytest.raises(TestbedError) as info:
        runtime.load(tmp_path / "absent.onnx", entry)
    assert info.value.reason is FailureReason.LOAD_FAILED
    with pytest.raises(TestbedError, match="inputs") as info:  # a file of another model
        runtime.load(catalog.path("ae-s"), entry)
    assert info.value.reason is FailureReason.LOAD_FAILED


def test_bad_requests_and_closed_models_are_refused(
    catalog: Catalog, tiny_zoo: Path, runtime: ModelRuntime
):
    entry = catalog.get("diffusion-s")
    model = runtime.load(entry.path(tiny_zoo), entry)
    assert model.provider == runtime.provider == "CPUExecutionProvider"
    for units, steps, batch in ((-1, None, 4), (1, 0, 4), (1, None, 0)):
        with pytest.raises(TestbedError) as info:
            model.run(units, steps, PAYLOAD, batch)
        assert info.value.reason is FailureReason.INVALID_REQUEST
    model.close()
    with pytest.raises(TestbedError) as info:
        model.run(1, None, PAYLOAD)
    assert info.value.reason is FailureReason.INTERNAL


def test_an_operator_model_is_registered_and_runs_generically(
    catalog: Catalog, tiny_zoo: Path, tmp_path: Path, runtime: ModelRuntime
):
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, zoo)
    source = tmp_path / "my-denoiser.onnx"
    shutil.copyfile(catalog.path("diffusion-s"), source)
    entry = register_model(
        zoo, source, "my-denoiser", ModelFamily.DIFFUSION, version="3", default_steps=8
    )
    loaded = Catalog.load(zoo)
    assert loaded.ids() == [*IDS, "my-denoiser"]
    assert loaded.get("my-denoiser") == entry
    assert entry.origin is ModelOrigin.OPERATOR and entry.file == "my-denoiser-v3.onnx"
    assert entry.flops_per_invocation == catalog.get("diffusion-s").flops_per_invocation
    assert entry.sha256 == catalog.get("diffusion-s").sha256
    with runtime.load(entry.path(zoo), entry) as model:
        result = model.run(units=5, steps=None, data=PAYLOAD, max_batch=2)
    assert result.invocations == math.ceil(5 / 2) * 8


class _TinyUnet(torch.nn.Module):
    """A stand-in for an operator's image denoiser: symbolic height and width."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.conv(sample) * timestep.float().view(-1, 1, 1, 1)


def test_an_operator_model_with_symbolic_sizes_needs_them(tmp_path: Path, runtime: ModelRuntime):
    source = tmp_path / "unet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _TinyUnet(),
            (torch.zeros(2, 4, 16, 16), torch.zeros(2, dtype=torch.int64)),
            str(source),
            dynamo=False,
            input_names=["sample", "timestep"],
            output_names=["out"],
            dynamic_axes={
                "sample": {0: "b", 2: "h", 3: "w"},
                "timestep": {0: "b"},
                "out": {0: "b"},
            },
        )
    zoo = tmp_path / "zoo"
    with pytest.raises(RegisterError, match="--input-shape sample="):
        register_model(zoo, source, "unet", ModelFamily.DIFFUSION, default_steps=10)
    entry = register_model(
        zoo,
        source,
        "unet",
        ModelFamily.DIFFUSION,
        default_steps=10,
        input_shapes={"sample": [4, 24, 24]},
    )
    assert entry.flops_per_invocation == 2 * 8 * (4 * 3 * 3) * 24 * 24  # Conv2d, per sample
    assert entry.inputs[0].shape == ["batch", 4, 24, 24] and entry.params == 8 * 4 * 9 + 8
    with runtime.load(entry.path(zoo), entry) as model:
        a = model.run(units=3, steps=None, data=PAYLOAD, max_batch=2)
        b = model.run(units=3, steps=None, data=PAYLOAD[1:], max_batch=2)
    assert a.invocations == 2 * 10 and a.output_sha256 != b.output_sha256


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_cli_lists_a_zoo_and_explains_a_missing_or_unwritable_one(tiny_zoo: Path, tmp_path: Path):
    listed = run_cli("zoo", "list", "--dir", str(tiny_zoo), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for model_id in IDS:
        assert model_id in listed.stdout
    missing = run_cli("zoo", "list", "--dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 4 and "testbed zoo build" in missing.stderr
    (tmp_path / "file").write_text("")
    blocked = run_cli(
        "zoo", "build", "--scale", "tiny", "--out", str(tmp_path / "file" / "z"), cwd=tmp_path
    )
    assert blocked.returncode == 1
    assert "cannot write the zoo" in blocked.stderr and "Traceback" not in blocked.stderr
