"""The model catalog: JSON round trip, loading errors, lookups (no model files needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from testbed.config import ZooScale
from testbed.zoo.catalog import (
    Catalog,
    CatalogError,
    CatalogNotFound,
    ModelEntry,
    ModelFamily,
    ModelOrigin,
    TensorDType,
    TensorSpec,
    UnknownModel,
    file_in,
    model_name_problem,
)


def entry(model_id: str, family: ModelFamily = ModelFamily.CGAN, version: str = "1") -> ModelEntry:
    steps = 20 if family is ModelFamily.DIFFUSION else 1
    return ModelEntry(
        id=model_id,
        family=family,
        version=version,
        file=f"{model_id}.onnx",
        size_bytes=1234,
        sha256="ab" * 32,
        inputs=[
            TensorSpec("z", TensorDType.FLOAT32, ["batch", 32]),
            TensorSpec("cond", TensorDType.FLOAT32, ["batch", 4]),
        ],
        outputs=[TensorSpec("sample", TensorDType.FLOAT32, ["batch", 6, 16])],
        default_steps=steps,
        flops_per_invocation=400_000,
        trained=True,
        scale=ZooScale.TINY,
        description="a test model",
        params=200_000,
        train_timesteps=1000 if family is ModelFamily.DIFFUSION else 0,
        metrics={"loss_last": 0.5},
    )


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        ZooScale.TINY,
        [entry("diffusion-s", ModelFamily.DIFFUSION), entry("cgan-s"), entry("ae-s")],
        built_with={"torch": "2.13.0"},
    )


def test_json_round_trip_is_lossless_and_stable(catalog: Catalog):
    text = catalog.to_json()
    again = Catalog.from_json(text)
    assert again.entries == catalog.entries
    assert again.scale is ZooScale.TINY
    assert again.built_with == {"torch": "2.13.0"}
    assert again.to_json() == text
    assert again.entries[0].family is ModelFamily.DIFFUSION
    assert again.entries[0].inputs[0].shape == ["batch", 32]


def test_json_uses_plain_values(catalog: Catalog):
    data = json.loads(catalog.to_json())
    model = data["models"][1]
    assert data["format_version"] == 1 and data["scale"] == "tiny"
    assert model["family"] == "cgan" and model["origin"] == "zoo"
    assert model["outputs"] == [{"name": "sample", "dtype": "float32", "shape": ["batch", 6, 16]}]


def test_save_and_load_from_a_folder_or_the_file(catalog: Catalog, tmp_path: Path):
    written = catalog.save(tmp_path / "zoo")
    assert written == tmp_path / "zoo" / "catalog.json"
    for where in (tmp_path / "zoo", written):
        loaded = Catalog.load(where)
        assert loaded.entries == catalog.entries
        assert loaded.root == tmp_path / "zoo"
        assert loaded.path("cgan-s") == tmp_path / "zoo" / "cgan-s.onnx"
    assert catalog.get("ae-s").path(tmp_path) == tmp_path / "ae-s.onnx"
    assert not list((tmp_path / "zoo").glob(".catalog.json.*"))  # no temporary left over


def test_a_missing_catalog_says_to_build_the_zoo(tmp_path: Path):
    with pytest.raises(CatalogNotFound, match="testbed zoo build") as info:
        Catalog.load(tmp_path)
    assert isinstance(info.value, FileNotFoundError)


def test_a_broken_catalog_names_the_bad_key(catalog: Catalog, tmp_path: Path):
    data = json.loads(catalog.to_json())
    data["models"][1]["size_bytes"] = "big"
    data["models"][2]["family"] = "vae"
    (tmp_path / "catalog.json").write_text(json.dumps(data))
    with pytest.raises(CatalogError) as info:
        Catalog.load(tmp_path)
    message = str(info.value)
    assert "models[1].size_bytes" in message and "models[2].family" in message
    assert str(tmp_path) in message


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("sha256", "xyz", "sha256"),
        ("file", "/etc/passwd", "file"),
        ("file", "../outside.onnx", "file"),
        ("default_steps", 20, "default_steps"),  # a cgan takes no steps
        ("id", "../../x", "id"),  # ids and versions become file names on the edges
        ("id", "/etc/x", "id"),
        ("id", "a..b", "id"),
        ("id", "", "id"),
        ("id", "-leading-dash", "id"),
        ("id", "a" * 65, "id"),
        ("id", "sp ace", "id"),
        ("version", "1/2", "version"),
        ("version", "..", "version"),
        ("version", "", "version"),
    ],
)
def test_entries_are_checked(catalog: Catalog, key: str, value: object, problem: str):
    data = json.loads(catalog.to_json())
    data["models"][1][key] = value
    with pytest.raises(CatalogError, match=rf"models\[1\]\.{problem}"):
        Catalog.from_json(json.dumps(data))


def test_not_json_and_newer_formats_are_refused():
    with pytest.raises(CatalogError, match="not valid JSON"):
        Catalog.from_json("{nope")
    with pytest.raises(CatalogError, match="update the testbed"):
        Catalog.from_json(json.dumps({"format_version": 99, "scale": "tiny", "models": []}))


def test_get_unknown_model_is_a_key_error_listing_the_ids(catalog: Catalog):
    with pytest.raises(UnknownModel) as info:
        catalog.get("stable-diffusion")
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown model 'stable-diffusion'")
    assert "diffusion-s, cgan-s, ae-s" in str(info.value)
    with pytest.raises(KeyError):
        catalog.get("cgan-s", version="7")


def test_get_picks_the_newest_version_unless_one_is_named():
    versions = [entry("m", version=v) for v in ("2", "10", "9")]
    catalog = Catalog(ZooScale.DEMO, versions)
    assert catalog.get("m").version == "10"
    assert catalog.get("m", "9").version == "9"
    assert catalog.ids() == ["m"]


def test_ids_keep_build_order(catalog: Catalog):
    assert catalog.ids() == ["diffusion-s", "cgan-s", "ae-s"]
    assert [e.key for e in catalog.entries] == ["diffusion-s@1", "cgan-s@1", "ae-s@1"]


def test_duplicates_are_refused_and_with_entry_replaces(catalog: Catalog):
    with pytest.raises(CatalogError, match="cgan-s@1"):
        Catalog(ZooScale.TINY, [entry("cgan-s"), entry("cgan-s")])
    own = replace(entry("cgan-s"), origin=ModelOrigin.OPERATOR, size_bytes=99)
    updated = catalog.with_entry(own)
    assert updated.get("cgan-s").size_bytes == 99
    assert len(updated.entries) == 3
    assert catalog.get("cgan-s").size_bytes == 1234  # the original is unchanged


def test_sample_shape_needs_sizes_after_the_batch():
    assert TensorSpec("x", TensorDType.FLOAT32, ["batch", 4, 64]).sample_shape == (4, 64)
    with pytest.raises(ValueError, match="symbolic"):
        _ = TensorSpec("x", TensorDType.FLOAT32, ["batch", "height"]).sample_shape


def test_the_name_rule_is_one_function():
    assert model_name_problem("diffusion-s") is None
    assert model_name_problem("v1.2_b") is None
    assert model_name_problem("a" * 64) is None
    for bad in ("", "../x", "a/b", "a..b", ".hidden", "a" * 65, "ä", "a\n"):
        assert model_name_problem(bad), bad


def test_file_in_keeps_names_inside_the_folder(tmp_path: Path):
    assert file_in(tmp_path, "m-1.onnx") == tmp_path / "m-1.onnx"
    for bad in ("../m.onnx", "/etc/passwd", "a/b.onnx", "", ".", ".."):
        with pytest.raises(ValueError):
            file_in(tmp_path, bad)


@pytest.mark.parametrize(
    "text",
    [b"[1]", b'"x"', b"null", b"3", b'{"format_version": "9"}', b"[" * 100_000, b"\xff"],
)
def test_any_bytes_are_a_catalog_or_a_catalog_error(text: bytes):
    # edges parse the catalog they receive over MQTT: nothing else may escape
    with pytest.raises(CatalogError):
        Catalog.from_json(text)
