"""Hub models read remotely: range requests against a real loopback HTTP server (tests/hub_server.py).

Remote reads must equal local reads bit for bit, fetch only headers and the ranges reads need, pin the revision to
one commit, use the hub cache for small files, work offline from the cache (and fail clearly without it), send the
token only to the hub, and turn every misbehaving server answer into one clear error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import constants, hf_hub_download
from huggingface_hub.utils import close_session
from safetensors.numpy import save_file

import simsa.lineage.compare as compare_module
from hub_server import FakeHub
from simsa.errors import CheckpointError
from simsa.lineage.formats import remote
from simsa.lineage.formats.checkpoint import Checkpoint
from simsa.lineage.formats.hub import ModelRef, open_model, parse_model_ref
from simsa.lineage.formats.remote import RemoteSource
from simsa.lineage.formats.safetensors import SafetensorsFile
from simsa.lineage.stats.correspondence import SamplingSettings

HIDDEN, INTER, LAYERS, VOCAB = 256, 688, 2, 2048
REPO = "org/model"
DOWN = "model.layers.0.mlp.down_proj.weight"  # [HIDDEN, INTER] float32: rows of 2752 bytes


def _llama(seed: int, hidden: int = HIDDEN, inter: int = INTER, layers: int = LAYERS,
           vocab: int = VOCAB) -> dict[str, np.ndarray]:
    """Llama-shaped weights: attention in float16, everything else float32."""
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {"model.embed_tokens.weight": rng.standard_normal((vocab, hidden), np.float32)}
    for i in range(layers):
        p = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t[p + f"self_attn.{proj}.weight"] = (rng.standard_normal((hidden, hidden)) * 0.05).astype(np.float16)
        t[p + "mlp.gate_proj.weight"] = rng.standard_normal((inter, hidden), np.float32) * 0.05
        t[p + "mlp.up_proj.weight"] = rng.standard_normal((inter, hidden), np.float32) * 0.05
        t[p + "mlp.down_proj.weight"] = rng.standard_normal((hidden, inter), np.float32) * 0.05
        t[p + "input_layernorm.weight"] = 1 + rng.standard_normal(hidden, np.float32) * 0.01
        t[p + "post_attention_layernorm.weight"] = 1 + rng.standard_normal(hidden, np.float32) * 0.01
    t["model.norm.weight"] = 1 + rng.standard_normal(hidden, np.float32) * 0.01
    t["lm_head.weight"] = rng.standard_normal((vocab, hidden), np.float32)
    return t


def _config(hidden: int = HIDDEN, inter: int = INTER, layers: int = LAYERS, vocab: int = VOCAB) -> dict:
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
            "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": 4,
            "num_key_value_heads": 4, "vocab_size": vocab, "tie_word_embeddings": False}


def _write_sharded(root: Path, tensors: dict[str, np.ndarray], config: dict) -> Path:
    """A Hugging Face style directory: two shards, an index, config.json and a README."""
    root.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    half = len(names) // 2
    weight_map = {}
    for k, part in enumerate((names[:half], names[half:]), start=1):
        shard = f"model-0000{k}-of-00002.safetensors"
        save_file({n: tensors[n] for n in part}, str(root / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    total = sum(a.nbytes for a in tensors.values())
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    (root / "config.json").write_text(json.dumps(config))
    (root / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    (root / "README.md").write_text("# a model\n")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_sharded(tmp_path_factory.mktemp("local") / "model", _llama(0), _config())


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fake hub with huggingface_hub pointed at it: endpoint, an empty cache, no token, online."""
    server = FakeHub()
    endpoint = server.endpoint
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    # huggingface_hub reads these at import; a process started with the variables set sees the same values.
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(remote, "BACKOFF_SECONDS", 0.001)
    close_session()
    try:
        yield server
    finally:
        close_session()
        server.close()


@pytest.fixture
def pushed(hub: FakeHub, local_model: Path) -> str:
    return hub.push(REPO, _files(local_model))


def _cdn_bytes(hub: FakeHub) -> int:
    return sum(e.sent for e in hub.requests("cdn"))


