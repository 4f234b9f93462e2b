"""A model checkpoint on disk: one safetensors file, or a Hugging Face style directory of them.

Opening reads headers only (cheap even for a 600 GB checkpoint); tensors are decoded on demand, FP8 weights are
dequantised with their scale companions, and digests stream so memory stays bounded. Pickled PyTorch checkpoints are
refused outright: unpickling a file from an untrusted source can run arbitrary code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, Self

import numpy as np

from simsa.errors import CheckpointError
from simsa.lineage.formats.dtypes import FLOAT_DTYPES, INTEGER_DTYPES, bf16_bits
from simsa.lineage.formats.gguf import GGUFCheckpoint, is_gguf
from simsa.lineage.formats.reader import NO_IO, IOStats
from simsa.lineage.formats.safetensors import (
    DEFAULT_MAX_HEADER_BYTES,
    SafetensorsFile,
    TensorInfo,
    normalise_index,
    quote,
    row_chunks,
)

if TYPE_CHECKING:
    from simsa.lineage.model.tokenizer import Vocabulary

TOKENIZER_FILE_NAMES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "special_tokens_map.json",
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
FP8_WEIGHT_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"})
# Multiplied into `<base>.weight` on read (DeepSeek-V3 calls it scale_inv, compressed-tensors calls it scale; both
# store the factor that dequantises).
SCALE_SUFFIXES = (".weight_scale_inv", ".weight_scale")
# Hidden from names(): scale tensors that belong to an FP8 weight (input_scale is the activation scale).
COMPANION_SUFFIXES = (*SCALE_SUFFIXES, ".input_scale")
INDEX_NAME = "model.safetensors.index.json"
PRECISIONS = ("exact", "bf16")


def pickle_refusal(where: str, names: Sequence[str]) -> CheckpointError:
    """The one message for pickled weights: why they are refused and how to get a safetensors copy."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return CheckpointError(
        f"{where}: holds only pickled PyTorch weights ({shown}). simsa refuses pickled checkpoints because unpickling "
        "can run arbitrary code. Use the safetensors version the model's publisher provides, or convert in an "
        "isolated environment you trust: load the state dict there (torch.load) and save it with "
        "safetensors.torch.save_file(state_dict, 'model.safetensors')."
    )


def _is_pickle_name(name: str) -> bool:
    return name.endswith(PICKLE_SUFFIXES) or (name.startswith("pytorch_model") and ".bin" in name)


