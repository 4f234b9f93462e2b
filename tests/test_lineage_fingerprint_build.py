"""The fast fingerprint build keeps its answers: the coordinate audit flags what its definition flags, matrix by
matrix in bounded memory; scattered and column reads return the stored values; a build is deterministic and fails
cleanly on a file that changes under it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simsa.errors import CheckpointError
from simsa.lineage.compare.sides import open_side
from simsa.lineage.fingerprints.build import build_fingerprint
from simsa.lineage.formats import safetensors as st
from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.digest import quick_key, quick_keys
from simsa.lineage.formats.dtypes import bf16_bits
from simsa.lineage.formats.fingerprint import FingerprintSettings
from simsa.lineage.formats.safetensors import SafetensorsFile
from simsa.lineage.formats.safetensors_write import TensorSpec, write_safetensors
from simsa.lineage.stats.exchangeability import (
    CONSTANT_RELATIVE_SD,
    DUPLICATE_DECIMALS,
    REASONS,
    SCALE_RATIO,
    SPIKE_RATIO,
    Auditor,
    audit,
    flag_matrix,
)

# ------------------------------------------------------------------------------------------ the audit's definition


def _definition(x: np.ndarray) -> dict[str, set[int]]:
    """The audit's rules written the plain way (column medians, a dict of column bytes): the oracle."""
    x = np.asarray(x, dtype=np.float64)
    out: dict[str, set[int]] = {r: set() for r in REASONS}
    finite = np.isfinite(x).all(axis=0)
    x = np.where(np.isfinite(x), x, 0.0)
    sd = x.std(axis=0)
    typical = float(np.median(sd[sd > 0])) if np.any(sd > 0) else 0.0
    constant = (sd <= CONSTANT_RELATIVE_SD * typical) | ~finite
    out["constant"] = set(np.nonzero(constant)[0].tolist())
    live = ~constant
    med = np.median(x, axis=0)
    robust = 1.4826 * np.median(np.abs(x - med), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        spiked = live & ((robust == 0) | (sd / np.where(robust > 0, robust, 1.0) > SPIKE_RATIO))
    out["spiked"] = set(np.nonzero(spiked)[0].tolist())
    rms = np.sqrt((x * x).mean(axis=0))
    typical_rms = float(np.median(rms[live])) if np.any(live) else 0.0
    if typical_rms > 0:
        scale = live & ~spiked & ((rms > SCALE_RATIO * typical_rms) | (rms < typical_rms / SCALE_RATIO))
        out["scale"] = set(np.nonzero(scale)[0].tolist())
    cols = np.nonzero(live & ~spiked)[0]
    if cols.size >= 2:
        z = x[:, cols] - x[:, cols].mean(axis=0)
        z /= np.where(z.std(axis=0) > 0, z.std(axis=0), 1.0)
        first = z[np.argmax(np.abs(z) > 1e-9, axis=0), np.arange(cols.size)]
        z *= np.where(first < 0, -1.0, 1.0)
        keys = np.round(z, DUPLICATE_DECIMALS) + 0.0
        seen: dict[bytes, list[int]] = {}
        for i, c in enumerate(cols):
            seen.setdefault(np.ascontiguousarray(keys[:, i]).tobytes(), []).append(int(c))
        out["duplicated"] = {c for group in seen.values() if len(group) > 1 for c in group}
    return out


def _planted(seed: int) -> np.ndarray:
    """A unit matrix with every kind of degenerate coordinate planted, odd or even unit counts."""
    rng = np.random.default_rng(seed)
    n, w = int(rng.integers(16, 400)), int(rng.integers(8, 300))
    x = rng.standard_normal((n, w)).astype(np.float32)
    kind = seed % 6
    if kind == 1:
        x[:, : w // 4] = 0.0
    elif kind == 2:
        x[:, 1] = x[:, 0]
        x[:, 3] = -2.0 * x[:, 0] + 1.0
        x[:, 5] = -x[:, 0]
    elif kind == 3:
        x[rng.integers(0, n, 3), :5] = 50.0
    elif kind == 4:
        x = rng.laplace(size=(n, w)).astype(np.float32)
        x[0, 7] = np.nan
        x[1, 2] = np.inf
    elif kind == 5:
        x = np.round(x, 1)  # quantised: many tied values, tied medians
        x[:, 2] *= 20.0
    return x


@pytest.mark.parametrize("seed", range(24))
def test_the_fast_audit_flags_exactly_what_the_definition_flags(seed: int) -> None:
    x = _planted(seed)
    assert flag_matrix(x) == _definition(x)


def test_planted_degenerate_coordinates_are_found() -> None:
    assert {0, 1, 3, 5} <= flag_matrix(_planted(2))["duplicated"]
    assert set(range(_planted(1).shape[1] // 4)) <= flag_matrix(_planted(1))["constant"]
    assert {2, 7} <= flag_matrix(_planted(4))["constant"]  # a non-finite value makes its coordinate unusable


def test_an_auditor_fed_matrix_by_matrix_equals_the_audit_of_all() -> None:
    mats = [_planted(s)[:, :8] for s in (1, 2, 3, 5)]
    whole = audit(mats, 8)
    auditor = Auditor(8)
    for x in mats:
        auditor.add(x)
    assert auditor.result() == whole
    assert whole.matrices == 4 and whole.excluded
    with pytest.raises(ValueError, match="coordinates"):
        auditor.add(np.zeros((32, 9), dtype=np.float32))


# ------------------------------------------------------------------------------------------ reads


def _matrix_file(tmp_path: Path, rows: int, cols: int, dtype: str = "BF16") -> tuple[Path, np.ndarray]:
    values = np.random.default_rng(3).standard_normal((rows, cols)).astype(np.float32)
    path = tmp_path / "m.safetensors"
    stored = bf16_bits(values) if dtype == "BF16" else values
    write_safetensors(path, [TensorSpec("w", dtype, (rows, cols))], lambda spec: stored)
    with SafetensorsFile(path) as f:
        return path, f.read("w")


def test_columns_read_in_chunks_match_the_tensor(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path, full = _matrix_file(tmp_path, 103, 40)
    monkeypatch.setattr(st, "CHUNK_ELEMENTS", 7 * 40)  # 7 rows a step: 15 steps, the last one partial
    idx = np.array([39, 0, 17, 17, 5])
    with SafetensorsFile(path) as f:
        np.testing.assert_array_equal(f.read_index("w", idx, axis=1), full[:, idx])


def test_scattered_rows_are_announced_to_the_kernel_then_read_exactly(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path, full = _matrix_file(tmp_path, 200, 24, "F32")
    hints: list[tuple[int, int]] = []
    real = st.os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        hints.append((offset, length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(st.os, "posix_fadvise", spy)
    rows = np.array([3, 4, 5, 90, 150, 199])
    with SafetensorsFile(path) as f:
        np.testing.assert_array_equal(f.read_index("w", rows, axis=0), full[rows])
    assert len(hints) == 4  # one per run of consecutive rows: 3-5, 90, 150, 199
    assert [length for _, length in hints] == [3 * 24 * 4, 24 * 4, 24 * 4, 24 * 4]


# ------------------------------------------------------------------------------------------ the build


def _encoder(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    hidden, ffn, layers, vocab = 48, 96, 2, 200
    e = "bert.embeddings."
    shapes: dict[str, tuple[int, ...]] = {e + "word_embeddings.weight": (vocab, hidden),
                                          e + "position_embeddings.weight": (64, hidden)}
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for proj in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            shapes[p + proj + ".weight"] = (hidden, hidden)
        shapes[p + "intermediate.dense.weight"] = (ffn, hidden)
        shapes[p + "output.dense.weight"] = (hidden, ffn)
    values = {n: (rng.standard_normal(s) * 0.02).astype(np.float32) for n, s in shapes.items()}
    path.mkdir()
    config = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": hidden, "intermediate_size": ffn,
              "num_hidden_layers": layers, "num_attention_heads": 4, "max_position_embeddings": 64,
              "vocab_size": vocab, "hidden_act": "gelu"}
    (path / "config.json").write_text(json.dumps(config))
    write_safetensors(path / "model.safetensors", [TensorSpec(n, "F32", s) for n, s in shapes.items()],
                      lambda spec: values[spec.name])
    return path


SMALL = FingerprintSettings(ref_units=64, coords=32, paired=64)


def test_a_build_is_deterministic_and_holds_the_audit(tmp_path: Path) -> None:
    model = _encoder(tmp_path / "enc")
    first = build_fingerprint(open_side(model), SMALL, name="enc")
    second = build_fingerprint(open_side(model), SMALL, name="enc")
    assert sorted(first.arrays) == sorted(second.arrays)
    for key, value in first.arrays.items():
        assert value.tobytes() == second.arrays[key].tobytes(), key
    assert "excluded|text" in first.arrays
    assert first.meta["audit_matrices"]["text"] > 0


def test_a_file_truncated_during_the_build_fails_with_its_name(tmp_path: Path) -> None:
    model = _encoder(tmp_path / "enc")
    side = open_side(model)
    weights = model / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)
    with pytest.raises(CheckpointError, match="shrank"):
        build_fingerprint(side, SMALL, name="enc")


def _many(tmp_path: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(8)
    values = {f"t{i:02d}": rng.standard_normal((16, 8 + i)).astype(np.float32) for i in range(n)}
    path = tmp_path / "many.safetensors"
    write_safetensors(path, [TensorSpec(k, "F32", v.shape) for k, v in values.items()], lambda s: values[s.name])
    return path


def test_quick_keys_on_threads_equal_the_keys_one_by_one_in_order(tmp_path: Path) -> None:
    with Checkpoint.open(_many(tmp_path)) as ckpt:
        names = ckpt.names()
        assert list(quick_keys(ckpt, names)) == [quick_key(ckpt, n) for n in names]
        reads = ckpt.io_stats().requests
        list(quick_keys(ckpt, names))
        assert ckpt.io_stats().requests - reads == len(names)  # counted exactly, whatever the threads did


def test_quick_keys_raise_the_failing_tensors_error(tmp_path: Path) -> None:
    path = _many(tmp_path)
    with Checkpoint.open(path) as ckpt:
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size - 600)  # the last tensors lose their bytes
        with pytest.raises(CheckpointError, match="shrank"):
            list(quick_keys(ckpt, ckpt.names()))