def _assert_same(a: Checkpoint, b: Checkpoint) -> None:
    assert a.names() == b.names()
    rng = np.random.default_rng(1)
    for name in a.names():
        assert a.dtype(name) == b.dtype(name) and a.shape(name) == b.shape(name)
        np.testing.assert_array_equal(a.read(name), b.read(name))
        if len(a.shape(name)) == 2:
            rows, cols = a.shape(name)
            r = np.r_[rng.integers(0, rows, 5), 3, 3, -1, 0]
            c = np.r_[rng.integers(0, cols, 5), -2]
            np.testing.assert_array_equal(a.read_index(name, r, axis=0), b.read_index(name, r, axis=0))
            np.testing.assert_array_equal(a.read_index(name, c, axis=1), b.read_index(name, c, axis=1))
            np.testing.assert_array_equal(a.read_index(name, slice(1, 9)), b.read_index(name, slice(1, 9)))
    for name in a.names()[:6]:
        assert a.digest(name, "exact") == b.digest(name, "exact")
        assert a.digest(name, "bf16") == b.digest(name, "bf16")


# --------------------------------------------------------------------------- references


def test_parse_model_ref() -> None:
    assert parse_model_ref("meta-llama/Llama-3.1-8B") == ModelRef("meta-llama/Llama-3.1-8B", None)
    assert parse_model_ref("org/name@v1.0") == ModelRef("org/name", "v1.0")
    assert parse_model_ref("org/name@refs/pr/3") == ModelRef("org/name", "refs/pr/3")
    assert str(parse_model_ref("org/name@" + "a" * 40)) == "org/name@" + "a" * 40
    for bad in ("name", "a/b/c", "/abs/path", "./org/name", "org/na--me", "org/../x", "org/name@", "org/name@a b",
                "org/name@x@y", "org/.hidden", "dir/model.safetensors/"):
        assert parse_model_ref(bad) is None, bad


