"""Time and peak memory of `simsa lineage compare` on llama-shaped checkpoints of a realistic size.

    .venv/bin/python benchmarks/lineage_compare_cost.py [--hidden 2048] [--ffn 5632] [--layers 16] [--vocab 32000]
                                                   [--dir DIR] [--json]

Writes (once, cached in DIR) three bf16 checkpoints in Hugging Face layout with random weights: a reference, a
derived candidate (the reference plus noise, neurons permuted) and an independent one; then runs the real CLI on
(derived, reference) and (independent, reference) in fresh processes and prints wall time and peak RSS of each.
Random weights stand in for trained ones: the cost depends on shapes, not values.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.lineage_child import compare_in_child

from simsa.lineage.formats.dtypes import bf16_bits


def shapes(hidden: int, ffn: int, layers: int, vocab: int) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, hidden), "lm_head.weight": (vocab, hidden),
                                       "model.norm.weight": (hidden,)}
    kv = hidden // 4
    for i in range(layers):
        p = f"model.layers.{i}."
        out |= {p + "self_attn.q_proj.weight": (hidden, hidden), p + "self_attn.k_proj.weight": (kv, hidden),
                p + "self_attn.v_proj.weight": (kv, hidden), p + "self_attn.o_proj.weight": (hidden, hidden),
                p + "mlp.gate_proj.weight": (ffn, hidden), p + "mlp.up_proj.weight": (ffn, hidden),
                p + "mlp.down_proj.weight": (hidden, ffn), p + "input_layernorm.weight": (hidden,),
                p + "post_attention_layernorm.weight": (hidden,)}
    return out


def write_bf16(path: Path, tensors: dict[str, tuple[int, ...]], make) -> None:  # type: ignore[no-untyped-def]
    """A safetensors file written tensor by tensor, so memory stays at one tensor."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name, shape in tensors.items():
            f.write(bf16_bits(make(name, shape).astype(np.float32)).tobytes())


def build(root: Path, hidden: int, ffn: int, layers: int, vocab: int) -> dict[str, Path]:
    tensors = shapes(hidden, ffn, layers, vocab)
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
              "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": hidden // 64,
              "num_key_value_heads": hidden // 256, "head_dim": 64, "vocab_size": vocab, "torch_dtype": "bfloat16"}
    paths = {}
    for model in ("reference", "derived", "independent"):
        out = root / model
        paths[model] = out
        if (out / "model.safetensors").exists():
            continue
        out.mkdir(parents=True, exist_ok=True)

        def make(name: str, shape: tuple[int, ...], model: str = model) -> np.ndarray:
            seed = 1 if model == "independent" else 0
            base = np.random.default_rng([seed, zlib.crc32(name.encode())]).standard_normal(shape, dtype=np.float32)
            if len(shape) == 1:
                return 1 + 0.1 * base
            base *= 0.02
            if model == "derived":
                noise = np.random.default_rng([7, zlib.crc32(name.encode())]).standard_normal(shape, dtype=np.float32)
                base += 0.01 * noise
                if ".mlp." in name:  # permute neurons consistently within the layer
                    perm = np.random.default_rng(zlib.crc32(name.split(".mlp.")[0].encode())).permutation(ffn)
                    base = base[:, perm] if "down_proj" in name else base[perm]
            return base

        write_bf16(out / "model.safetensors.tmp", tensors, make)
        (out / "model.safetensors.tmp").rename(out / "model.safetensors")
        (out / "config.json").write_text(json.dumps(config))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--ffn", type=int, default=5632)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "simsa-lineage-cost")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = args.dir / f"h{args.hidden}-f{args.ffn}-l{args.layers}-v{args.vocab}"
    t0 = time.perf_counter()
    paths = build(root, args.hidden, args.ffn, args.layers, args.vocab)
    built = time.perf_counter() - t0
    rows = []
    for cand in ("derived", "independent"):
        result, wall, rss = compare_in_child(paths[cand], paths["reference"])
        rows.append({"pair": f"{cand} vs reference", "verdict": result["verdict"], "log10_p": result["log10_p"],
                     "compute_seconds": result["seconds"], "wall_seconds": round(wall, 1),
                     "peak_rss_mib": round(rss), "parameters": result["candidate"]["parameters"]})
    if args.json:
        print(json.dumps({"rows": rows, "build_seconds": round(built, 1)}, indent=2))
        return
    for r in rows:
        print(f"{r['pair']:24s} {r['parameters'] / 1e9:.2f}B params  verdict {r['verdict']:12s} log10 p "
              f"{r['log10_p']:>10}  {r['compute_seconds']:7.1f} s compute  {r['wall_seconds']:7.1f} s wall  "
              f"peak RSS {r['peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
