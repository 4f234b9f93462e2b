"""The one reading interface every weight source offers: `TensorReader`.

A comparison must not care whether a side is a safetensors checkpoint (local or read by HTTP ranges), a GGUF file or
a stored fingerprint, so all of them answer the same questions — names, shapes, rows or columns, digests, bytes read
— and a caller never has to probe for a method. A reader that cannot answer (a fingerprint keeps only samples) raises
`CheckpointError` with the reason, the same way a checkpoint refuses a tensor it does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from simsa.lineage.model.tokenizer import Vocabulary

__all__ = ["PRECISIONS", "IOStats", "RowIndex", "TensorReader"]

# What `TensorReader.digest` accepts: the stored bytes, or the values rounded to bfloat16 (a dtype cast digests alike).
PRECISIONS = ("exact", "bf16")

# Rows or columns to read: a slice, a sequence of ints or an int array (negative ints count from the end).
RowIndex = slice | Sequence[int] | np.ndarray


@dataclass(frozen=True)
class IOStats:
    """Bytes a reader has read against what its files hold, so a report can say how little of a model it needed.

    `remote`: any byte came over the network (then `bytes_read` is exact: what the server sent); `requests`:
    positional reads or HTTP range requests made.
    """

    remote: bool
    bytes_read: int
    bytes_total: int
    requests: int

    def to_dict(self) -> dict[str, Any]:
        """The ``"io"`` entry of compare and scan results (field order as published)."""
        return {"remote": self.remote, "bytes_read": self.bytes_read, "bytes_total": self.bytes_total,
                "requests": self.requests}

    def __add__(self, other: IOStats) -> IOStats:
        """Totals over several files of one reader (remote when any of them is)."""
        return IOStats(self.remote or other.remote, self.bytes_read + other.bytes_read,
                       self.bytes_total + other.bytes_total, self.requests + other.requests)


NO_IO = IOStats(remote=False, bytes_read=0, bytes_total=0, requests=0)


@runtime_checkable
class TensorReader(Protocol):
    """Tensors of one model by (Hugging Face) name, whatever stores them; `read*` return float32.

    Readers hold open files: use them as context managers or call `close`.
    """

    @property
    def path(self) -> Path: ...

    @property
    def config(self) -> dict[str, Any]:
        """The model's Hugging Face style config (empty when none came with it)."""
        ...

    @property
    def tokenizer_files(self) -> dict[str, Path]:
        """Tokenizer files by name (``tokenizer.json``, ...), read by `model.tokenizer.read_vocabulary`."""
        ...

    @property
    def notes(self) -> list[str]:
        """What the reader did or skipped that a report should mention."""
        ...

    def names(self) -> list[str]: ...

    def __contains__(self, name: object) -> bool: ...

    def shape(self, name: str) -> tuple[int, ...]: ...

    def dtype(self, name: str) -> str:
        """The stored type name (``BF16``, ``F8_E4M3``, ``Q4_K``, ...)."""
        ...

    def nbytes(self, name: str) -> int:
        """Bytes the tensor occupies where it is stored."""
        ...

    def total_parameters(self) -> int: ...

    def read(self, name: str, *, allow_integer: bool = False) -> np.ndarray:
        """The whole tensor as float32; integer tensors only with `allow_integer`."""
        ...

    def read_index(
        self, name: str, index: RowIndex, axis: int = 0, expert: int | None = None, *, allow_integer: bool = False
    ) -> np.ndarray:
        """Rows (axis 0) or columns (axis 1) of a 2-D tensor, or of ``tensor[expert]`` of a 3-D one, as float32."""
        ...

    def digest(self, name: str, precision: str = "exact") -> str:
        """sha256 hex of a tensor in the shared scheme, so digests compare across readers (see `PRECISIONS`)."""
        ...

    def io_stats(self) -> IOStats: ...

    def vocabulary(self) -> Vocabulary | None:
        """A token list the weights carry themselves (GGUF metadata, a fingerprint), else None."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
