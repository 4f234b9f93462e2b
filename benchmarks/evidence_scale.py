"""Time and peak memory of `simsa evidence verify` on a package whose step 0 is 1-billion-parameter-shaped.

    .venv/bin/python benchmarks/evidence_scale.py [--dir DIR] [--keep] [--json]

Writes a Llama-3.2-1B-shaped step-0 checkpoint (1.24 B parameters, bf16, tied embeddings, 2.5 GB) drawn from the
declared normal(0, 0.02) initialisation with norm gains of 1, a training log whose first loss is ln(vocabulary size),
a tokenizer and data manifest, and `evidence.toml` with every sha256. Then runs `simsa evidence verify` in a child
process twice: cold (the package dropped from the page cache first) and warm, and prints the wall time, the child's
peak RSS and each check's outcome. Figures are for the note of the issue, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lineage_scale import drop_cache

from simsa.evidence.manifest import Init, manifest_text
from simsa.lineage.formats.safetensors_write import TensorSpec, encode, write_safetensors

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN = 128_256, 2048, 16, 32, 8, 64, 8192
STD = 0.02
BATCH, SEQ = 512, 4096


def shapes() -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN), "model.norm.weight": (HIDDEN,)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        out |= {p + "self_attn.q_proj.weight": (HEADS * HEAD_DIM, HIDDEN),
                p + "self_attn.k_proj.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
                p + "self_attn.v_proj.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
                p + "self_attn.o_proj.weight": (HIDDEN, HEADS * HEAD_DIM),
                p + "mlp.gate_proj.weight": (FFN, HIDDEN), p + "mlp.up_proj.weight": (FFN, HIDDEN),
                p + "mlp.down_proj.weight": (HIDDEN, FFN),
                p + "input_layernorm.weight": (HIDDEN,), p + "post_attention_layernorm.weight": (HIDDEN,)}
    return out


def write_step0(folder: Path) -> int:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    specs = [TensorSpec(n, "BF16", s) for n, s in shapes().items()]

    def produce(spec: TensorSpec) -> np.ndarray:
        if len(spec.shape) == 1:
            return encode(np.ones(spec.shape, dtype=np.float32), "BF16")
        return encode(rng.standard_normal(spec.shape, dtype=np.float32) * STD, "BF16")

    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": VOCAB,
              "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
              "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
              "tie_word_embeddings": True, "torch_dtype": "bfloat16", "initializer_range": STD}
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    write_safetensors(folder / "model.safetensors", specs, produce, {"format": "pt"})
    return sum(math.prod(s.shape) for s in specs)


def write_package(root: Path) -> int:
    params = write_step0(root / "checkpoints" / "step-0")
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": {}}}),
                                                        encoding="utf-8")
    (root / "data-manifest.jsonl").write_text(json.dumps({"source": "web", "sha256": "0" * 64}) + "\n",
                                              encoding="utf-8")
    (root / "logs").mkdir()
    first = math.log(VOCAB)
    rows = ["step,train/loss,tokens"] + [f"{s},{first * math.exp(-s / 400) + 2.2 * (1 - math.exp(-s / 400)):.4f},"
                                          f"{s * BATCH * SEQ}" for s in range(1, 1001)]
    (root / "logs" / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    normal = Init(distribution="normal", std=STD)
    text = manifest_text(root, model="bench-1b", tokenizer="tokenizer/tokenizer.json", log="logs/train.csv",
                         log_format="csv", data_manifest="data-manifest.jsonl", global_batch_size=BATCH,
                         sequence_length=SEQ, checkpoints=[(0, "checkpoints/step-0")],
                         init={k: normal for k in ("embedding", "attention", "mlp")})
    (root / "evidence.toml").write_text(text, encoding="utf-8")
    return params


# The child runs the command line as `simsa` would and reports its own peak RSS (VmHWM) on its last stderr line.
CHILD = """import sys
from simsa.cli.main import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))
sys.stderr.write('VMHWM ' + hwm.split()[1] + chr(10))
sys.exit(code)
"""


def run_verify(root: Path) -> dict:
    """One `simsa evidence verify --json` in a child: its wall time, peak RSS and checks."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, "evidence", "verify", str(root), "--json"],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"verify failed ({done.returncode}): {done.stderr[-2000:]}")
    hwm = [line for line in done.stderr.splitlines() if line.startswith("VMHWM ")]
    doc = json.loads(done.stdout)
    return {"wall_seconds": wall, "peak_rss_mib": int(hwm[-1].split()[1]) / 1024 if hwm else None,
            "exit_code": done.returncode, "checks": {c["id"]: c["status"] for c in doc["checks"]}, "ok": doc["ok"],
            "seconds_reported": doc["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to write the package (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the package afterwards")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="simsa-evidence-1b-"))
    pkg = root / "package"
    shutil.rmtree(pkg, ignore_errors=True)
    try:
        t0 = time.perf_counter()
        params = write_package(pkg)
        built = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in pkg.rglob("*") if p.is_file())
        drop_cache([p for p in pkg.rglob("*") if p.is_file()])
        cold = run_verify(pkg)
        warm = run_verify(pkg)
        figures = {"parameters": params, "package_bytes": size, "build_seconds": built, "cold": cold, "warm": warm,
                   "sha256_of_this_script": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]}
        if args.json:
            print(json.dumps(figures, indent=1))
            return
        print(f"package: {params / 1e9:.2f} B parameters (bf16), {size / 1e9:.2f} GB, written in {built:.0f} s")
        for mode in ("cold", "warm"):
            r = figures[mode]
            print(f"verify ({mode}): {r['wall_seconds']:.1f} s wall, peak RSS {r['peak_rss_mib']:.0f} MiB, "
                  f"ok={r['ok']}; " + ", ".join(f"{k} {v}" for k, v in r["checks"].items()))
    finally:
        if not args.keep:
            shutil.rmtree(pkg, ignore_errors=True)


if __name__ == "__main__":
    main()
