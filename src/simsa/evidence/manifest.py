"""The training-evidence manifest (`evidence.toml`): what a team submits to show a model was trained from scratch.

Every path is relative to the package directory and must stay inside it; every file carries the sha256 it had when
the team wrote the manifest (a directory: the tree digest of `simsa.evidence.commitments`). See docs/evidence.md.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simsa.errors import InputError

SCHEMA = "simsa.evidence/1"
MANIFEST = "evidence.toml"
MAX_MANIFEST_BYTES = 1 << 20
MAX_CHECKPOINTS = 1000
SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
# Tensor kinds an initialisation is declared for (from the lineage role map of the step-0 checkpoint).
INIT_KINDS = ("embedding", "attention", "mlp", "experts", "router", "output_head", "norm", "bias", "other")
Distribution = Literal["normal", "truncated_normal", "uniform", "zeros", "ones"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(_Strict):
    """A file or directory of the package, with its sha256 (for a directory, the tree digest)."""

    path: str = Field(min_length=1, max_length=1024)
    sha256: SHA256

    @field_validator("path")
    @classmethod
    def _inside(cls, v: str) -> str:
        p = PurePosixPath(v.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or v.startswith("~"):
            raise ValueError(f"path {v!r} must be relative to the package and stay inside it")
        return p.as_posix()


class Checkpoint(FileRef):
    step: int = Field(ge=0, le=10**12)
    early: bool | None = None  # tested for independence from parents; default: step 0 and the first after it


class Log(FileRef):
    format: Literal["csv", "jsonl", "wandb", "tensorboard"]


class Init(_Strict):
    """How one kind of tensor was initialised: normal(mean, std), truncated normal (cut at `low`/`high`, default
    mean ± 2 std, as `torch.nn.init.trunc_normal_` in std units), uniform(low, high), or constant zeros / ones."""

    distribution: Distribution
    mean: float = 0.0
    std: float | None = Field(default=None, gt=0, le=100)
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _parameters(self) -> Init:
        if not all(math.isfinite(x) for x in (self.mean, self.std or 0.0, self.low or 0.0, self.high or 0.0)):
            raise ValueError("initialisation parameters must be finite numbers")
        if self.distribution in ("normal", "truncated_normal") and self.std is None:
            raise ValueError(f"a {self.distribution} initialisation needs std")
        if self.distribution == "uniform" and (self.low is None or self.high is None or self.low >= self.high):
            raise ValueError("a uniform initialisation needs low < high")
        return self

    def bounds(self) -> tuple[float, float] | None:
        if self.distribution == "truncated_normal":
            std = float(self.std or 0.0)
            return (self.mean - 2 * std if self.low is None else self.low,
                    self.mean + 2 * std if self.high is None else self.high)
        if self.distribution == "uniform":
            return float(self.low or 0.0), float(self.high or 0.0)
        return None


class Training(_Strict):
    global_batch_size: int = Field(gt=0, le=10**9, description="sequences per optimizer step")
    sequence_length: int = Field(gt=0, le=10**8)
    tokens: int | None = Field(default=None, ge=0, le=10**16, description="tokens seen by the last checkpoint")
    data_manifest_sha256: SHA256


class Manifest(_Strict):
    schema_: Literal["simsa.evidence/1"] = Field(alias="schema")
    model: str = Field(min_length=1, max_length=200)
    team: str | None = Field(default=None, max_length=64)
    tokenizer: FileRef
    data_manifest: FileRef | None = None
    log: Log
    training: Training
    checkpoints: list[Checkpoint] = Field(min_length=1, max_length=MAX_CHECKPOINTS)
    init: dict[Literal["embedding", "attention", "mlp", "experts", "router", "output_head", "norm", "bias", "other"],
               Init] = Field(min_length=1)

    @model_validator(mode="after")
    def _chain(self) -> Manifest:
        steps = [c.step for c in self.checkpoints]
        if steps[0] != 0:
            raise ValueError("the first checkpoint must be step 0 (the initial weights)")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"checkpoint steps must increase: {steps[:20]}")
        if self.data_manifest is not None and self.data_manifest.sha256 != self.training.data_manifest_sha256:
            raise ValueError("data_manifest.sha256 and training.data_manifest_sha256 differ")
        return self

    def early(self) -> list[Checkpoint]:
        """The checkpoints tested for independence: those marked early, else step 0 and the first after it."""
        marked = [c for c in self.checkpoints if c.early]
        return marked or self.checkpoints[:2]

    def files(self) -> list[tuple[str, FileRef]]:
        """Every file the manifest names, with what it is."""
        out: list[tuple[str, FileRef]] = [("tokenizer", self.tokenizer), ("log", self.log)]
        if self.data_manifest is not None:
            out.append(("data manifest", self.data_manifest))
        out += [(f"checkpoint step {c.step}", c) for c in self.checkpoints]
        return out


def _error_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(x) for x in err["loc"]) or "manifest"
        parts.append(f"{where}: {err['msg']}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def load_manifest(root: Path) -> Manifest:
    """`root/evidence.toml`, validated; one clear error naming what is wrong."""
    path = Path(root) / MANIFEST
    if not Path(root).is_dir():
        raise InputError(f"{root}: not a directory (an evidence package is a directory holding {MANIFEST})")
    if not path.is_file():
        raise InputError(f"{root}: no {MANIFEST}; see docs/evidence.md for the manifest format")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InputError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes; a manifest lists files, it holds none")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {_error_text(exc)}") from None


def resolve(root: Path, ref: FileRef) -> Path:
    """The file's path inside the package; refused when a link leads outside it."""
    base = Path(root).resolve()
    target = (base / ref.path).resolve()
    if target != base and base not in target.parents:
        raise InputError(f"{ref.path}: leads outside the evidence package (a link?); refused")
    return target


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes


