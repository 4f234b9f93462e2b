"""One side of a comparison: a model (or a stored fingerprint) opened with its role map, unit groups and vocabulary."""


from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from simsa.lineage.formats.fingerprint import SUFFIX as FP_SUFFIX
from simsa.lineage.formats.fingerprint import Fingerprint, FingerprintCheckpoint, fingerprint_units
from simsa.lineage.formats.hub import open_model
from simsa.lineage.formats.reader import TensorReader
from simsa.lineage.model.adapters import map_architecture
from simsa.lineage.model.roles import ArchitectureMap
from simsa.lineage.model.tokenizer import Vocabulary, read_vocabulary
from simsa.lineage.model.units import ComponentUnits, unit_groups

Progress = Callable[[str, int, int], None]


@dataclass
class Side:
    """One model opened for comparison: the checkpoint, its role map, unit groups and vocabulary."""

    label: str
    ckpt: TensorReader
    amap: ArchitectureMap
    comps: dict[str, ComponentUnits]
    vocab: Vocabulary | None
    fingerprint: Fingerprint | None = None  # set when the reference is a stored fingerprint, not weights
    vocab_reason: str | None = None  # why there is no vocabulary (unreadable tokenizer file), if there is none
    cache: dict = field(default_factory=dict)  # rows read once and reused across comparisons (a scan's anchors)

    def describe(self) -> dict:
        return {
            "path": self.label,
            "model_type": self.amap.model_type,
            "adapter": self.amap.adapter,
            "parameters": int(self.ckpt.total_parameters()),
            "tensors": len(self.ckpt.names()),
            "stacks": {k: asdict(v) for k, v in self.amap.stacks.items()},
        }


def open_side(path: str | Path) -> Side:
    """Open a checkpoint (headers only) and map its tensors; a ``.simsa-fp`` file opens as a fingerprint."""
    if str(path).endswith(FP_SUFFIX):
        return fingerprint_side(Fingerprint.load(path), str(path))
    ckpt = open_model(path)
    shapes = {n: tuple(ckpt.shape(n)) for n in ckpt.names()}
    amap = map_architecture(shapes, ckpt.config)
    vocab, why = read_vocabulary(ckpt.tokenizer_files)  # a broken tokenizer file must not stop the weight test
    if vocab is None:  # a GGUF file carries its token list in the header; other readers hold none
        held = ckpt.vocabulary()
        if held is not None:
            vocab, why = held, None
    return Side(str(path), ckpt, amap, unit_groups(amap), vocab, vocab_reason=why)


def fingerprint_side(fp: Fingerprint, label: str | None = None) -> Side:
    """A reference side served from a fingerprint."""
    amap, comps = fingerprint_units(fp)
    ckpt = FingerprintCheckpoint(fp, label)
    return Side(label or fp.name, ckpt, amap, comps, ckpt.vocabulary(), fp)