def test_local_path_wins_and_bad_specs_fail_clearly(
    hub: FakeHub, pushed: str, local_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model").symlink_to(local_model, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    with open_model(REPO) as ckpt:  # "org/model" exists here: a local directory, not the hub repo
        assert ckpt.io_stats().to_dict()["remote"] is False
    assert hub.requests() == []
    with pytest.raises(CheckpointError, match="no such file or directory, and not a hub reference"):
        open_model("no/such/dir")
    with pytest.raises(CheckpointError, match="no hub repository org/missing"):
        open_model("org/missing")
    with pytest.raises(CheckpointError, match="revision nope not found"):
        open_model(REPO + "@nope")
    with pytest.raises(CheckpointError, match="names revision a, but revision b"):
        open_model("org/other@a", revision="b")


# --------------------------------------------------------------------------- reading


def test_remote_reads_equal_local_bit_for_bit(hub: FakeHub, pushed: str, local_model: Path) -> None:
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        assert rem.path == Path(f"{REPO}@{pushed}")
        assert rem.config == loc.config and rem.notes == loc.notes
        assert all(str(f).startswith(f"{REPO}@{pushed}/") for f in rem.files)
        _assert_same(rem, loc)
        stats = rem.io_stats().to_dict()
    total = sum(p.stat().st_size for p in local_model.glob("*.safetensors"))
    assert stats["remote"] is True and stats["bytes_total"] == total
    assert stats["bytes_read"] == _cdn_bytes(hub)  # exact accounting: what the server sent is what we counted
    weights = [e for e in hub.requests() if e.path.endswith(".safetensors") or "/cdn/" in e.path]
    assert stats["requests"] == len(weights)


def test_only_headers_and_needed_ranges_are_fetched(hub: FakeHub, pushed: str, local_model: Path) -> None:
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        opened = rem.io_stats().to_dict()
        # two shards, one probe each; each probe is at most one block and holds the whole header
        assert opened["requests"] == 4  # hub redirect + CDN range, per shard
        assert opened["bytes_read"] <= 2 * remote.BLOCK_BYTES
        rows = rem.read_index(DOWN, [0, 1, 2, 7])  # a run of rows is one request; skipped rows are never fetched
        np.testing.assert_array_equal(rows, loc.read_index(DOWN, [0, 1, 2, 7]))
        after = rem.io_stats().to_dict()
        assert after["requests"] - opened["requests"] == 2  # the CDN location is remembered
        assert after["bytes_read"] - opened["bytes_read"] == 4 * INTER * 4
        far = rem.read_index(DOWN, [1, HIDDEN - 1])  # too far apart to coalesce: two ranges, fetched concurrently
        np.testing.assert_array_equal(far, loc.read_index(DOWN, [1, HIDDEN - 1]))
        last = rem.io_stats().to_dict()
        assert last["requests"] - after["requests"] == 2
        assert last["bytes_read"] - after["bytes_read"] == 2 * INTER * 4
        assert last["bytes_read"] < 0.1 * last["bytes_total"]
    ranged = hub.requests("cdn")
    assert ranged and all(e.range is not None and e.status == 206 for e in ranged)
    assert sum(e.sent for e in ranged) == last["bytes_read"]


def test_sampled_rows_cost_their_own_bytes(hub: FakeHub, pushed: str, local_model: Path) -> None:
    """Rows sampled across a matrix are fetched exactly: merging runs across skipped rows would fetch most of it."""
    name = "model.embed_tokens.weight"  # [VOCAB, HIDDEN] float32: rows of 1 KiB
    rows = np.sort(np.random.default_rng(3).choice(VOCAB, 400, replace=False))
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        before = rem.io_stats()
        np.testing.assert_array_equal(rem.read_index(name, rows), loc.read_index(name, rows))
        after = rem.io_stats()
    runs = 1 + int(np.count_nonzero(np.diff(rows) != 1))
    assert after.bytes_read - before.bytes_read == rows.size * HIDDEN * 4
    assert after.requests - before.requests == runs


def test_rows_read_again_cost_nothing_within_the_recent_limit(hub: FakeHub, pushed: str, local_model: Path) -> None:
    """A comparison reads its sampled rows twice (audit, then test): the second read is served from memory."""
    name = "model.embed_tokens.weight"
    rows = np.sort(np.random.default_rng(4).choice(VOCAB, 64, replace=False))
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        first = rem.read_index(name, rows)
        before = rem.io_stats()
        again = rem.read_index(name, rows)
        after = rem.io_stats()
        np.testing.assert_array_equal(again, loc.read_index(name, rows))
        np.testing.assert_array_equal(again, first)
    assert (after.requests, after.bytes_read) == (before.requests, before.bytes_read)


def test_the_recent_ranges_are_bounded(hub: FakeHub, pushed: str) -> None:
    shard = "model-00001-of-00002.safetensors"
    source = RemoteSource(f"{hub.endpoint}/{REPO}/resolve/{pushed}/{shard}", label="s", block_bytes=4096,
                          recent_bytes=3000)
    try:
        bufs = [np.empty(1000, dtype=np.uint8) for _ in range(4)]
        offsets = [200_000 + 50_000 * i for i in range(4)]  # far apart: one request each
        for off, buf in zip(offsets, bufs, strict=True):
            source.read_many([(off, buf), (off + 20_000, np.empty(10, dtype=np.uint8))])
        start = source.stats()
        newest, oldest = np.empty(1000, dtype=np.uint8), np.empty(1000, dtype=np.uint8)
        source.read_many([(offsets[3], newest), (offsets[3] + 20_000, np.empty(10, dtype=np.uint8))])
        assert source.stats().requests == start.requests  # still remembered
        source.read_many([(offsets[0], oldest), (offsets[0] + 20_000, np.empty(10, dtype=np.uint8))])
        assert source.stats().requests == start.requests + 2  # pushed out by later reads: both fetched again
        assert (newest == bufs[3]).all() and (oldest == bufs[0]).all()
    finally:
        source.close()


def test_small_neighbouring_reads_still_share_a_request(hub: FakeHub, pushed: str) -> None:
    shard = "model-00001-of-00002.safetensors"
    source = RemoteSource(f"{hub.endpoint}/{REPO}/resolve/{pushed}/{shard}", label="s", block_bytes=4096)
    try:
        start = source.stats()
        a, b, c = (np.empty(1000, dtype=np.uint8) for _ in range(3))
        source.read_many([(100_000, a), (101_200, b), (103_000, c)])  # gaps of 200 and 800 bytes
        done = source.stats()
        assert done.requests - start.requests == 2  # a gap of a fifth of a read is fetched, one of 80 % is not
        assert done.bytes_read - start.bytes_read == 3200
        whole = np.empty(4000, dtype=np.uint8)
        source.read_at(100_000, 4000, whole)
        assert (whole[:1000] == a).all() and (whole[1200:2200] == b).all() and (whole[3000:] == c).all()
    finally:
        source.close()


def test_small_reads_share_cached_blocks(hub: FakeHub, pushed: str, local_model: Path) -> None:
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        norms = [n for n in rem.names() if n.endswith("layernorm.weight")]
        before = rem.io_stats().to_dict()["requests"]
        for name in norms * 2:
            np.testing.assert_array_equal(rem.read(name), loc.read(name))
        # 1 KiB tensors: the second pass is served from cached blocks, and neighbours share a block
        assert rem.io_stats().to_dict()["requests"] - before <= len(norms)


def test_revision_is_pinned_to_one_commit(hub: FakeHub, pushed: str, local_model: Path, tmp_path: Path) -> None:
    hub.redirect_lfs = False  # every range request goes to /resolve/<revision>/, so the log shows the revision used
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        newer = _write_sharded(tmp_path / "v2", _llama(5), _config())
        second = hub.push(REPO, _files(newer))  # main moves while the first checkpoint is open
        np.testing.assert_array_equal(rem.read(DOWN), loc.read(DOWN))
    resolves = hub.requests("hub", "/resolve/")
    assert resolves and all(f"/resolve/{pushed}/" in e.path for e in resolves)
    with open_model(REPO) as again, Checkpoint.open(newer) as loc2:
        assert again.path == Path(f"{REPO}@{second}")
        np.testing.assert_array_equal(again.read(DOWN), loc2.read(DOWN))
    with open_model(REPO, revision=pushed) as old, Checkpoint.open(local_model) as loc:
        np.testing.assert_array_equal(old.read(DOWN), loc.read(DOWN))


def test_small_files_go_through_the_cache_and_weights_do_not(hub: FakeHub, pushed: str) -> None:
    with open_model(REPO) as first:
        assert first.config["model_type"] == "llama"
    cache = Path(constants.HF_HUB_CACHE)
    cached = {p.name for p in cache.rglob("*") if p.is_file() or p.is_symlink()}
    assert {"config.json", "generation_config.json", "model.safetensors.index.json"} <= cached
    assert not any(n.endswith(".safetensors") for n in cached) and "README.md" not in cached
    assert not any(e.path.endswith("README.md") for e in hub.requests())
    config_fetches = len(hub.requests("hub", "config.json"))
    with open_model(REPO) as second:
        assert second.config == first.config
    assert len(hub.requests("hub", "config.json")) == config_fetches  # served from the cache, no request


def test_safetensors_already_in_the_cache_are_read_locally(hub: FakeHub, pushed: str, local_model: Path) -> None:
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        hf_hub_download(REPO, name, revision=pushed)
    cdn_before = len(hub.requests("cdn"))
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        assert rem.io_stats().to_dict()["remote"] is False
        np.testing.assert_array_equal(rem.read(DOWN), loc.read(DOWN))
        assert Path(constants.HF_HUB_CACHE).resolve() in rem._file(DOWN).path.resolve().parents
    assert len(hub.requests("cdn")) == cdn_before


def test_offline_mode_uses_the_cache_and_fails_clearly_without(
    hub: FakeHub, pushed: str, local_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set and the local hub cache") as info:
        open_model(REPO)
    assert "\n" not in str(info.value)
    assert hub.requests() == []

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    open_model(REPO).close()  # caches refs/main and the small files, never the weights
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match=r"model-0000\d-of-00002.safetensors: HF_HUB_OFFLINE is set and this "
                                              "file is not in the local hub cache"):
        open_model(REPO)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        hf_hub_download(REPO, name, revision=pushed)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    seen = len(hub.requests())
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        assert rem.path == Path(f"{REPO}@{pushed}")
        _assert_same(rem, loc)
    assert len(hub.requests()) == seen  # nothing went out


def test_token_is_sent_to_the_hub_and_not_to_the_cdn(
    hub: FakeHub, local_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = hub.push("org/private", _files(local_model), token="hf_secret")
    with pytest.raises(CheckpointError, match="private or gated, pass a token"):
        open_model("org/private")
    with open_model("org/private", token="hf_secret") as rem, Checkpoint.open(local_model) as loc:
        assert rem.path == Path(f"org/private@{sha}")
        np.testing.assert_array_equal(rem.read(DOWN), loc.read(DOWN))
    ok = [e for e in hub.requests("hub") if e.status < 400]
    assert ok and all(e.authorization == "Bearer hf_secret" for e in ok)
    cdn = hub.requests("cdn")
    assert cdn and all(e.authorization is None for e in cdn)  # the redirect was followed, the token stayed home
    monkeypatch.setenv("HF_TOKEN", "hf_secret")  # the implicit token works too
    with open_model("org/private") as rem:
        assert rem.read(DOWN).shape == (HIDDEN, INTER)


def test_expired_cdn_url_is_resolved_again(hub: FakeHub, pushed: str, local_model: Path) -> None:
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        hub.cdn_generation += 1  # every signed URL handed out so far is now refused
        np.testing.assert_array_equal(rem.read(DOWN), loc.read(DOWN))
    assert any(e.status == 403 for e in hub.requests("cdn"))


def test_transient_server_errors_are_retried(hub: FakeHub, pushed: str, local_model: Path) -> None:
    with open_model(REPO) as rem, Checkpoint.open(local_model) as loc:
        hub.fail_next = 2
        np.testing.assert_array_equal(rem.read(DOWN), loc.read(DOWN))
    assert sum(e.status == 503 for e in hub.requests()) == 2


# --------------------------------------------------------------------------- misbehaving servers


def test_server_ignoring_range_is_refused_without_downloading(hub: FakeHub, pushed: str) -> None:
    with open_model(REPO) as rem:
        hub.ignore_range = True
        before = rem.io_stats().to_dict()["bytes_read"]
        with pytest.raises(CheckpointError, match=r"ignored the byte-range request .* refusing to download"):
            rem.read(DOWN)
        assert rem.io_stats().to_dict()["bytes_read"] == before  # the body was never read
    with pytest.raises(CheckpointError, match="ignored the byte-range request"):
        open_model(REPO)


def test_missing_file_and_revision_are_clear(hub: FakeHub, pushed: str) -> None:
    url = f"{hub.endpoint}/{REPO}/resolve/{pushed}/nope.safetensors"
    with pytest.raises(CheckpointError, match=r"^x/nope: file or revision not found \(HTTP 404"):
        RemoteSource(url, label="x/nope")
    url = f"{hub.endpoint}/{REPO}/resolve/{'0' * 40}/model-00001-of-00002.safetensors"
    with pytest.raises(CheckpointError, match="file or revision not found"):
        RemoteSource(url, label="x/shard")
    url = f"{hub.endpoint}/org/private/resolve/main/model.safetensors"
    hub.push("org/private", {"model.safetensors": b"x" * 100}, token="t")
    with pytest.raises(CheckpointError, match=r"access denied \(HTTP 401.*pass a token"):
        RemoteSource(url, label="x/private")


def test_truncated_response_fails_after_retries(hub: FakeHub, pushed: str) -> None:
    with open_model(REPO) as rem:
        hub.truncate = True
        with pytest.raises(CheckpointError, match=r"failed after 5 attempts \(response truncated: received"):
            rem.read(DOWN)
    assert sum(e.status == 206 and e.sent < 8 * 2**20 for e in hub.requests("cdn")) >= 5


def test_content_range_mismatch_and_changed_file_are_errors(hub: FakeHub, pushed: str) -> None:
    with open_model(REPO) as rem:
        hub.shift_content_range = True
        with pytest.raises(CheckpointError, match="Content-Range mismatch"):
            rem.read(DOWN)
        hub.shift_content_range = False
        hub.etag_suffix = "-v2"
        with pytest.raises(CheckpointError, match="file changed on the server between reads"):
            rem.read(DOWN)


def test_raw_views_need_a_local_file(hub: FakeHub, pushed: str) -> None:
    with open_model(REPO) as rem:
        file = rem._file(DOWN)
        with pytest.raises(CheckpointError, match=r"raw\(\) needs a local file"):
            file.raw(DOWN)
    with pytest.raises(CheckpointError, match="file is closed"):
        file.read(DOWN)
    assert file.io_stats().remote is True  # still reported after close


# --------------------------------------------------------------------------- end to end


def test_compare_reads_a_hub_model_like_a_local_one(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = {"hidden": 64, "inter": 128, "layers": 3, "vocab": 256}
    parent = _llama(11, **shape)
    rng = np.random.default_rng(12)
    child = {k: (v + rng.standard_normal(v.shape).astype(v.dtype) * v.std() * 0.3) if v.ndim == 2 else v
             for k, v in parent.items()}
    config = _config(**shape)
    parent_dir = _write_sharded(tmp_path / "parent", parent, config)
    child_dir = _write_sharded(tmp_path / "child", child, config)
    hub.push("org/child", _files(child_dir))
    settings = SamplingSettings(draws=16)

    local = compare_module.compare_paths(child_dir, parent_dir, settings=settings)
    cand = compare_module.open_side("org/child")  # a hub reference: opened through open_model, read by ranges
    ref = compare_module.open_side(parent_dir)
    try:
        remote_result = compare_module.compare(cand, ref, settings=settings)
        stats = cand.ckpt.io_stats().to_dict()
    finally:
        cand.ckpt.close()
        ref.ckpt.close()
    assert stats["remote"] and 0 < stats["bytes_read"] <= stats["bytes_total"]

    def strip(result: dict) -> dict:
        return {k: v for k, v in result.items() if k not in ("seconds", "candidate", "io")}

    assert remote_result["verdict"] == local["verdict"] == "derived"
    assert json.dumps(strip(remote_result), sort_keys=True) == json.dumps(strip(local), sort_keys=True)
    assert remote_result["io"]["candidate"]["remote"] is True and local["io"]["candidate"]["remote"] is False


def test_file_replaced_under_a_branch_url_is_caught(hub: FakeHub, pushed: str, local_model: Path) -> None:
    """A branch URL can change under a reader (open_model pins the sha so it never uses one); the checks catch it."""
    hub.redirect_lfs = False
    shard = "model-00001-of-00002.safetensors"
    source = RemoteSource(f"{hub.endpoint}/{REPO}/resolve/main/{shard}", label="branch/shard", block_bytes=4096)
    size = source.size
    hub.push(REPO, {shard: (local_model / shard).read_bytes()[: size // 2]})  # main now has a shorter file
    buf = np.empty(8192, dtype=np.uint8)
    with pytest.raises(CheckpointError, match=r"range not satisfiable \(HTTP 416"):
        source.read_at(size - 8192, 8192, buf)
    with pytest.raises(CheckpointError, match=f"file size changed between requests \\({size} -> {size // 2} bytes"):
        source.read_at(8192, 8192, buf)


def test_tiny_blocks_and_parts_still_read_exactly(hub: FakeHub, pushed: str, local_model: Path) -> None:
    """Headers longer than a block and reads split into concurrent parts: same bytes, each fetched about once."""
    shard = "model-00002-of-00002.safetensors"
    url = f"{hub.endpoint}/{REPO}/resolve/{pushed}/{shard}"
    source = RemoteSource(url, label="tiny", block_bytes=1024, part_bytes=64 * 2**10, cache_bytes=8 * 2**10)
    with SafetensorsFile(source) as rem, SafetensorsFile(local_model / shard) as loc:
        assert rem._data_start > 1024  # the header spans several blocks
        for name in loc.names():
            np.testing.assert_array_equal(rem.read(name), loc.read(name))
        stats = rem.io_stats()
    assert stats.bytes_total <= stats.bytes_read <= 1.05 * stats.bytes_total
    assert stats.requests > stats.bytes_total // (64 * 2**10)  # large reads were split into parts


def test_environment_applies_in_a_fresh_process(hub: FakeHub, local_model: Path, tmp_path: Path) -> None:
    """HF_ENDPOINT, HF_HUB_CACHE, HF_TOKEN and HF_HUB_OFFLINE as a process started with them sees them."""
    sha = hub.push("org/private", _files(local_model), token="hf_env")
    script = (
        "import json\n"
        "from simsa.lineage.formats.hub import open_model\n"
        "from simsa.errors import CheckpointError\n"
        "try:\n"
        "    with open_model('org/private') as c:\n"
        "        c.read('model.norm.weight')\n"
        "        print(json.dumps([str(c.path), c.io_stats().to_dict()]))\n"
        "except CheckpointError as e:\n"
        "    print(json.dumps(['error', str(e)]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "proc-home"), HF_TOKEN="hf_env")

    def run(**extra: str) -> list:
        done = subprocess.run([sys.executable, "-c", script], env={**env, **extra}, capture_output=True, text=True,
                              timeout=120, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    path, stats = run()
    assert path == f"org/private@{sha}" and stats["remote"] and stats["bytes_read"] < stats["bytes_total"]
    assert any(e.authorization == "Bearer hf_env" for e in hub.requests("hub"))
    assert (tmp_path / "proc-home" / "hub" / "models--org--private").is_dir()
    kind, message = run(HF_HUB_OFFLINE="1")
    assert kind == "error" and "HF_HUB_OFFLINE is set and this file is not in the local hub cache" in message
