"""Headers listing tens of thousands of tensors: opened exactly, in memory bounded by the header text, still strict.

The model comes from benchmarks/lineage_header.py (its writer, run at a tenth of the benchmark's 600k tensors), so
the benchmark's path stays covered; no timing is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from simsa.errors import CheckpointError
from simsa.lineage.compare.sides import open_side
from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.safetensors import SafetensorsFile

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "lineage_header.py"
TENSORS = 60_000


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lineage_header", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lineage_header"] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("many") / "model"
    return root, bench.write_model(root, TENSORS)


def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def _write(path: Path, header: dict | bytes, data: bytes) -> Path:
    body = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + data)
    return path


def test_every_tensor_is_read_as_the_header_says(model: tuple[Path, dict]) -> None:
    root, written = model
    path = root / "model.safetensors"
    header, data = _header(path)
    metadata = header.pop("__metadata__")
    assert written["tensors"] == len(header) >= TENSORS * 0.95
    with SafetensorsFile(path) as f:
        assert f.names() == list(header)  # header order
        assert f.metadata == metadata
        for name in list(header)[:: len(header) // 500]:
            entry = header[name]
            info = f.info(name)
            assert (info.dtype, list(info.shape), [info.begin, info.end]) == (
                entry["dtype"], entry["shape"], entry["data_offsets"])
            begin, end = entry["data_offsets"]
            expected = np.frombuffer(data[begin:end], dtype=np.float16).astype(np.float32).reshape(entry["shape"])
            np.testing.assert_array_equal(f.read(name), expected)
        assert f.names_of_dtypes({"F16"}) == list(header)
        assert f.names_of_dtypes({"F8_E4M3", "BF16"}) == []


def test_memory_follows_the_header_text_not_the_tensor_count(tmp_path: Path) -> None:
    """Columns, not a parsed JSON tree and an object per tensor (the old reader held ~4x the text, peaked at ~10x)."""
    root = tmp_path / "model"
    written = bench.write_model(root, TENSORS // 4)  # tracemalloc slows every allocation down: a smaller header
    tracemalloc.start()
    try:
        f = SafetensorsFile(root / "model.safetensors")
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    f.close()
    assert peak < 3 * written["header_bytes"], peak
    assert held < 2 * written["header_bytes"], held


def test_checkpoint_and_side_map_every_expert(model: tuple[Path, dict]) -> None:
    root, written = model
    with Checkpoint.open(root) as ckpt:
        assert len(ckpt.names()) == written["tensors"]
        assert ckpt.shape("model.layers.3.mlp.experts.17.down_proj.weight") == bench.PROJECTIONS[2][1]
    side = open_side(root)
    try:
        assert side.amap.unmapped == [] and len(side.amap.tensors) == written["tensors"]
        kinds = {t.role.kind for t in side.amap.tensors if t.role.expert == 17 and t.role.layer == 3}
        assert kinds == {"moe.expert.gate", "moe.expert.up", "moe.expert.down"}
        assert side.amap.stacks["text"].num_layers == written["layers"]
    finally:
        side.ckpt.close()


def test_a_bad_entry_late_in_a_long_header_is_still_named(model: tuple[Path, dict], tmp_path: Path) -> None:
    header, data = _header(model[0] / "model.safetensors")
    names = [n for n in header if n != "__metadata__"]
    last = names[-1]

    def variant(label: str, change: dict) -> Path:
        return _write(tmp_path / f"{label}.safetensors", {**header, **change}, data)

    begin, end = header[last]["data_offsets"]
    bad_size = variant("size", {last: {**header[last], "data_offsets": [begin, end - 2]}})
    with pytest.raises(CheckpointError, match=f"tensor '{last}': data_offsets \\[{begin}, {end - 2}\\] give"):
        SafetensorsFile(bad_size)
    as_bool = variant("bool", {last: {**header[last], "shape": [True, 8]}})
    with pytest.raises(CheckpointError, match=f"tensor '{last}': shape must be a list of integers"):
        SafetensorsFile(as_bool)
    overlap = variant("overlap", {last: {**header[last], "data_offsets": [begin - 2, end - 2]}})
    with pytest.raises(CheckpointError, match=f"tensor '{last}': data_offsets \\[{begin - 2}, {end - 2}\\] overlap"):
        SafetensorsFile(overlap)
    body = json.dumps(header, separators=(",", ":")).encode()
    repeated = body[:-1] + b"," + json.dumps({last: header[last]})[1:-1].encode() + b"}"
    with pytest.raises(CheckpointError, match=f"duplicate key '{last}'"):
        SafetensorsFile(_write(tmp_path / "twice.safetensors", repeated, data))
    inner = body[:-1] + b',"extra":{"dtype":"F16","dtype":"F16","shape":[0],"data_offsets":[0,0]}}'
    with pytest.raises(CheckpointError, match="duplicate key 'dtype'"):
        SafetensorsFile(_write(tmp_path / "inner.safetensors", inner, data))
    cut = body[:-1] + b',"extra":}'
    with pytest.raises(CheckpointError, match="header is not valid JSON: Expecting value"):
        SafetensorsFile(_write(tmp_path / "cut.safetensors", cut, data))


def test_spacing_key_order_and_escapes_do_not_change_what_is_read(tmp_path: Path) -> None:
    """The fast path (compact canonical entries) and the general one agree on every spelling of the same header."""
    tensors = {"a.weight": ("F32", [2, 3]), "b\u00e9.bias": ("BF16", [3]), "c": ("U8", []), "d": ("F16", [0, 4])}
    header: dict = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = {"F32": 4, "BF16": 2, "U8": 1, "F16": 2}[dtype] * int(np.prod(shape))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    data = bytes(range(offset))
    spellings = [
        json.dumps(header, separators=(",", ":")).encode(),
        json.dumps(header, indent=2, ensure_ascii=True).encode(),
        json.dumps({k: dict(reversed(v.items())) for k, v in header.items()}).encode(),
        json.dumps(header).replace('"dtype"', '"d\\u0074ype"').encode(),
        b"\n\t " + json.dumps({"__metadata__": None, **header}).encode() + b"  \n",
    ]
    seen = []
    for k, body in enumerate(spellings):
        with SafetensorsFile(_write(tmp_path / f"s{k}.safetensors", body, data)) as f:
            seen.append([(n, f.info(n), f.read(n, allow_integer=True).tolist()) for n in f.names()])
    assert all(s == seen[0] for s in seen) and [n for n, _, _ in seen[0]] == list(tensors)


def test_the_benchmark_runs_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--tensors", "2000", "--dir", str(tmp_path / "m"), "--json"])
    figures = json.loads(capsys.readouterr().out)
    assert [s["stage"] for s in figures["stages"]] == list(bench.STAGES)
    assert all(s["tensors"] == figures["model"]["tensors"] and s["rss_mib"] > 0 for s in figures["stages"])
