"""One reading interface: a safetensors checkpoint, the same model as a GGUF file, read over HTTP ranges, and its
fingerprint all implement `TensorReader`, and where they hold the same values they answer alike (rows, columns,
digests); what a reader cannot answer it refuses with a `CheckpointError`, and its I/O counts are real.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from hub_server import FakeHub
from simsa.errors import CheckpointError
from simsa.lineage.compare.sides import fingerprint_side, open_side
from simsa.lineage.fingerprints.build import build_fingerprint
from simsa.lineage.formats import IOStats, TensorReader
from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.digest import values_digest
from simsa.lineage.formats.fingerprint import Fingerprint, FingerprintCheckpoint, FingerprintSettings
from simsa.lineage.formats.gguf import GGUFCheckpoint
from simsa.lineage.formats.reader import NO_IO
from simsa.lineage.formats.remote import RemoteSource
from simsa.lineage.formats.safetensors import SafetensorsFile
from simsa.lineage.selftest.gguf_writer import write_gguf

HIDDEN, HEADS, KV, INTER, VOCAB, LAYERS = 64, 4, 2, 128, 96, 2
REPO = "org/tiny"


def _model() -> tuple[dict[str, np.ndarray], dict[str, Any], list[str]]:
    rng = np.random.default_rng(7)
    hd = HIDDEN // HEADS
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,),
                                          "lm_head.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (HIDDEN,), p + "post_attention_layernorm.weight": (HIDDEN,),
                       p + "self_attn.q_proj.weight": (HEADS * hd, HIDDEN),
                       p + "self_attn.k_proj.weight": (KV * hd, HIDDEN),
                       p + "self_attn.v_proj.weight": (KV * hd, HIDDEN),
                       p + "self_attn.o_proj.weight": (HIDDEN, HEADS * hd),
                       p + "mlp.gate_proj.weight": (INTER, HIDDEN), p + "mlp.up_proj.weight": (INTER, HIDDEN),
                       p + "mlp.down_proj.weight": (HIDDEN, INTER)})
    tensors = {n: ((1.0 + 0.1 * rng.standard_normal(s)) if n.endswith("norm.weight") else 0.02 * rng.standard_normal(s))
               .astype(np.float32) for n, s in shapes.items()}
    config = {"model_type": "llama", "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "num_key_value_heads": KV, "intermediate_size": INTER, "vocab_size": VOCAB,
              "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "tie_word_embeddings": False}
    tokens = ["<unk>", "<s>", "</s>"] + [f"tok{i}" for i in range(VOCAB - 3)]
    return tensors, config, tokens


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same model as a safetensors directory (with tokenizer.json), a GGUF file and a fingerprint file."""
    tensors, config, tokens = _model()
    root = tmp_path_factory.mktemp("reader")
    st_dir = root / "st"
    st_dir.mkdir()
    save_file(tensors, str(st_dir / "model.safetensors"))
    (st_dir / "config.json").write_text(json.dumps(config))
    tokenizer = {"model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(tokens)}}, "added_tokens": []}
    (st_dir / "tokenizer.json").write_text(json.dumps(tokenizer))
    gguf_path = write_gguf(root / "model.gguf", tensors, config, tokens, "F32")
    side = open_side(st_dir)
    try:
        fp = build_fingerprint(side, FingerprintSettings(ref_units=16, coords=16, paired=32))
    finally:
        side.ckpt.close()
    fp_path = root / "model.simsa-fp"
    fp.save(fp_path)
    return {"tensors": tensors, "config": config, "tokens": tokens, "st": st_dir, "gguf": gguf_path, "fp": fp_path}


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub()
    try:
        yield server
    finally:
        server.close()


def _remote(hub: FakeHub, st_dir: Path) -> Checkpoint:
    """The safetensors directory pushed to the loopback hub and opened by range requests, as `formats.hub` does."""
    sha = hub.push(REPO, {p.name: p.read_bytes() for p in st_dir.iterdir()})
    label = Path(f"{REPO}@{sha}")
    top = {p.name: p for p in st_dir.iterdir() if not p.name.endswith(".safetensors")}
    top["model.safetensors"] = label / "model.safetensors"

    def open_file(path: Path, max_header: int) -> SafetensorsFile:
        url = f"{hub.endpoint}/{REPO}/resolve/{sha}/{path.name}"
        return SafetensorsFile(RemoteSource(url, label=str(path)), max_header)

    opened = Checkpoint.from_listing(label, top, open_file=open_file)
    assert isinstance(opened, Checkpoint)
    return opened


def test_every_reader_implements_the_protocol(model: dict[str, Any], hub: FakeHub) -> None:
    total = sum(a.size for a in model["tensors"].values())
    readers: list[TensorReader] = [Checkpoint.open(model["st"]), GGUFCheckpoint(model["gguf"]),
                                   _remote(hub, model["st"]),
                                   FingerprintCheckpoint(Fingerprint.load(model["fp"]), model["fp"])]
    for reader in readers:
        with reader as same:
            assert same is reader and isinstance(reader, TensorReader)
            assert reader.names() == sorted(model["tensors"]), type(reader).__name__
            assert "model.norm.weight" in reader and "no.such.tensor" not in reader
            assert reader.shape("lm_head.weight") == (VOCAB, HIDDEN)
            assert reader.dtype("lm_head.weight") == "F32"
            assert reader.nbytes("lm_head.weight") == VOCAB * HIDDEN * 4
            assert reader.total_parameters() == total
            assert reader.config["num_attention_heads"] == HEADS
            assert isinstance(reader.path, Path) and isinstance(reader.notes, list)
            assert isinstance(reader.tokenizer_files, dict)
            stats = reader.io_stats()
            assert isinstance(stats, IOStats)
            assert list(stats.to_dict()) == ["remote", "bytes_read", "bytes_total", "requests"]
            with pytest.raises(CheckpointError, match=r"no tensor named 'no\.such\.tensor'"):
                reader.read("no.such.tensor")


def test_same_model_same_rows_columns_and_digests(model: dict[str, Any], hub: FakeHub) -> None:
    """Safetensors, GGUF (rotary q/k permutation undone) and remote reads agree bit for bit, digests included."""
    tensors = model["tensors"]
    with Checkpoint.open(model["st"]) as local, GGUFCheckpoint(model["gguf"]) as gg, _remote(hub, model["st"]) as rem:
        for name, want in tensors.items():
            for reader in (local, gg, rem):
                np.testing.assert_array_equal(reader.read(name), want, err_msg=f"{type(reader).__name__} {name}")
            exact, bf16 = local.digest(name, "exact"), local.digest(name, "bf16")
            assert gg.digest(name, "exact") == rem.digest(name, "exact") == exact, name
            assert gg.digest(name, "bf16") == rem.digest(name, "bf16") == bf16, name
            if want.ndim == 2:
                rows, cols = np.array([0, 5, -1, 2]), [1, want.shape[1] - 1]
                for reader in (local, gg, rem):
                    np.testing.assert_array_equal(reader.read_index(name, rows), want[rows])
                    np.testing.assert_array_equal(reader.read_index(name, cols, axis=1), want[:, cols])
                    np.testing.assert_array_equal(reader.read_index(name, slice(2, 6)), want[2:6])


def test_fingerprint_answers_from_what_it_keeps(model: dict[str, Any]) -> None:
    tensors = model["tensors"]
    with Checkpoint.open(model["st"]) as local, \
            FingerprintCheckpoint(Fingerprint.load(model["fp"]), model["fp"]) as fp:
        kept = [n for n in fp.names() if n.endswith("norm.weight")]
        assert kept
        for name in kept:  # norm gains are kept whole: values and both digests as the checkpoint gives them
            np.testing.assert_array_equal(fp.read(name), tensors[name])
            assert fp.digest(name, "exact") == local.digest(name, "exact")
            assert fp.digest(name, "bf16") == local.digest(name, "bf16")
            with pytest.raises(ValueError, match="read_index needs 2-D"):
                fp.read_index(name, [0])
        for name in fp.names():
            assert fp.nbytes(name) == local.nbytes(name) and fp.shape(name) == local.shape(name)
        for ask in (lambda: fp.read("lm_head.weight"), lambda: fp.read_index("lm_head.weight", [0, 1]),
                    lambda: fp.digest("lm_head.weight", "bf16")):
            with pytest.raises(CheckpointError, match=r"does not keep tensor 'lm_head\.weight'"):
                ask()
        vocab = fp.vocabulary()
        assert vocab is not None and vocab.tokens == {t: i for i, t in enumerate(model["tokens"])}


def test_fingerprint_read_index_of_a_kept_matrix() -> None:
    """A fingerprint that keeps a matrix whole answers rows and columns (and expert slices) like a checkpoint."""
    m = np.arange(24, dtype=np.float32).reshape(4, 6)
    stacked = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    meta = {"shapes": {"w": [4, 6], "e": [2, 3, 4]}, "dtypes": {"w": "F32", "e": "BF16"}, "config": {}}
    fp = FingerprintCheckpoint(Fingerprint(meta, {"tensor|w": m, "tensor|e": stacked}))
    np.testing.assert_array_equal(fp.read_index("w", [3, -4]), m[[3, 0]])
    np.testing.assert_array_equal(fp.read_index("w", slice(1, 5), axis=1), m[:, 1:5])
    np.testing.assert_array_equal(fp.read_index("e", [2], axis=0, expert=1), stacked[1][[2]])
    with pytest.raises(IndexError):
        fp.read_index("w", [4])
    with pytest.raises(IndexError, match="expert 2 out of range"):
        fp.read_index("e", [0], expert=2)
    assert fp.nbytes("e") == 2 * 3 * 4 * 2
    assert fp.io_stats() == NO_IO  # held in memory: reading it costs nothing


def test_io_stats_count_real_reads(model: dict[str, Any], hub: FakeHub) -> None:
    size = model["gguf"].stat().st_size
    with GGUFCheckpoint(model["gguf"]) as gg:
        start = gg.io_stats()
        assert start == IOStats(remote=False, bytes_read=0, bytes_total=size, requests=0)
        gg.read_index("lm_head.weight", [0, 1, 2, 50])  # two runs of rows: two positional reads
        after = gg.io_stats()
        assert after.bytes_read == 4 * HIDDEN * 4 and after.requests == 2
    assert gg.io_stats() == after  # kept after close

    with Checkpoint.open(model["st"]) as local:
        before = local.io_stats()
        assert not before.remote and before.bytes_total == (model["st"] / "model.safetensors").stat().st_size
        local.read("model.norm.weight")
        assert local.io_stats().bytes_read - before.bytes_read == HIDDEN * 4

    with _remote(hub, model["st"]) as rem:
        rem.read_index("lm_head.weight", [3])
        stats = rem.io_stats()
    assert stats.remote and 0 < stats.bytes_read < stats.bytes_total
    assert stats.bytes_read == sum(e.sent for e in hub.requests("cdn"))  # what the server sent

    lazy = FingerprintCheckpoint(Fingerprint.load(model["fp"], verify=False), model["fp"])
    with lazy:
        opened = lazy.io_stats()
        assert opened.bytes_total == model["fp"].stat().st_size and opened.requests > 0
        lazy.read("model.norm.weight")
        assert lazy.io_stats().bytes_read - opened.bytes_read == HIDDEN * 4
    eager = FingerprintCheckpoint(Fingerprint.load(model["fp"]), model["fp"])
    assert eager.io_stats() == NO_IO  # loaded (and verified) whole: comparing reads nothing further


def test_io_stats_dict_is_the_published_io_entry() -> None:
    a = IOStats(remote=False, bytes_read=10, bytes_total=100, requests=2)
    b = IOStats(remote=True, bytes_read=5, bytes_total=50, requests=1)
    assert (a + b).to_dict() == {"remote": True, "bytes_read": 15, "bytes_total": 150, "requests": 3}
    assert json.loads(json.dumps(a.to_dict())) == {"remote": False, "bytes_read": 10, "bytes_total": 100,
                                                   "requests": 2}


def test_sides_take_the_vocabulary_a_reader_carries(model: dict[str, Any]) -> None:
    """A GGUF file carries its token list; a safetensors checkpoint's comes from its tokenizer files."""
    gg = open_side(model["gguf"])
    st = open_side(model["st"])
    fp_side = fingerprint_side(Fingerprint.load(model["fp"]), str(model["fp"]))
    try:
        assert st.ckpt.vocabulary() is None and st.vocab is not None
        assert gg.vocab is not None and gg.vocab.tokens == st.vocab.tokens and gg.vocab_reason is None
        assert fp_side.vocab is not None and fp_side.vocab.tokens == st.vocab.tokens
    finally:
        for side in (gg, st, fp_side):
            side.ckpt.close()


def test_values_digest_refuses_what_float32_cannot_rebuild() -> None:
    values = np.array([1.0, 0.1], dtype=np.float32)  # 0.1 is not a bfloat16 value
    assert values_digest("t", values, "F32") != values_digest("t", values, "F32", "bf16")
    with pytest.raises(CheckpointError, match="exact digest of a BF16 tensor cannot be rebuilt"):
        values_digest("t", values, "BF16")
    with pytest.raises(CheckpointError, match="Q4_K"):
        values_digest("t", values, "Q4_K")
    with pytest.raises(ValueError, match="precision must be one of"):
        values_digest("t", values, "F32", "fp8")