def manifest_text(root: Path, *, model: str, tokenizer: str, log: str, log_format: str,
                  checkpoints: Sequence[tuple[int, str]], global_batch_size: int, sequence_length: int,
                  init: Mapping[str, Init], data_manifest: str | None = None, data_manifest_sha256: str | None = None,
                  tokens: int | None = None, team: str | None = None) -> str:
    """An `evidence.toml` for the files under ``root`` with the sha256 each has now, validated before it is returned.

    What a team runs once its files are in place; ``data_manifest_sha256`` is needed only without ``data_manifest``.
    """
    from simsa.evidence.commitments import Spec, digest

    def sha(rel: str) -> str:
        return digest(Spec("file", "package", Path(root) / rel)).sha256

    def ref(table: str, rel: str, extra: str = "") -> str:
        return f"\n[{table}]\npath = {_toml_string(rel)}\n{extra}sha256 = {_toml_string(sha(rel))}\n"

    data_sha = sha(data_manifest) if data_manifest is not None else data_manifest_sha256
    if data_sha is None:
        raise InputError("give the data manifest's file or its sha256")
    lines = [f"schema = {_toml_string(SCHEMA)}", f"model = {_toml_string(model)}"]
    if team is not None:
        lines.append(f"team = {_toml_string(team)}")
    text = "\n".join(lines) + "\n" + ref("tokenizer", tokenizer)
    if data_manifest is not None:
        text += ref("data_manifest", data_manifest)
    text += ref("log", log, f"format = {_toml_string(log_format)}\n")
    text += (f"\n[training]\nglobal_batch_size = {int(global_batch_size)}\nsequence_length = {int(sequence_length)}\n"
             + (f"tokens = {int(tokens)}\n" if tokens is not None else "")
             + f"data_manifest_sha256 = {_toml_string(data_sha)}\n")
    for kind, how in init.items():
        text += f"\n[init.{kind}]\ndistribution = {_toml_string(how.distribution)}\n" + "".join(
            f"{k} = {v!r}\n" for k, v in (("mean", how.mean), ("std", how.std), ("low", how.low), ("high", how.high))
            if v is not None and not (k == "mean" and v == 0.0))
    for step, rel in checkpoints:
        text += (f"\n[[checkpoints]]\nstep = {int(step)}\npath = {_toml_string(rel)}\n"
                 f"sha256 = {_toml_string(sha(rel))}\n")
    try:
        Manifest.model_validate(tomllib.loads(text))
    except (ValidationError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"the manifest would not be valid: {exc}") from None
    return text
