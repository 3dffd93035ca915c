"""The model catalog: what models a zoo folder holds and how to call them (no torch).

`catalog.json` sits in the zoo folder beside the ONNX files it lists. The coordinator
writes it (`testbed zoo build`, `testbed zoo register`), the cloud node publishes it
over MQTT as JSON (`to_json`/`from_json`), edges and agents read it to find a model's
file, checksum, input signature and cost. The format is in docs/zoo.md.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from testbed.config import ZooScale
from testbed.payloads import unstamped
from testbed.schema import SchemaError, dump_dataclass, load_dataclass, meta

CATALOG_NAME = "catalog.json"
FORMAT_VERSION = 1
BATCH_DIM = "batch"
"""The name of the symbolic first dimension of every zoo input and output."""


class ModelFamily(enum.StrEnum):
    """The generative model families of the IIoT task types (docs/papers.md §A)."""

    DIFFUSION = "diffusion"
    """Denoiser of a diffusion model; a sample costs `steps` forward passes."""
    CGAN = "cgan"
    """Conditional GAN generator; one forward pass per sample."""
    AUTOENCODER = "autoencoder"
    """Autoencoder anomaly scorer; one forward pass per sample."""
    EVALUATOR = "evaluator"
    """Quality evaluator (docs/quality.md): scores samples on the coordinator, is not
    a task's model; one forward pass per sample."""


class ModelOrigin(enum.StrEnum):
    """Who made a model, which decides how the runtime drives it."""

    ZOO = "zoo"
    """Built by `testbed zoo build`: the runtime runs the family's real sampler."""
    OPERATOR = "operator"
    """Registered by an operator: the runtime fills every input from the task's data."""


class TensorDType(enum.StrEnum):
    """Element types of model inputs and outputs, named as numpy names them."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    INT64 = "int64"
    INT32 = "int32"
    UINT8 = "uint8"
    BOOL = "bool"


MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
"""What a model id or version may be: it becomes part of file names on the edges
(`<id>-<version>.onnx` in the cache) and arrives from other processes, so it is a plain
name: no path separator, no `..`, nothing a shell or a log line would misread."""
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def model_name_problem(value: str) -> str | None:
    """None if `value` is a valid model id or version, else what is wrong with it."""
    if not isinstance(value, str) or _MODEL_NAME.fullmatch(value) is None or ".." in value:
        return f"expected {MODEL_NAME_PATTERN} without '..'"
    return None


def file_in(folder: Path, name: str) -> Path:
    """`folder / name` for a plain file name `name`; `ValueError` if the name is not
    one, or if the path it makes (links resolved) would lie outside `folder`."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"{name!r} is not a plain file name")
    path = folder / name
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"{name!r} would lie outside {folder}")
    return path


class CatalogError(ValueError):
    """A catalog file that cannot be read or does not follow the format."""


class CatalogNotFound(FileNotFoundError):
    """No catalog where one was expected; the message says how to build one."""


