"""`simsa lineage inspect|compare` through the real command line, on zoo models and hostile files."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file


def simsa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simsa.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


def test_inspect_json_maps_every_tensor(lineage_zoo) -> None:  # type: ignore[no-untyped-def]
    for name in ("llama-s0", "moe-s0", "bert-s0"):
        out = simsa("lineage", "inspect", str(lineage_zoo.models[name]), "--json")
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["unmapped"] == [], (name, info["unmapped"])
        assert info["stacks"]["text"]["num_layers"] >= 3
        assert sum(c["parameters"] for c in info["components"].values()) == info["parameters"]
        assert "tokenizer.json" in info["tokenizer_files"]
        kinds = {(t["kind"], t["layer"]) for t in info["tensors"]}
        assert ("attn.q", 0) in kinds and ("embed.tokens", None) in kinds
        if name == "moe-s0":
            assert any(t["kind"] == "moe.expert.up" and t["expert"] == 15 for t in info["tensors"])


def test_inspect_table(lineage_zoo) -> None:  # type: ignore[no-untyped-def]
    out = simsa("lineage", "inspect", str(lineage_zoo.models["moe-s0"]), "--tensors")
    assert out.returncode == 0, out.stderr
    assert "text.experts" in out.stdout and "text.router" in out.stdout and "Unmapped tensors: 0" in out.stdout
    assert "moe.router" in out.stdout and "Tensor roles" in out.stdout


def _pair(zoo, derivation: str):  # type: ignore[no-untyped-def]
    return next(p for p in zoo.pairs if p.derivation == derivation and p.family == "llama")


def test_compare_json_schema_and_html_report(lineage_zoo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pair = _pair(lineage_zoo, "layer-dropped")
    report = tmp_path / "lineage.html"
    saved = tmp_path / "result.json"
    out = simsa("lineage", "compare", str(lineage_zoo.models[pair.candidate]), str(lineage_zoo.models[pair.reference]),
                "--json", "--report", str(report), "-o", str(saved))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert json.loads(saved.read_text()) == result
    assert result["schema"] == "simsa.lineage.compare/1"
    assert result["verdict"] == "derived" and result["log10_p"] <= -10
    assert {"tokenizer", "architecture", "naive", "components", "summary"} <= set(result)
    mlp = next(c for c in result["components"] if c["name"] == "text.mlp")
    assert {"name", "verdict", "log10_p", "layer_map"} <= set(mlp)
    assert [[a, b] for a, b, _ in mlp["layer_map"]] == [[0, 0], [1, 1], [2, 3]]
    assert all(lp <= -6 for _, _, lp in mlp["layer_map"])
    assert result["architecture"]["different"]["num_hidden_layers"] == {"candidate": 3, "reference": 4}
    assert result["tokenizer"]["jaccard"] == 1.0
    page = report.read_text()
    assert page.count("<svg") >= 2 and "Evidence heatmap for text.mlp" in page
    assert "derived" in page and "not evidence" in page.lower()


def test_compare_table_output_for_independent_models(lineage_zoo) -> None:  # type: ignore[no-untyped-def]
    out = simsa("lineage", "compare", str(lineage_zoo.models["llama-s1"]), str(lineage_zoo.models["llama-s0"]))
    assert out.returncode == 0, out.stderr
    assert re.search(r"Verdict: (independent|inconclusive)", out.stdout)
    assert "never evidence" in out.stdout


def _header_file(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


HOSTILE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-10]),
    "header beyond file": lambda p: p.write_bytes(struct.pack("<Q", 10_000) + b"{}"),
    "overlap": lambda p: _header_file(p, json.dumps({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode(), b"\0" * 12),
    "absurd shape": lambda p: _header_file(p, json.dumps({
        "a": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 16]}}).encode(), b"\0" * 16),
    "unknown dtype": lambda p: _header_file(p, json.dumps({
        "a": {"dtype": "Q4_K", "shape": [4], "data_offsets": [0, 16]}}).encode(), b"\0" * 16),
    "non-UTF-8 header": lambda p: _header_file(p, b'{"\xff\xfe": 1}'),
    "not JSON": lambda p: _header_file(p, b"this is not json"),
    "huge header length": lambda p: p.write_bytes(struct.pack("<Q", 2 ** 62) + b"{}"),
    "pickle": None,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_files_give_one_clear_line(kind: str, tmp_path: Path) -> None:
    if kind == "pickle":
        bad = tmp_path / "model"
        bad.mkdir()
        (bad / "pytorch_model.bin").write_bytes(b"\x80\x04\x95 not really a pickle")
        (bad / "config.json").write_text("{}")
    else:
        bad = tmp_path / "bad.safetensors"
        save_file({"w": np.ones((4, 4), dtype=np.float32)}, str(bad))
        HOSTILE[kind](bad)
    for args in (("lineage", "inspect", str(bad)), ("lineage", "compare", str(bad), str(bad), "--json")):
        out = simsa(*args)
        assert out.returncode == 2, (kind, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (kind, out.stderr)
        if "--json" in args:
            assert json.loads(out.stdout)["exit_code"] == 2
    if kind == "pickle":
        assert "unpickl" in out.stderr.lower() and "safetensors" in out.stderr


ODD_TOKENIZER = '{"model": {"vocab": 7, "merges": 3}, "added_tokens": 5}'


@pytest.mark.parametrize("content", ["[1, 2, 3]", "{not json", ODD_TOKENIZER])
def test_hostile_tokenizer_files(content: str, tmp_path: Path) -> None:
    """A broken tokenizer.json beside good weights: the weights are compared, the tokenizer section says why not."""
    model = tmp_path / "m"
    model.mkdir()
    save_file({"model.embed_tokens.weight": np.ones((32, 16), dtype=np.float32)}, str(model / "model.safetensors"))
    (model / "tokenizer.json").write_text(content)
    out = simsa("lineage", "compare", str(model), str(model), "--json")
    assert "Traceback" not in out.stderr
    assert out.returncode == 0, out.stderr  # the weights are still compared
    tok = json.loads(out.stdout)["tokenizer"]
    if content == ODD_TOKENIZER:
        assert tok["candidate"]["size"] == 0
    else:
        assert tok["available"] is False and "tokenizer.json" in json.dumps(tok)
