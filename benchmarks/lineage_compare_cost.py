"""Time and peak memory of `simsa lineage compare` on checkpoints of a realistic size.

    .venv/bin/python benchmarks/lineage_compare_cost.py [--hidden 2048] [--ffn 5632] [--layers 16] [--vocab 32000]
                                                   [--encoder] [--small] [--repeat N] [--dir DIR] [--json]

Writes (once, cached in DIR) three checkpoints in Hugging Face layout with random weights: a reference, a derived
candidate (the reference plus noise, neurons permuted) and an independent one; then runs the real CLI on
(derived, reference) and (independent, reference) in fresh processes and prints wall time (process start included)
and peak RSS of each. Random weights stand in for trained ones: the cost depends on shapes, not values.

By default the models are llama-shaped in bf16. ``--encoder`` writes BERT-shaped float32 encoders instead (GELU MLP,
biases, LayerNorms, position and token-type embeddings). ``--small`` is the small-pair goal of the scale bench: a
6-layer, 384-wide, 30k-vocabulary encoder (22 M parameters, the shape of the popular MiniLM sentence encoders),
compared in at most ``SMALL_GOAL_SECONDS`` of wall time.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.lineage_child import compare_in_child

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


SMALL = {"hidden": 384, "ffn": 1536, "layers": 6, "vocab": 30522}  # the 22 M-parameter encoder of the goal
SMALL_GOAL_SECONDS = 3.0
ENCODER_POSITIONS = 512


def encoder_shapes(hidden: int, ffn: int, layers: int, vocab: int) -> dict[str, tuple[int, ...]]:
    """A BERT encoder's tensors (``BertModel`` names under ``bert.``; the MLM head tied to the embeddings)."""
    e = "bert.embeddings."
    out: dict[str, tuple[int, ...]] = {e + "word_embeddings.weight": (vocab, hidden),
                                       e + "position_embeddings.weight": (ENCODER_POSITIONS, hidden),
                                       e + "token_type_embeddings.weight": (2, hidden),
                                       e + "LayerNorm.weight": (hidden,), e + "LayerNorm.bias": (hidden,)}
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for proj in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            out |= {p + proj + ".weight": (hidden, hidden), p + proj + ".bias": (hidden,)}
        out |= {p + "intermediate.dense.weight": (ffn, hidden), p + "intermediate.dense.bias": (ffn,),
                p + "output.dense.weight": (hidden, ffn), p + "output.dense.bias": (hidden,)}
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            out |= {p + norm + ".weight": (hidden,), p + norm + ".bias": (hidden,)}
    return out


def write_safetensors(path: Path, tensors: dict[str, tuple[int, ...]],
                      make: Callable[[str, tuple[int, ...]], np.ndarray], dtype: str = "BF16") -> None:
    """A safetensors file (BF16 or F32) written tensor by tensor, so memory stays at one tensor."""
    size = {"BF16": 2, "F32": 4}[dtype]
    header, offset = {}, 0
    for name, shape in tensors.items():
        n = int(np.prod(shape)) * size
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name, shape in tensors.items():
            values = make(name, shape).astype(np.float32)
            f.write(bf16_bits(values).tobytes() if dtype == "BF16" else values.tobytes())


def build(root: Path, hidden: int, ffn: int, layers: int, vocab: int, encoder: bool = False) -> dict[str, Path]:
    if encoder:
        tensors = encoder_shapes(hidden, ffn, layers, vocab)
        config: dict = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": hidden,
                        "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": hidden // 32,
                        "max_position_embeddings": ENCODER_POSITIONS, "type_vocab_size": 2, "vocab_size": vocab,
                        "hidden_act": "gelu", "torch_dtype": "float32"}
        mlp, dtype = re.compile(r"^(.*\.layer\.\d+)\.(?:intermediate|output)\.dense\.weight$"), "F32"
    else:
        tensors = shapes(hidden, ffn, layers, vocab)
        config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
                  "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": hidden // 64,
                  "num_key_value_heads": hidden // 256, "head_dim": 64, "vocab_size": vocab,
                  "torch_dtype": "bfloat16"}
        mlp, dtype = re.compile(r"^(.*)\.mlp\.\w+\.weight$"), "BF16"
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
                return (1 if name.endswith("weight") else 0) + 0.1 * base
            base *= 0.02
            if model == "derived":
                noise = np.random.default_rng([7, zlib.crc32(name.encode())]).standard_normal(shape, dtype=np.float32)
                base += 0.01 * noise
                hit = mlp.match(name)
                if hit is not None:  # permute neurons consistently within the layer
                    perm = np.random.default_rng(zlib.crc32(hit.group(1).encode())).permutation(ffn)
                    base = base[:, perm] if shape[1] == ffn else base[perm]
            return base

        write_safetensors(out / "model.safetensors.tmp", tensors, make, dtype)
        (out / "model.safetensors.tmp").rename(out / "model.safetensors")
        (out / "config.json").write_text(json.dumps(config))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--ffn", type=int, default=5632)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--encoder", action="store_true", help="BERT-shaped float32 encoders instead of llama")
    parser.add_argument("--small", action="store_true",
                        help="the small-pair goal: a 6-layer, 384-wide, 30k-vocabulary encoder (22 M parameters)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per pair; the fastest wall time is reported")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "simsa-lineage-cost")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.small:
        args.encoder = True
        for key, value in SMALL.items():
            setattr(args, key, value)
    kind = "bert" if args.encoder else "llama"
    root = args.dir / f"{kind}-h{args.hidden}-f{args.ffn}-l{args.layers}-v{args.vocab}"
    t0 = time.perf_counter()
    paths = build(root, args.hidden, args.ffn, args.layers, args.vocab, encoder=args.encoder)
    built = time.perf_counter() - t0
    rows = []
    for cand in ("derived", "independent"):
        runs = [compare_in_child(paths[cand], paths["reference"]) for _ in range(max(1, args.repeat))]
        result, wall, rss = min(runs, key=lambda r: r[1])
        rows.append({"pair": f"{cand} vs reference", "verdict": result["verdict"], "log10_p": result["log10_p"],
                     "compute_seconds": result["seconds"], "wall_seconds": round(wall, 2),
                     "walls": [round(r[1], 2) for r in runs], "peak_rss_mib": round(rss),
                     "parameters": result["candidate"]["parameters"]})
    goal = {"wall_seconds": SMALL_GOAL_SECONDS, "met": all(r["wall_seconds"] <= SMALL_GOAL_SECONDS for r in rows)}
    if args.json:
        print(json.dumps({"rows": rows, "build_seconds": round(built, 1), **({"goal": goal} if args.small else {})},
                         indent=2))
        return
    for r in rows:
        print(f"{r['pair']:24s} {r['parameters'] / 1e9:.3f}B params  verdict {r['verdict']:12s} log10 p "
              f"{r['log10_p']:>10}  {r['compute_seconds']:7.2f} s compute  {r['wall_seconds']:7.2f} s wall  "
              f"peak RSS {r['peak_rss_mib']} MiB")
    if args.small:
        print(f"goal: each pair <= {SMALL_GOAL_SECONDS:.0f} s wall, process start included: "
              f"{'met' if goal['met'] else 'not met'}")


if __name__ == "__main__":
    main()