class UnknownModel(KeyError):
    """A model id (and version) that the catalog does not list."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model."""

    name: str = field(metadata=meta("Tensor name in the ONNX graph."))
    dtype: TensorDType = field(metadata=meta("Element type."))
    shape: list[int | str] = field(
        metadata=meta("Dimensions; a string is symbolic (the batch dimension comes first).")
    )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: every dimension after the batch dimension.

        Raises `ValueError` if one of them is symbolic (the runtime needs sizes).
        """
        dims = self.shape[1:]
        if not all(isinstance(d, int) for d in dims):
            raise ValueError(f"input {self.name!r} has a symbolic non-batch dimension: {dims}")
        return tuple(int(d) for d in dims)


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalog: its file, checksum, signature and cost."""

    id: str = field(metadata=meta("Model id, e.g. 'diffusion-s' (task types refer to it)."))
    family: ModelFamily = field(metadata=meta("Generative model family."))
    version: str = field(metadata=meta("Version string; a newer build bumps it."))
    file: str = field(metadata=meta("ONNX file, relative to the catalog's folder (POSIX)."))
    size_bytes: int = field(metadata=meta("Size of the file.", ge=0))
    sha256: str = field(metadata=meta("SHA-256 of the file, lower-case hex."))
    inputs: list[TensorSpec] = field(metadata=meta("Input signature."))
    outputs: list[TensorSpec] = field(metadata=meta("Output signature."))
    default_steps: int = field(
        metadata=meta("Forward passes per sample by default (diffusion steps; 1 otherwise).", ge=1)
    )
    flops_per_invocation: int = field(
        metadata=meta("FLOPs of one forward pass for ONE sample (2 per multiply-add).", ge=1)
    )
    trained: bool = field(metadata=meta("Whether the weights were trained (else random init)."))
    scale: ZooScale = field(metadata=meta("Zoo scale the model was built for."))
    origin: ModelOrigin = field(default=ModelOrigin.ZOO, metadata=meta("Who made the model."))
    description: str = field(default="", metadata=meta("What the model does."))
    params: int = field(default=0, metadata=meta("Number of weights (0: unknown).", ge=0))
    train_timesteps: int = field(
        default=0,
        metadata=meta("Diffusion: timesteps T of the cosine noise schedule (0: none).", ge=0),
    )
    seed: int = field(default=0, metadata=meta("Seed the zoo built the model with.", ge=0))
    train_steps: int = field(default=0, metadata=meta("Optimiser steps of training.", ge=0))
    metrics: dict[str, float] = field(
        default_factory=dict,
        # a diverged training's NaN loss is a figure worth keeping, not a broken catalog
        metadata=meta("Training/evaluation figures, e.g. final loss, AUROC.", finite=False),
    )

    def check(self) -> list[tuple[str, str]]:
        problems = [
            (key, problem)
            for key, value in (("id", self.id), ("version", self.version))
            if (problem := model_name_problem(value))
        ]
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            problems.append(("sha256", "expected 64 lower-case hex digits"))
        if not self.file or Path(self.file).is_absolute() or ".." in Path(self.file).parts:
            problems.append(("file", f"expected a relative path inside the zoo, got {self.file!r}"))
        if self.family is not ModelFamily.DIFFUSION and self.default_steps != 1:
            problems.append(("default_steps", "expected 1 for a model that is not diffusion"))
        return problems

    @property
    def key(self) -> str:
        """`id@version`, unique in a catalog."""
        return f"{self.id}@{self.version}"

    @property
    def size_mb(self) -> float:
        """File size in MB (10^6 bytes)."""
        return self.size_bytes / 1e6

    def path(self, root: str | os.PathLike[str]) -> Path:
        """The model file under the zoo folder `root`."""
        return Path(root) / self.file

    def input(self, name: str) -> TensorSpec:
        """The input named `name`; `KeyError` if the model has none."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"model {self.id!r} has no input {name!r}")


@dataclass(frozen=True)
class _CatalogDoc:
    """The JSON document (the serialised form of `Catalog`)."""

    format_version: int = field(metadata=meta("Catalog format version.", ge=1))
    scale: ZooScale = field(metadata=meta("Scale of the zoo."))
    models: list[ModelEntry] = field(metadata=meta("The models."))
    built_with: dict[str, str] = field(
        default_factory=dict, metadata=meta("Package versions that built the zoo.")
    )


class Catalog:
    """The models of one zoo folder, in build order ("models 3→6" take the first K)."""

    def __init__(
        self,
        scale: ZooScale,
        entries: Iterable[ModelEntry],
        built_with: dict[str, str] | None = None,
        root: Path | None = None,
    ) -> None:
        self.scale = scale
        self._entries = tuple(entries)
        self.built_with = dict(built_with or {})
        self.root = root
        """Folder the catalog was loaded from (model files are relative to it)."""
        keys = [e.key for e in self._entries]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise CatalogError(f"duplicate model id@version in catalog: {', '.join(duplicates)}")

    @property
    def entries(self) -> tuple[ModelEntry, ...]:
        return self._entries

    def ids(self) -> list[str]:
        """Model ids in catalog order, each once."""
        return list(dict.fromkeys(e.id for e in self._entries))

    def get(self, model_id: str, version: str = "") -> ModelEntry:
        """The entry of `model_id`; `version` "" means the newest version listed.

        Raises `UnknownModel` (a `KeyError`) naming the ids the catalog has.
        """
        matches = [e for e in self._entries if e.id == model_id]
        if version:
            matches = [e for e in matches if e.version == version]
        if not matches:
            what = f"{model_id!r}" + (f" version {version!r}" if version else "")
            raise UnknownModel(f"unknown model {what}; the catalog has: {', '.join(self.ids())}")
        return max(matches, key=lambda e: _version_key(e.version))

    def path(self, model_id: str, version: str = "") -> Path:
        """The file of a model; needs a catalog loaded from (or saved to) a folder."""
        if self.root is None:
            raise CatalogError("this catalog was not loaded from a folder")
        return self.get(model_id, version).path(self.root)

    def with_entry(self, entry: ModelEntry) -> Catalog:
        """A copy with `entry` added, replacing the entry of the same id and version."""
        kept = [e for e in self._entries if e.key != entry.key]
        return Catalog(self.scale, [*kept, entry], self.built_with, self.root)

    def to_json(self) -> str:
        """The catalog as JSON text (stable: the same catalog gives the same bytes)."""
        doc = _CatalogDoc(FORMAT_VERSION, self.scale, list(self._entries), self.built_with)
        return json.dumps(dump_dataclass(doc), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, root: Path | None = None) -> Catalog:
        """Parse `to_json`'s output; `CatalogError` names every bad key path."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise CatalogError(f"catalog is not valid JSON: {exc}") from None
        if isinstance(data, dict):  # as published on MQTT (catalog/v1, testbed/payloads.py)
            data = unstamped(data)
        version = data.get("format_version") if isinstance(data, dict) else None
        if isinstance(version, int | float) and version > FORMAT_VERSION:
            raise CatalogError(
                f"catalog format {data['format_version']} is newer than this testbed "
                f"reads ({FORMAT_VERSION}); update the testbed"
            )
        try:
            doc = load_dataclass(_CatalogDoc, data)
        except SchemaError as exc:
            lines = "\n".join(f"  {p}: {m}" for p, m in exc.problems)
            raise CatalogError(f"invalid catalog:\n{lines}") from None
        return cls(doc.scale, doc.models, doc.built_with, root)

    @classmethod
    def load(cls, path_or_dir: str | os.PathLike[str]) -> Catalog:
        """Read `catalog.json` from a zoo folder (or the file itself).

        Raises `CatalogNotFound` (a `FileNotFoundError`) that says to build the zoo, or
        `CatalogError` for a file that is not a valid catalog.
        """
        path = Path(path_or_dir)
        if path.is_dir() or path.suffix != ".json":
            path = path / CATALOG_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CatalogNotFound(
                f"no model catalog at {path}: run `testbed zoo build` (see docs/zoo.md)"
            ) from None
        except OSError as exc:
            raise CatalogError(f"cannot read {path}: {exc.strerror}") from None
        try:
            return cls.from_json(text, root=path.parent)
        except CatalogError as exc:
            raise CatalogError(f"{path}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the catalog atomically into a folder (or to a `.json` path); returns the file."""
        target = Path(path)
        if target.is_dir() or target.suffix != ".json":
            target = target / CATALOG_NAME
        write_atomic(target, self.to_json().encode("utf-8"))
        self.root = target.parent
        return target


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order versions naturally: "2" < "10", numbers before words."""
    parts = re.findall(r"\d+|[^\d.]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def file_sha256(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file as lower-case hex, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename (no torn files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; other users (nodes) read the zoo
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
