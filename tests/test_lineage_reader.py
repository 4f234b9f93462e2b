"""The torch-free safetensors reader: strict validation of hostile files, exact decoding, lazy bounded reads.

Valid files are written with the safetensors library (torch for BF16/FP8); hostile ones are crafted byte by byte.
torch is used here only as the reference for decoding; the reader itself never imports it.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy as stn
import safetensors.torch as stt
import torch

from simsa.errors import CheckpointError
from simsa.lineage.formats import safetensors as safetensors_io
from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.dtypes import FP8_TABLES, ITEMSIZE, STORAGE, decode, round_to_bf16
from simsa.lineage.formats.safetensors import SafetensorsFile, row_chunks

# --------------------------------------------------------------------------- helpers


def craft(path: Path, header: Any = None, data: bytes = b"", *, raw: bytes | None = None,
          length: int | None = None) -> Path:
    """Write a safetensors-shaped file by hand: 8-byte little-endian length, header bytes, data."""
    body = raw if raw is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return path


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def refused(path: Path, *fragments: str, **kwargs: Any) -> str:
    """Open must fail with a CheckpointError naming the file and saying what is wrong, allocating almost nothing."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as info:
            SafetensorsFile(path, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert path.name in message
    for fragment in fragments:
        assert fragment in message, message
    assert peak < 2 * 2**20, f"open allocated {peak} bytes"
    return message


def save_torch(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    stt.save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def expand(scale: np.ndarray, shape: tuple[int, ...], blocks: tuple[int, ...]) -> np.ndarray:
    """Reference block expansion: repeat each scale over its block (edge blocks cut short)."""
    out = scale
    for axis, (w, block) in enumerate(zip(shape, blocks, strict=True)):
        out = np.take(np.repeat(out, block, axis=axis), np.arange(w), axis=axis)
    return out


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force many chunks so chunk boundaries (within rows, across rows) are exercised on small tensors."""
    monkeypatch.setattr(safetensors_io, "CHUNK_ELEMENTS", 7)


# --------------------------------------------------------------------------- hostile files


def test_file_shorter_than_8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x01\x02\x03")
    refused(path, "file is 3 bytes, shorter than the 8-byte header length")


def test_header_length_beyond_file(tmp_path: Path) -> None:
    path = craft(tmp_path / "m.safetensors", raw=b"{}", length=1000)
    refused(path, "header length 1000 bytes extends beyond the end of the file (10 bytes)")


def test_header_length_over_limit(tmp_path: Path) -> None:
    huge = craft(tmp_path / "huge.safetensors", raw=b"{}", length=2**63)
    refused(huge, f"header length {2**63} bytes exceeds the limit of {100 * 2**20} bytes")
    small = craft(tmp_path / "small.safetensors", {"a": entry("F32", [2], 0, 8)}, b"\0" * 8)
    refused(small, "exceeds the limit of 16 bytes", max_header_bytes=16)


def test_truncated_data(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    stn.save_file({"a.weight": np.ones((4, 4), np.float32), "b.weight": np.ones((8, 8), np.float32)}, str(path))
    path.write_bytes(path.read_bytes()[:-10])
    refused(path, "tensor 'b.weight': data_offsets [64, 320] end beyond the data section (310 bytes; file truncated?)")


def test_overlapping_offsets(tmp_path: Path) -> None:
    header = {"a": entry("F32", [4], 0, 16), "b": entry("F32", [4], 8, 24)}
    path = craft(tmp_path / "m.safetensors", header, b"\0" * 24)
    refused(path, "tensor 'b': data_offsets [8, 24] overlap tensor 'a' [0, 16]")


def test_absurd_shape_fails_without_allocation(tmp_path: Path) -> None:
    path = craft(tmp_path / "m.safetensors", {"a": entry("F32", [2**40, 2**40], 0, 16)}, b"\0" * 16)
    refused(path, f"tensor 'a': data_offsets [0, 16] give 16 bytes but F32[{2**40}, {2**40}] needs {2**82}")


def test_byte_count_mismatch_message(tmp_path: Path) -> None:
    path = craft(tmp_path / "model.safetensors", {"a.weight": entry("F32", [4, 4], 0, 96)}, b"\0" * 96)
    refused(path, "model.safetensors: tensor 'a.weight': data_offsets [0, 96] give 96 bytes but F32[4, 4] needs 64")


def test_unknown_and_unsupported_dtype(tmp_path: Path) -> None:
    unknown = craft(tmp_path / "u.safetensors", {"a": entry("F17", [1], 0, 4)}, b"\0" * 4)
    refused(unknown, "tensor 'a': unknown dtype 'F17'")
    packed = craft(tmp_path / "p.safetensors", {"a": entry("F4", [2], 0, 1)}, b"\0")
    refused(packed, "tensor 'a': dtype 'F4' is not supported")


def test_header_not_utf8(tmp_path: Path) -> None:
    path = craft(tmp_path / "m.safetensors", raw=b'{"a\xff": 1}')
    refused(path, "header is not valid UTF-8")


def test_header_not_json(tmp_path: Path) -> None:
    path = craft(tmp_path / "m.safetensors", raw=b"{nope")
    refused(path, "header is not valid JSON")
    nan = craft(tmp_path / "nan.safetensors", raw=b'{"a": NaN}')
    refused(nan, "header is not valid JSON: NaN")
    deep = craft(tmp_path / "deep.safetensors", raw=b"[" * 100_000 + b"]" * 100_000)
    refused(deep, "header is not valid JSON")


def test_header_is_a_json_list(tmp_path: Path) -> None:
    path = craft(tmp_path / "m.safetensors", raw=b"[]")
    refused(path, "header must be a JSON object, got a JSON list")


def test_duplicate_keys(tmp_path: Path) -> None:
    raw = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], ' \
          b'"data_offsets": [0, 1]}}'
    refused(craft(tmp_path / "m.safetensors", raw=raw, data=b"\0"), "duplicate key 'a'")
    inner = b'{"a": {"dtype": "U8", "dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    refused(craft(tmp_path / "n.safetensors", raw=inner, data=b"\0"), "duplicate key 'dtype'")


def test_bytes_not_covered(tmp_path: Path) -> None:
    trailing = craft(tmp_path / "t.safetensors", {"a": entry("F32", [4], 0, 16)}, b"\0" * 32)
    refused(trailing, "bytes 16..32 of the data section are not covered by any tensor")
    gap = craft(tmp_path / "g.safetensors", {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 16, 24)},
                b"\0" * 24)
    refused(gap, "bytes 8..16 of the data section are not covered by any tensor")
    nothing = craft(tmp_path / "e.safetensors", {}, b"\0" * 4)
    refused(nothing, "bytes 0..4 of the data section are not covered")


def test_offsets_begin_after_end(tmp_path: Path) -> None:
    path = craft(tmp_path / "m.safetensors", {"a": entry("F32", [2], 16, 8)}, b"\0" * 16)
    refused(path, "tensor 'a': data_offsets [16, 8] must satisfy 0 <= begin <= end")


def test_negative_dims(tmp_path: Path) -> None:
    path = craft(tmp_path / "m.safetensors", {"a": entry("F32", [-1, -4], 0, 16)}, b"\0" * 16)
    refused(path, "tensor 'a': shape [-1, -4] has a negative dimension")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ({"a": {"dtype": "F32", "shape": [1]}}, "tensor 'a': entry lacks data_offsets"),
        ({"a": {**entry("F32", [1], 0, 4), "x": 1}}, "tensor 'a': entry has unexpected keys 'x'"),
        ({"a": 7}, "tensor 'a': entry must be an object"),
        ({"a": entry("F32", [1.0], 0, 4)}, "tensor 'a': shape must be a list of integers"),
        ({"a": entry("F32", [True], 0, 4)}, "tensor 'a': shape must be a list of integers"),
        ({"a": entry("F32", [1] * 9, 0, 4)}, "tensor 'a': shape has rank 9, more than 8"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, "data_offsets must be two integers"),
        ({"a": entry(5, [1], 0, 4)}, "tensor 'a': dtype must be a string"),  # type: ignore[arg-type]
        ({"__metadata__": {"k": 1}, "a": entry("F32", [1], 0, 4)}, "__metadata__ must be an object mapping strings"),
        ({"__metadata__": [], "a": entry("F32", [1], 0, 4)}, "__metadata__ must be an object mapping strings"),
    ],
)
def test_malformed_entries(tmp_path: Path, header: dict[str, Any], fragment: str) -> None:
    refused(craft(tmp_path / "m.safetensors", header, b"\0" * 4), fragment)


def test_hostile_names_are_quoted_and_cut(tmp_path: Path) -> None:
    name = "x\n" * 500
    message = refused(craft(tmp_path / "m.safetensors", {name: entry("Q9", [1], 0, 4)}, b"\0" * 4), "unknown dtype")
    assert "\n" not in message and len(message) < 600


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Checkpoint.open(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="does not exist"):
        SafetensorsFile(tmp_path / "nope.safetensors")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="is an empty directory"):
        Checkpoint.open(empty)
    (empty / "README.md").write_text("hi")
    (empty / "vision").mkdir()
    stn.save_file({"a": np.zeros(2, np.float32)}, str(empty / "vision" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"no \.safetensors files in this directory; subfolders vision hold"):
        Checkpoint.open(empty)


# --------------------------------------------------------------------------- pickles


def test_pickles_only_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as info:
        Checkpoint.open(tmp_path)
    message = str(info.value)
    assert "pytorch_model.bin" in message
    assert "unpickling can run arbitrary code" in message
    assert "safetensors.torch.save_file" in message
    assert "isolated environment you trust" in message


@pytest.mark.parametrize("name", ["model.pt", "weights.pth", "last.ckpt", "pytorch_model-00001-of-00002.bin"])
def test_pickled_single_file_is_refused(tmp_path: Path, name: str) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / name)
    with pytest.raises(CheckpointError, match="arbitrary code"):
        Checkpoint.open(tmp_path / name)


def test_pickle_sniffed_under_other_name(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.dat")  # a zip archive holding a pickle
    with pytest.raises(CheckpointError, match="arbitrary code"):
        Checkpoint.open(tmp_path / "weights.dat")


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    ("name", "torch_dtype"),
    [
        ("F8_E4M3", torch.float8_e4m3fn),
        ("F8_E5M2", torch.float8_e5m2),
        ("F8_E4M3FNUZ", torch.float8_e4m3fnuz),
        ("F8_E5M2FNUZ", torch.float8_e5m2fnuz),
        ("F8_E8M0", getattr(torch, "float8_e8m0fnu", None)),
    ],
)
def test_fp8_tables_match_torch(name: str, torch_dtype: torch.dtype | None) -> None:
    if torch_dtype is None:
        pytest.skip("this torch has no float8_e8m0fnu")
    expected = torch.arange(256, dtype=torch.uint8).view(torch_dtype).float().numpy()
    table = FP8_TABLES[name]
    assert table.dtype == np.float32 and table.shape == (256,)
    np.testing.assert_array_equal(table, expected)  # NaNs compare as NaN
    assert np.array_equal(np.signbit(table), np.signbit(expected))  # -0 stays -0


def test_fp8_table_landmarks() -> None:
    e4m3, e5m2 = FP8_TABLES["F8_E4M3"], FP8_TABLES["F8_E5M2"]
    assert e4m3[0x7E] == 448 and np.isnan(e4m3[0x7F]) and np.isnan(e4m3[0xFF]) and e4m3[0x01] == 2.0**-9
    assert not np.isinf(e4m3).any()
    assert e5m2[0x7B] == 57344 and e5m2[0x7C] == np.inf and e5m2[0xFC] == -np.inf and np.isnan(e5m2[0x7D])
    assert e5m2[0x01] == 2.0**-16


def test_round_to_bf16_matches_torch() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([
        rng.standard_normal(50_000).astype(np.float32) * np.float32(1e3),
        rng.integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32).view(np.float32),  # every bit pattern
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 1e-40, -1e-45], np.float32),
        np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x7F7FFFFF, 0x00008000], np.uint32).view(np.float32),  # ties
    ])
    expected = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    got = round_to_bf16(x)
    np.testing.assert_array_equal(got, expected)
    finite = ~np.isnan(x)
    assert np.array_equal(got[finite].view(np.uint32), expected[finite].view(np.uint32))
    assert np.all(got[~finite].view(np.uint32) == 0x7FC00000)
    assert not (got.view(np.uint32) & 0xFFFF).any()


def test_decode_refuses_integers_unless_asked() -> None:
    raw = np.array([1, -2], dtype="<i8")
    with pytest.raises(ValueError, match="allow_integer"):
        decode(raw, "I64")
    np.testing.assert_array_equal(decode(raw, "I64", allow_integer=True), np.array([1, -2], np.float32))
    assert set(STORAGE) == set(ITEMSIZE)
    assert all(STORAGE[k].itemsize == ITEMSIZE[k] for k in ITEMSIZE)


def test_float_round_trips(tmp_path: Path, small_chunks: None) -> None:
    rng = np.random.default_rng(2)
    arrays = {
        "f64": rng.standard_normal((5, 6)),
        "f64_big": np.array([1e300, -1e300, 1.5], np.float64),
        "f32": rng.standard_normal((3, 4, 5)).astype(np.float32),
        "f16": rng.standard_normal((7, 3)).astype(np.float16),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
    }
    stn.save_file(arrays, str(tmp_path / "np.safetensors"))
    tensors = {
        "bf16": torch.randn(9, 5).to(torch.bfloat16),
        "e4m3": (torch.randn(6, 7) * 50).to(torch.float8_e4m3fn),
        "e5m2": (torch.randn(6, 7) * 500).to(torch.float8_e5m2),
        "e4m3fnuz": torch.randn(4, 4).to(torch.float8_e4m3fnuz),
    }
    save_torch(tmp_path / "t.safetensors", tensors)
    with SafetensorsFile(tmp_path / "np.safetensors") as f, np.errstate(over="ignore"):
        for name, value in arrays.items():
            got = f.read(name)
            assert got.dtype == np.float32 and got.shape == value.shape
            np.testing.assert_array_equal(got, value.astype(np.float32))  # 1e300 -> inf, as a cast gives
    with SafetensorsFile(tmp_path / "t.safetensors") as f:
        assert f.info("e4m3").dtype == "F8_E4M3" and f.info("bf16").dtype == "BF16"
        for name, value in tensors.items():
            np.testing.assert_array_equal(f.read(name), value.float().numpy())
        raw = f.raw("bf16")
        assert raw.dtype == np.uint16 and raw.shape == (9, 5) and not raw.flags.writeable
        np.testing.assert_array_equal(raw, tensors["bf16"].view(torch.int16).numpy().view(np.uint16))
        assert f.raw("e4m3").dtype == np.uint8


def test_integer_round_trips(tmp_path: Path) -> None:
    arrays = {
        "i8": np.array([-128, 127], np.int8), "i16": np.array([-3, 4], np.int16),
        "i32": np.array([[1, -2]], np.int32), "i64": np.array([2**40, -5], np.int64),
        "u8": np.array([255], np.uint8), "u16": np.array([65535], np.uint16),
        "u32": np.array([7], np.uint32), "u64": np.array([9], np.uint64),
        "bool": np.array([True, False, True]),
    }
    stn.save_file(arrays, str(tmp_path / "ints.safetensors"))
    with Checkpoint.open(tmp_path / "ints.safetensors") as ckpt:
        assert ckpt.dtype("bool") == "BOOL" and ckpt.dtype("u64") == "U64"
        for name, value in arrays.items():
            np.testing.assert_array_equal(ckpt.read(name, allow_integer=True), value.astype(np.float32))
        with pytest.raises(CheckpointError, match="'i64': dtype I64 is an integer type"):
            ckpt.read("i64")
        assert ckpt.digest("i64", "bf16") == ckpt.digest("i64", "exact")


def test_metadata_names_and_close(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    stn.save_file({"b": np.ones(3, np.float32), "a": np.zeros(2, np.float16)}, str(path), metadata={"format": "pt"})
    f = SafetensorsFile(path)
    assert f.metadata == {"format": "pt"}
    assert sorted(f.names()) == ["a", "b"]
    info = f.info("b")
    assert (info.dtype, info.shape, info.numel, info.nbytes) == ("F32", (3,), 3, 12)
    with pytest.raises(CheckpointError, match="no tensor named 'zz'"):
        f.info("zz")
    view = f.raw("b")
    f.close()  # a live view must not make close fail
    np.testing.assert_array_equal(view, np.ones(3, np.float32))
    with pytest.raises(CheckpointError, match="file is closed"):
        f.raw("b")


# --------------------------------------------------------------------------- read_index


def test_read_index_rows_columns_and_experts(tmp_path: Path, small_chunks: None) -> None:
    mat = torch.randn(11, 13).to(torch.bfloat16)
    experts = torch.randn(4, 6, 5)
    save_torch(tmp_path / "m.safetensors", {"mat": mat, "experts": experts})
    full = mat.float().numpy()
    with Checkpoint.open(tmp_path / "m.safetensors") as ckpt:
        np.testing.assert_array_equal(ckpt.read("mat"), full)
        idx = [10, 0, 3, 3, -1]
        np.testing.assert_array_equal(ckpt.read_index("mat", idx, axis=0), full[idx])
        np.testing.assert_array_equal(ckpt.read_index("mat", idx, axis=1), full[:, idx])
        np.testing.assert_array_equal(ckpt.read_index("mat", slice(2, 9, 3), axis=1), full[:, 2:9:3])
        np.testing.assert_array_equal(ckpt.read_index("mat", np.array([], int), axis=0), full[[]])
        for e in range(4):
            ref = experts[e].numpy()
            np.testing.assert_array_equal(ckpt.read_index("experts", [5, 1], axis=0, expert=e), ref[[5, 1]])
            np.testing.assert_array_equal(ckpt.read_index("experts", [4, 0, 2], axis=1, expert=e), ref[:, [4, 0, 2]])
        with pytest.raises(IndexError, match="out of range"):
            ckpt.read_index("mat", [11], axis=0)
        with pytest.raises(IndexError, match="expert 4 out of range"):
            ckpt.read_index("experts", [0], axis=0, expert=4)
        with pytest.raises(ValueError, match="needs 2-D"):
            ckpt.read_index("experts", [0], axis=0)


def test_row_chunks_cover_every_element_once() -> None:
    for shape in [(5, 3), (2, 3, 20), (30,), (), (4, 0), (1, 16)]:
        seen: list[int] = []
        cols = shape[-1] if shape else 1
        for m0, m1, c0, c1 in row_chunks(shape, 7):
            assert c1 - c0 == cols or m1 - m0 == 1
            seen.extend(m * cols + c for m in range(m0, m1) for c in range(c0, c1))
        assert seen == list(range(int(np.prod(shape))))


# --------------------------------------------------------------------------- FP8 scales


def test_block_scaled_fp8_dequantisation(tmp_path: Path, small_chunks: None) -> None:
    rng = np.random.default_rng(3)
    rows, cols = 300, 260  # not multiples of 128: edge blocks are partial
    weight = rng.standard_normal((rows, cols)).astype(np.float32)
    scale = rng.uniform(0.01, 2.0, (3, 3)).astype(np.float32)
    full_scale = expand(scale, (rows, cols), (128, 128))  # DeepSeek-V3 layout: 128 x 128 blocks, edges partial
    assert full_scale.shape == (rows, cols)
    assert full_scale[127, 128] == scale[0, 1] and full_scale[299, 0] == scale[2, 0] == full_scale[256, 0]
    q = torch.from_numpy(weight / full_scale).to(torch.float8_e4m3fn)
    save_torch(tmp_path / "fp8.safetensors", {
        "layer.weight": q,
        "layer.weight_scale_inv": torch.from_numpy(scale),
        "layer.bias": torch.zeros(rows),
    })
    reference = q.float().numpy() * full_scale
    with Checkpoint.open(tmp_path / "fp8.safetensors") as ckpt:
        assert ckpt.names() == ["layer.bias", "layer.weight"]
        assert ckpt.total_parameters() == rows * cols + rows
        assert ckpt.dtype("layer.weight") == "F8_E4M3" and ckpt.nbytes("layer.weight") == rows * cols
        assert ckpt.scale_name("layer.weight") == "layer.weight_scale_inv"
        got = ckpt.read("layer.weight")
        np.testing.assert_array_equal(got, reference)
        np.testing.assert_allclose(got, weight, rtol=0.07, atol=1e-2)  # sanity: it is the original, quantised
        idx = [299, 0, 128, 127]
        np.testing.assert_array_equal(ckpt.read_index("layer.weight", idx, axis=0), reference[idx])
        np.testing.assert_array_equal(ckpt.read_index("layer.weight", [*idx[1:], 259], axis=1),
                                      reference[:, [*idx[1:], 259]])
        # the dequantised weight digests like a bf16 cast of the same values stored plainly
        save_torch(tmp_path / "plain.safetensors", {"w": torch.from_numpy(reference).to(torch.bfloat16)})
        with Checkpoint.open(tmp_path / "plain.safetensors") as plain:
            assert ckpt.digest("layer.weight", "bf16") == plain.digest("w", "bf16")


@pytest.mark.parametrize("rows, cols", [(256, 384), (128, 128), (384, 256)])
def test_block_scaled_fp8_that_tiles_exactly_reads_the_same_as_the_general_path(tmp_path: Path, rows: int,
                                                                                  cols: int) -> None:
    """Whole 128 x 128 blocks are scaled by broadcasting; the values equal the per-element factors bit for bit."""
    rng = np.random.default_rng(5)
    scale = rng.uniform(0.01, 2.0, (rows // 128, cols // 128)).astype(np.float32)
    full_scale = expand(scale, (rows, cols), (128, 128))
    q = torch.from_numpy(rng.standard_normal((rows, cols)).astype(np.float32) / full_scale).to(torch.float8_e4m3fn)
    save_torch(tmp_path / "fp8.safetensors", {"w.weight": q, "w.weight_scale_inv": torch.from_numpy(scale)})
    reference = q.float().numpy() * full_scale
    with Checkpoint.open(tmp_path / "fp8.safetensors") as ckpt:
        got = ckpt.read("w.weight")
        assert got.tobytes() == reference.tobytes()
        assert got.tobytes() == ckpt.read_index("w.weight", np.arange(rows), axis=0).tobytes()  # gathered factors


def test_block_scaled_fp8_experts(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    shape = (4, 200, 130)
    scale = rng.uniform(0.5, 2.0, (4, 2, 2)).astype(np.float32)
    q = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(torch.float8_e5m2)
    save_torch(tmp_path / "m.safetensors", {"moe.weight": q, "moe.weight_scale_inv": torch.from_numpy(scale)})
    reference = q.float().numpy() * expand(scale, shape, (1, 128, 128))
    with Checkpoint.open(tmp_path / "m.safetensors") as ckpt:
        np.testing.assert_array_equal(ckpt.read("moe.weight"), reference)
        for e in (0, 3):
            np.testing.assert_array_equal(ckpt.read_index("moe.weight", [199, 99, 100], 0, expert=e),
                                          reference[e][[199, 99, 100]])
            np.testing.assert_array_equal(ckpt.read_index("moe.weight", [64, 65, 0], 1, expert=e),
                                          reference[e][:, [64, 65, 0]])


@pytest.mark.parametrize("scale_shape", [(), (1,), (6,), (6, 1)])
def test_per_tensor_and_per_channel_weight_scale(tmp_path: Path, scale_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(5)
    scale = rng.uniform(0.5, 2.0, scale_shape).astype(np.float32)
    q = torch.from_numpy(rng.standard_normal((6, 5)).astype(np.float32)).to(torch.float8_e4m3fn)
    save_torch(tmp_path / "m.safetensors", {
        "p.weight": q, "p.weight_scale": torch.from_numpy(scale), "p.input_scale": torch.ones(()),
    })
    factor = scale.reshape(6, 1) if scale.size == 6 else scale.reshape(())
    reference = q.float().numpy() * factor
    with Checkpoint.open(tmp_path / "m.safetensors") as ckpt:
        assert ckpt.names() == ["p.weight"]
        np.testing.assert_array_equal(ckpt.read("p.weight"), reference)
        np.testing.assert_array_equal(ckpt.read_index("p.weight", [4, 1], 0), reference[[4, 1]])
        np.testing.assert_array_equal(ckpt.read_index("p.weight", [4, 1], 1), reference[:, [4, 1]])
        assert "p.weight_scale" in ckpt and ckpt.read("p.weight_scale").shape == scale_shape


def test_block_size_from_config_or_even_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    # config declares 64 x 64 blocks: 200 x 130 in [4, 3] blocks (128 would not tile; an even split would guess 50)
    scale = rng.uniform(0.5, 2.0, (4, 3)).astype(np.float32)
    q = torch.from_numpy(rng.standard_normal((200, 130)).astype(np.float32)).to(torch.float8_e4m3fn)
    save_torch(tmp_path / "model.safetensors", {"a.weight": q, "a.weight_scale_inv": torch.from_numpy(scale)})
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"weight_block_size": [64, 64]}}))
    with Checkpoint.open(tmp_path) as ckpt:
        np.testing.assert_array_equal(ckpt.read("a.weight"), q.float().numpy() * expand(scale, (200, 130), (64, 64)))
    # no config, blocks that are neither 128 nor declared: the even split is the only reading
    small = rng.uniform(0.5, 2.0, (3, 5)).astype(np.float32)
    q2 = torch.from_numpy(rng.standard_normal((6, 10)).astype(np.float32)).to(torch.float8_e4m3fn)
    save_torch(tmp_path / "b.safetensors", {"b.weight": q2, "b.weight_scale_inv": torch.from_numpy(small)})
    with Checkpoint.open(tmp_path / "b.safetensors") as ckpt:
        reference = q2.float().numpy() * expand(small, (6, 10), (2, 2))
        np.testing.assert_array_equal(ckpt.read("b.weight"), reference)
        np.testing.assert_array_equal(ckpt.read_index("b.weight", [5, 2], axis=1), reference[:, [5, 2]])


def test_inconsistent_scales_are_refused(tmp_path: Path) -> None:
    q = torch.zeros(4, 4).to(torch.float8_e4m3fn)
    save_torch(tmp_path / "bad.safetensors", {"x.weight": q, "x.weight_scale_inv": torch.ones(3, 1)})
    with pytest.raises(CheckpointError, match=r"tensor 'x.weight_scale_inv': shape \[3, 1\] does not tile weight"):
        Checkpoint.open(tmp_path / "bad.safetensors")
    save_torch(tmp_path / "two.safetensors",
               {"x.weight": q, "x.weight_scale_inv": torch.ones(1), "x.weight_scale": torch.ones(1)})
    with pytest.raises(CheckpointError, match=re.escape("'x.weight' has two scales")):
        Checkpoint.open(tmp_path / "two.safetensors")


# --------------------------------------------------------------------------- digests


def test_digest_bf16_equal_for_cast_exact_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((33, 17)).astype(np.float32)
    x[0, :4] = [np.nan, -0.0, np.inf, 1e-40]
    stn.save_file({"w": x}, str(tmp_path / "f32.safetensors"))
    save_torch(tmp_path / "bf16.safetensors", {"w": torch.from_numpy(x).to(torch.bfloat16)})
    y = x.copy()
    y[5, 5] += 0.1
    stn.save_file({"w": y}, str(tmp_path / "other.safetensors"))
    with Checkpoint.open(tmp_path / "f32.safetensors") as a, Checkpoint.open(tmp_path / "bf16.safetensors") as b, \
            Checkpoint.open(tmp_path / "other.safetensors") as c:
        assert a.digest("w", "bf16") == b.digest("w", "bf16")
        assert a.digest("w", "exact") != b.digest("w", "exact")
        assert a.digest("w", "bf16") != c.digest("w", "bf16")
        assert a.digest("w", "exact") == a.digest("w")
        before = (a.digest("w", "bf16"), a.digest("w", "exact"))
        monkeypatch.setattr(safetensors_io, "CHUNK_ELEMENTS", 5)  # chunking must not change digests
        assert (a.digest("w", "bf16"), a.digest("w", "exact")) == before
        with pytest.raises(ValueError, match="precision"):
            a.digest("w", "fp16")


def test_digest_depends_on_shape(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32)
    stn.save_file({"a": x.reshape(3, 4), "b": x.reshape(4, 3)}, str(tmp_path / "m.safetensors"))
    with Checkpoint.open(tmp_path / "m.safetensors") as ckpt:
        assert ckpt.digest("a", "bf16") != ckpt.digest("b", "bf16")
        assert ckpt.digest("a", "exact") != ckpt.digest("b", "exact")


# --------------------------------------------------------------------------- directories


def _sharded(tmp_path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    one = {"model.embed.weight": rng.standard_normal((10, 4)).astype(np.float32),
           "model.layers.0.w": rng.standard_normal((4, 4)).astype(np.float32)}
    two = {"lm_head.weight": rng.standard_normal((10, 4)).astype(np.float32)}
    stn.save_file(one, str(tmp_path / "model-00001-of-00002.safetensors"))
    stn.save_file(two, str(tmp_path / "model-00002-of-00002.safetensors"))
    weight_map = {**dict.fromkeys(one, "model-00001-of-00002.safetensors"),
                  **dict.fromkeys(two, "model-00002-of-00002.safetensors")}
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4}))
    return {**one, **two}


def test_sharded_directory(tmp_path: Path) -> None:
    tensors = _sharded(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "merges.txt").write_text("")
    stn.save_file({"stale": np.zeros(1, np.float32)}, str(tmp_path / "consolidated.safetensors"))
    torch.save({}, tmp_path / "pytorch_model.bin")
    (tmp_path / "vision").mkdir()
    stn.save_file({"vision.w": np.zeros(1, np.float32)}, str(tmp_path / "vision" / "model.safetensors"))
    with Checkpoint.open(tmp_path) as ckpt:
        assert ckpt.names() == sorted(tensors)
        assert ckpt.path == tmp_path
        assert [p.name for p in ckpt.files] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        assert ckpt.config == {"model_type": "llama", "hidden_size": 4}
        assert ckpt.tokenizer_files == {"tokenizer.json": tmp_path / "tokenizer.json",
                                        "merges.txt": tmp_path / "merges.txt"}
        assert any("consolidated.safetensors" in note for note in ckpt.notes)
        assert any("pytorch_model.bin" in note for note in ckpt.notes)
        assert ckpt.total_parameters() == sum(v.size for v in tensors.values())
        for name, value in tensors.items():
            np.testing.assert_array_equal(ckpt.read(name), value)
            assert ckpt.shape(name) == value.shape and ckpt.dtype(name) == "F32" and ckpt.nbytes(name) == value.nbytes
        with pytest.raises(CheckpointError, match=re.escape("no tensor named 'vision.w'")):
            ckpt.read("vision.w")


def test_index_pointing_at_missing_shard(tmp_path: Path) -> None:
    _sharded(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors\.index\.json: tensor 'lm_head.weight' maps to "
                                              r"shard 'model-00002-of-00002.safetensors', which does not exist"):
        Checkpoint.open(tmp_path)


def test_tensor_in_two_shards(tmp_path: Path) -> None:
    _sharded(tmp_path)
    stn.save_file({"lm_head.weight": np.zeros(1, np.float32), "model.layers.0.w": np.zeros(1, np.float32)},
                  str(tmp_path / "model-00002-of-00002.safetensors"))
    expected = "tensor 'model.layers.0.w' is in two files, model-00001-of-00002"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        Checkpoint.open(tmp_path)


def test_index_lists_tensor_its_shard_lacks(tmp_path: Path) -> None:
    _sharded(tmp_path)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors"
    index["weight_map"]["ghost"] = "model-00002-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="'lm_head.weight' is listed in shard 'model-00001-of-00002.safetensors', "
                                              r"which does not contain it \(it is in model-00002"):
        Checkpoint.open(tmp_path)


@pytest.mark.parametrize(
    ("index_text", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ('{"metadata": {}}', "has no weight_map"),
        ('{"weight_map": []}', "weight_map must map tensor names to shard file names"),
        ('{"weight_map": {"a": "../model-00001-of-00002.safetensors"}}', "which is not a file name in this directory"),
    ],
)
def test_bad_index(tmp_path: Path, index_text: str, fragment: str) -> None:
    _sharded(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(index_text)
    with pytest.raises(CheckpointError, match=fragment.replace(".", r"\.")):
        Checkpoint.open(tmp_path)


def test_invalid_config_json(tmp_path: Path) -> None:
    _sharded(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match=r"config\.json: config\.json is not valid JSON"):
        Checkpoint.open(tmp_path)
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(CheckpointError, match="must hold a JSON object"):
        Checkpoint.open(tmp_path)


def test_directory_without_index_reads_all_and_refuses_duplicates(tmp_path: Path) -> None:
    stn.save_file({"a": np.ones(2, np.float32)}, str(tmp_path / "part1.safetensors"))
    stn.save_file({"b": np.zeros(3, np.float16)}, str(tmp_path / "part2.safetensors"))
    with Checkpoint.open(tmp_path) as ckpt:
        assert ckpt.names() == ["a", "b"] and len(ckpt.files) == 2 and ckpt.config == {}
    stn.save_file({"a": np.ones(2, np.float32)}, str(tmp_path / "part3.safetensors"))
    expected = "tensor 'a' is in two files, part1.safetensors and part3.safetensors"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        Checkpoint.open(tmp_path)


def test_hostile_shard_in_directory_names_the_shard(tmp_path: Path) -> None:
    _sharded(tmp_path)
    craft(tmp_path / "model-00002-of-00002.safetensors", raw=b"[]")
    expected = "model-00002-of-00002.safetensors: header must be a JSON object"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        Checkpoint.open(tmp_path)


# --------------------------------------------------------------------------- memory bound

BIG_ROWS, BIG_COLS = 51_200, 1_024  # F32: 200 MiB of data


def _big_values(r0: int, r1: int) -> np.ndarray:
    return ((np.arange(r0, r1)[:, None] % 997) + np.arange(BIG_COLS)[None, :] / 1024).astype(np.float32)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.safetensors"
    header = json.dumps({"big": entry("F32", [BIG_ROWS, BIG_COLS], 0, BIG_ROWS * BIG_COLS * 4)}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(header)) + header)
        for r0 in range(0, BIG_ROWS, 4096):
            fh.write(_big_values(r0, min(BIG_ROWS, r0 + 4096)).tobytes())
    return path


_MEMORY_PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from simsa.lineage.formats.checkpoint import Checkpoint

    def peak():
        # VmHWM: this process's peak resident set. (ru_maxrss would be inherited from the forking parent.)
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))

    rows_n, cols_n = int(sys.argv[2]), int(sys.argv[3])
    def expected(rows):
        return ((np.asarray(rows)[:, None] % 997) + np.arange(cols_n)[None, :] / 1024).astype(np.float32)

    ckpt = Checkpoint.open(sys.argv[1])
    np.zeros(1).sum()
    base = peak()
    rows = np.arange(0, rows_n, 509)
    got = ckpt.read_index("big", rows, axis=0)
    ok_rows = bool(np.array_equal(got, expected(rows)))
    after_rows = peak()
    cols = ckpt.read_index("big", [0, 777, 1023], axis=1)
    sample = np.arange(0, rows_n, 4099)
    ok_cols = bool(np.array_equal(cols[sample], expected(sample)[:, [0, 777, 1023]]))
    after_cols = peak()
    ckpt.digest("big", "exact")
    after_digest = peak()
    print(json.dumps({"base": base, "rows": after_rows, "cols": after_cols, "digest": after_digest,
                      "ok_rows": ok_rows, "ok_cols": ok_cols, "torch": "torch" in sys.modules}))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for peak RSS")
def test_row_subset_of_large_file_stays_within_memory_bound(big_file: Path) -> None:
    """Peak RSS (in a fresh process) grows by far less than the 200 MiB tensor when reading rows, columns or
    hashing it; and the reader never imports torch."""
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(big_file), str(BIG_ROWS), str(BIG_COLS)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["ok_rows"] and probe["ok_cols"]
    assert not probe["torch"]
    limit = 20 * 2**20
    assert probe["rows"] - probe["base"] < limit, probe
    assert probe["cols"] - probe["base"] < limit, probe
    assert probe["digest"] - probe["base"] < limit, probe