def _looks_pickled(path: Path) -> bool:
    """Sniff a file that is not named .safetensors: a torch zip archive or a raw pickle (protocol 2-5)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _load_json(path: Path, what: str) -> Any:
    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: {what} is not valid UTF-8") from None
    except RecursionError:
        raise CheckpointError(f"{path}: {what} is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise CheckpointError(f"{path}: {what} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class _ScalePlan:
    """How a scale tensor maps onto its FP8 weight: one factor per block of `blocks` elements (per axis)."""

    name: str
    shape: tuple[int, ...]  # the scale's shape, normalised to the weight's rank; () for one factor per tensor
    blocks: tuple[int, ...]


DEFAULT_BLOCK = 128  # DeepSeek-V3, Qwen FP8 and compressed-tensors block quantisation all use 128 x 128


def _block_size(w: int, s: int, hint: int | None) -> int | None:
    """Elements per scale block along one axis, or None when `s` blocks cannot tile `w` elements.

    Edge blocks may be partial, so the scale shape alone is ambiguous (300 rows in 3 blocks could be 128 or 100 per
    block). Prefer the checkpoint's declared block size, then the conventional 128, then an even split.
    """
    if s == 1:
        return max(w, 1)
    candidates = [c for c in (hint, DEFAULT_BLOCK, -(-w // s)) if c]
    return next((c for c in candidates if -(-w // c) == s), None)


def _plan_scale(label: str, weight: TensorInfo, scale: TensorInfo, block_hint: Sequence[int] | None) -> _ScalePlan:
    def fail(message: str) -> NoReturn:
        raise CheckpointError(f"{label}: tensor {quote(scale.name)}: {message}")

    if scale.dtype not in FLOAT_DTYPES:
        fail(f"scale must have a float dtype, got {scale.dtype}")
    wshape, sshape = weight.shape, scale.shape
    if scale.numel == 1:
        return _ScalePlan(scale.name, (), ())
    if len(sshape) < len(wshape) and sshape == wshape[: len(sshape)]:
        sshape = sshape + (1,) * (len(wshape) - len(sshape))  # per output channel: [rows] -> [rows, 1]
    if len(sshape) != len(wshape):
        fail(f"shape {list(scale.shape)} does not fit weight {quote(weight.name)} of shape {list(wshape)}")
    # The declared block size (config quantization_config.weight_block_size) applies to the last axes.
    hints: list[int | None] = [None] * len(wshape)
    if block_hint:
        for k, b in enumerate(reversed(list(block_hint)[-len(wshape):])):
            hints[len(wshape) - 1 - k] = b
    blocks = []
    for axis, (w, s) in enumerate(zip(wshape, sshape, strict=True)):
        block = _block_size(w, s, hints[axis]) if s > 0 else None
        if block is None:
            fail(
                f"shape {list(scale.shape)} does not tile weight {quote(weight.name)} of shape {list(wshape)} "
                f"into blocks (axis {axis}: {w} elements cannot form {s} blocks)"
            )
        blocks.append(block)
    return _ScalePlan(scale.name, tuple(sshape), tuple(blocks))


def _declared_block_size(config: dict[str, Any]) -> tuple[int, ...] | None:
    """``quantization_config.weight_block_size`` from config.json (DeepSeek-V3 style), if well formed."""
    quant = config.get("quantization_config")
    value = quant.get("weight_block_size") if isinstance(quant, dict) else None
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                 for v in value):
        return tuple(value)
    return None


def _scale_by_blocks(grid: np.ndarray, scale: np.ndarray, blocks: tuple[int, ...]) -> bool:
    """``grid[i, j] *= scale[i // b0, j // b1]`` in place by broadcasting, when the blocks tile the grid exactly.

    The same products as multiplying by the expanded factors, without building them (gathering the factors was half
    of an FP8 expert's dequantisation). Returns False, touching nothing, when the blocks do not tile the grid.
    """
    if len(blocks) != 2 or grid.ndim != 2:
        return False
    (b0, b1), (rows, cols) = blocks, grid.shape
    if rows % b0 or cols % b1 or scale.shape != (rows // b0, cols // b1):
        return False
    grid.reshape(rows // b0, b0, cols // b1, b1)[...] *= scale[:, None, :, None]
    return True


class Checkpoint:
    """Tensors of a checkpoint by name, whatever the file layout; see `Checkpoint.open`. A `TensorReader`."""

    def __init__(
        self,
        path: Path,
        files: dict[Path, SafetensorsFile],
        where: dict[str, SafetensorsFile],
        *,
        config: dict[str, Any] | None = None,
        tokenizer_files: dict[str, Path] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.path = path
        self._files = files
        self._where = where
        self.files: list[Path] = sorted(files)
        self.config: dict[str, Any] = config or {}
        self.tokenizer_files: dict[str, Path] = tokenizer_files or {}
        self.notes: list[str] = notes or []
        self._scales: dict[str, _ScalePlan] = {}
        companions: set[str] = set()
        block_hint = _declared_block_size(self.config)
        # Only FP8 weights can have scales: ask each file for those (a column scan) rather than look at every tensor,
        # which costs seconds for a header of 600k tensors.
        fp8 = [name for file in dict.fromkeys(where.values()) for name in file.names_of_dtypes(FP8_WEIGHT_DTYPES)
               if name.endswith(".weight") and where.get(name) is file]
        for name in fp8:
            info = self._info(name)
            base = name[: -len(".weight")]
            found = [base + s for s in SCALE_SUFFIXES if base + s in where]
            if len(found) > 1:
                raise CheckpointError(f"{self.path}: tensor {quote(name)} has two scales: {', '.join(found)}")
            if found:
                self._scales[name] = _plan_scale(self._label(found[0]), info, self._info(found[0]), block_hint)
            companions.update(base + s for s in COMPANION_SUFFIXES if base + s in where)
        self._names = sorted(n for n in where if n not in companions)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    ) -> Checkpoint | GGUFCheckpoint:
        """Open a `.safetensors` file or a directory (Hugging Face layout, top level only). Reads headers only.

        A GGUF file (or a directory holding just one) opens as a `GGUFCheckpoint`: the same `TensorReader`.
        """
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"{path}: does not exist")
        if path.is_dir():
            return cls._open_directory(path, max_header_bytes)
        if not path.is_file():
            raise CheckpointError(f"{path}: is neither a regular file nor a directory")
        if is_gguf(path):
            return GGUFCheckpoint(path)
        if _is_pickle_name(path.name) or (not path.name.endswith(".safetensors") and _looks_pickled(path)):
            raise pickle_refusal(str(path), [path.name])
        file = SafetensorsFile(path, max_header_bytes)
        try:
            return cls(path, {path: file}, dict.fromkeys(file.names(), file))
        except BaseException:
            file.close()
            raise

    @classmethod
    def _open_directory(cls, path: Path, max_header_bytes: int) -> Checkpoint | GGUFCheckpoint:
        entries = sorted(path.iterdir())
        if not entries:
            raise CheckpointError(f"{path}: is an empty directory")
        top = {p.name: p for p in entries if p.is_file()}

        def nested() -> list[str]:
            return sorted(d.name for d in entries if d.is_dir() and any(d.glob("*.safetensors")))

        return cls.from_listing(path, top, max_header_bytes=max_header_bytes, nested=nested)

    @classmethod
    def from_listing(
        cls,
        path: Path,
        top: Mapping[str, Path],
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        open_file: Callable[[Path, int], SafetensorsFile] = SafetensorsFile,
        nested: Callable[[], list[str]] | None = None,
    ) -> Checkpoint | GGUFCheckpoint:
        """A checkpoint from the top-level files of a directory or a hub repository (`top`: file name -> path).

        Config, tokenizer and index files must be readable local paths; safetensors files are opened with
        `open_file(path, max_header_bytes)`, which may read them from elsewhere (see ``simsa.lineage.formats.hub``).
        """
        notes: list[str] = []
        config: dict[str, Any] = {}
        if "config.json" in top:
            parsed = _load_json(top["config.json"], "config.json")
            if not isinstance(parsed, dict):
                raise CheckpointError(f"{top['config.json']}: config.json must hold a JSON object")
            config = parsed
        tokenizer = {n: top[n] for n in TOKENIZER_FILE_NAMES if n in top}
        shards = sorted(n for n in top if n.endswith(".safetensors"))
        pickles = sorted(n for n in top if _is_pickle_name(n))
        indexes = sorted(n for n in top if n.endswith(".safetensors.index.json"))
        index = INDEX_NAME if INDEX_NAME in indexes else (indexes[0] if len(indexes) == 1 else None)
        if index is None and len(indexes) > 1:
            notes.append(f"several shard indexes ({', '.join(indexes)}) and none is {INDEX_NAME}; read every shard")

        if not shards and index is None:
            ggufs = sorted(n for n in top if n.endswith(".gguf"))
            if len(ggufs) == 1:
                return GGUFCheckpoint(top[ggufs[0]])
            if ggufs:
                raise CheckpointError(f"{path}: holds several GGUF files ({', '.join(ggufs)}); open one directly")
            if pickles:
                raise pickle_refusal(str(path), pickles)
            subfolders = nested() if nested is not None else []
            hint = f"; subfolders {', '.join(subfolders)} hold some (open one of them directly)" if subfolders else ""
            raise CheckpointError(f"{path}: no .safetensors files in this directory{hint}")
        if pickles:
            notes.append(f"ignored pickled files {', '.join(pickles)} (safetensors present)")

        files: dict[Path, SafetensorsFile] = {}
        try:
            if index is not None:
                where = cls._open_indexed(path, top, index, shards, files, notes, max_header_bytes, open_file)
            else:
                where = {}
                for shard in shards:
                    file = files[top[shard]] = open_file(top[shard], max_header_bytes)
                    cls._add(where, file, path)
            if not where:
                notes.append("checkpoint holds no tensors")
            return cls(path, files, where, config=config, tokenizer_files=tokenizer, notes=notes)
        except BaseException:
            for file in files.values():
                file.close()
            raise

    @staticmethod
    def _add(where: dict[str, SafetensorsFile], file: SafetensorsFile, path: Path) -> None:
        for name in file.names():
            other = where.get(name)
            if other is not None:
                raise CheckpointError(
                    f"{path}: tensor {quote(name)} is in two files, {other.path.name} and {file.path.name}"
                )
            where[name] = file

    @classmethod
    def _open_indexed(
        cls,
        path: Path,
        top: Mapping[str, Path],
        index: str,
        shards: list[str],
        files: dict[Path, SafetensorsFile],
        notes: list[str],
        max_header_bytes: int,
        open_file: Callable[[Path, int], SafetensorsFile] = SafetensorsFile,
    ) -> dict[str, SafetensorsFile]:
        index_path = top[index]
        data = _load_json(index_path, index)
        if not isinstance(data, dict) or "weight_map" not in data:
            raise CheckpointError(f"{index_path}: has no weight_map")
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index_path}: weight_map must map tensor names to shard file names")
        first_tensor: dict[str, str] = {}
        for tensor, shard in weight_map.items():
            first_tensor.setdefault(shard, tensor)
        for shard, tensor in first_tensor.items():
            if shard in (".", "..") or Path(shard).name != shard or "\\" in shard:
                raise CheckpointError(
                    f"{index_path}: tensor {quote(tensor)} maps to {quote(shard)}, which is not a file name in "
                    "this directory"
                )
            if shard not in top:
                raise CheckpointError(
                    f"{index_path}: tensor {quote(tensor)} maps to shard {quote(shard)}, which does not exist"
                )
        where: dict[str, SafetensorsFile] = {}
        by_shard: dict[str, SafetensorsFile] = {}
        for shard in sorted(first_tensor):
            file = files[top[shard]] = by_shard[shard] = open_file(top[shard], max_header_bytes)
            cls._add(where, file, path)
        for tensor, shard in weight_map.items():
            if tensor not in by_shard[shard]:
                elsewhere = where.get(tensor)
                also = f" (it is in {elsewhere.path.name})" if elsewhere is not None else ""
                raise CheckpointError(
                    f"{index_path}: tensor {quote(tensor)} is listed in shard {quote(shard)}, which does not "
                    f"contain it{also}"
                )
        unlisted = sorted(set(where) - set(weight_map))
        if unlisted:
            notes.append(f"{len(unlisted)} tensors are in shards but not in {index} (read anyway)")
        ignored = sorted(set(shards) - set(first_tensor))
        if ignored:
            notes.append(f"ignored safetensors files not listed in {index}: {', '.join(ignored)}")
        return where

    # ------------------------------------------------------------------ header facts

    def _file(self, name: str) -> SafetensorsFile:
        try:
            return self._where[name]
        except KeyError:
            raise CheckpointError(f"{self.path}: no tensor named {quote(name)}") from None

    def _info(self, name: str) -> TensorInfo:
        return self._file(name).info(name)

    def _label(self, name: str) -> str:
        return str(self._where[name].path)

    def names(self) -> list[str]:
        """Tensor names, sorted; FP8 scale companions are folded into their weights and not listed."""
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def shape(self, name: str) -> tuple[int, ...]:
        return self._info(name).shape

    def dtype(self, name: str) -> str:
        """The stored dtype (e.g. ``F8_E4M3`` for a scaled FP8 weight, though `read` returns float32)."""
        return self._info(name).dtype

    def nbytes(self, name: str) -> int:
        """Bytes the tensor occupies on disk (its scale companion not included)."""
        return self._info(name).nbytes

    def scale_name(self, name: str) -> str | None:
        """The scale companion multiplied into this FP8 weight on read, if any."""
        plan = self._scales.get(name)
        return plan.name if plan else None

    def total_parameters(self) -> int:
        """Elements of all listed tensors (scale companions excluded)."""
        return sum(self._info(n).numel for n in self._names)

    # ------------------------------------------------------------------ values

    def _scale_values(self, plan: _ScalePlan) -> np.ndarray:
        values = self._file(plan.name).read(plan.name)
        return values.reshape(plan.shape)

    @staticmethod
    def _factors(plan: _ScalePlan, scale: np.ndarray, axes: Sequence[np.ndarray]) -> np.ndarray:
        """Scale factors for the grid of positions `axes` (one index array per weight axis)."""
        if not plan.blocks:
            return scale
        return scale[np.ix_(*(a // b for a, b in zip(axes, plan.blocks, strict=True)))]

    @staticmethod
    def _chunk_factors(
        plan: _ScalePlan, scale: np.ndarray, shape: tuple[int, ...], m0: int, m1: int, c0: int, c1: int
    ) -> np.ndarray:
        """Factors for a `row_chunks` piece of the weight seen as [prod(shape[:-1]), shape[-1]]."""
        if not plan.blocks:
            return scale
        lead, lead_blocks = shape[:-1], plan.blocks[:-1]
        if lead:
            positions = np.unravel_index(np.arange(m0, m1), lead)
            rows = np.ravel_multi_index(
                tuple(p // b for p, b in zip(positions, lead_blocks, strict=True)), plan.shape[:-1]
            )
        else:
            rows = np.zeros(1, dtype=np.intp)
        cols = np.arange(c0, c1) // plan.blocks[-1]
        return scale.reshape(-1, plan.shape[-1])[np.ix_(rows, cols)]

    def read(self, name: str, *, allow_integer: bool = False) -> np.ndarray:
        """The tensor as float32, FP8 weights dequantised with their scale. Integer tensors need allow_integer."""
        file, info = self._file(name), self._info(name)
        out = file.read(name, allow_integer=allow_integer)
        plan = self._scales.get(name)
        if plan is None or info.numel == 0:
            return out
        scale = self._scale_values(plan)
        cols = info.shape[-1] if info.shape else 1
        grid = out.reshape(-1, cols)
        if len(info.shape) == 2 and _scale_by_blocks(grid, scale.reshape(plan.shape), plan.blocks):
            return out
        for m0, m1, c0, c1 in row_chunks(info.shape):
            grid[m0:m1, c0:c1] *= self._chunk_factors(plan, scale, info.shape, m0, m1, c0, c1)
        return out

    def read_index(
        self, name: str, index: Any, axis: int = 0, expert: int | None = None, *, allow_integer: bool = False
    ) -> np.ndarray:
        """float32 rows (axis 0) or columns (axis 1) of a 2-D tensor, or of ``tensor[expert]`` of a 3-D one,
        decoding and dequantising only the selected elements."""
        file, info = self._file(name), self._info(name)
        shape = info.shape[1:] if expert is not None and len(info.shape) == 3 else info.shape
        if len(shape) == 2 and axis in (0, 1):
            index = normalise_index(index, shape[axis], "row" if axis == 0 else "column")
        out = file.read_index(name, index, axis, expert, allow_integer=allow_integer)
        plan = self._scales.get(name)
        if plan is None or out.size == 0:
            return out
        rows = index if axis == 0 else np.arange(shape[0])
        cols = index if axis == 1 else np.arange(shape[1])
        axes = [rows, cols] if expert is None else [np.array([expert]), rows, cols]
        factors = self._factors(plan, self._scale_values(plan), axes)
        out *= factors[0] if expert is not None and plan.blocks else factors
        return out

    def digest(self, name: str, precision: str = "exact") -> str:
        """sha256 hex digest of a tensor's contents, for identity checks that never hold a whole tensor in memory.

        "exact": dtype, shape and stored bytes (with the scale companion's, for a scaled FP8 weight).
        "bf16": shape and the values rounded to bfloat16 after decoding and dequantising, so a float32 tensor and
        its bf16 cast digest alike. Integer and bool tensors have no precision to round: "bf16" equals "exact".
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        file, info = self._file(name), self._info(name)
        plan = self._scales.get(name)
        h = hashlib.sha256()
        if precision == "exact" or info.dtype in INTEGER_DTYPES:
            h.update(b"simsa-exact-v1\0")
            parts = [name] + ([plan.name] if plan else [])
            for part in parts:
                part_info = self._info(part)
                h.update(json.dumps([part_info.dtype, list(part_info.shape)]).encode() + b"\0")
                for chunk in self._file(part).iter_bytes(part):
                    h.update(chunk)
            return h.hexdigest()
        h.update(b"simsa-bf16-v1\0" + json.dumps(list(info.shape)).encode() + b"\0")
        scale = self._scale_values(plan) if plan else None
        cols = info.shape[-1] if info.shape else 1
        for m0, m1, c0, c1 in row_chunks(info.shape):
            start, stop = m0 * cols + c0, (m1 - 1) * cols + c1
            values = file.read_flat(name, start, stop)
            if plan is not None and scale is not None:
                values = values.reshape(m1 - m0, c1 - c0)
                values *= self._chunk_factors(plan, scale, info.shape, m0, m1, c0, c1)
            h.update(bf16_bits(values).tobytes())
        return h.hexdigest()

    def io_stats(self) -> IOStats:
        """Bytes read so far against the checkpoint's total size, so a report can say how little it needed.

        Remote files count the exact bytes fetched, local ones the bytes copied by positional reads (not `raw` views).
        """
        total = NO_IO
        for file in self._files.values():
            total += file.io_stats()
        return total

    def vocabulary(self) -> Vocabulary | None:
        """None: a safetensors checkpoint keeps its tokenizer in files (`tokenizer_files`), read separately."""
        return None

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        for file in self._files.values():
            file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, {len(self._names)} tensors in {len(self.files)} files)"

