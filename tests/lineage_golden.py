"""Small llama-shaped checkpoints built from numpy alone (no torch, no training), bit-for-bit the same on every
machine: a parent, a child derived from it (noise, permuted neurons and heads' rows), and an unrelated model.

They pin the ``simsa.lineage.compare/1`` JSON: the golden results in ``tests/data/lineage_golden/`` were written by
the code before the package was reshaped, and ``test_lineage_result_schema.py`` checks today's code writes the same.

    python tests/lineage_golden.py OUT_DIR   # writes the checkpoints and the results the current code gives
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HIDDEN, FFN, LAYERS, VOCAB, HEADS = 64, 160, 3, 384, 4
PAIRS = {"derived": ("child", "parent"), "independent": ("other", "parent")}
VOLATILE = ("seconds", "io")  # wall time and bytes read depend on the machine and the page cache, not the answer


def _weights(seed: int) -> dict[str, np.ndarray]:
    """A structured random model: low-rank shared directions plus noise, so layers are not white noise."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((8, HIDDEN)).astype(np.float32)

    def mat(rows: int, cols: int) -> np.ndarray:
        low = rng.standard_normal((rows, 8)).astype(np.float32) @ basis[:, :cols] if cols == HIDDEN else 0
        return (0.02 * rng.standard_normal((rows, cols)) + 0.005 * np.asarray(low)).astype(np.float32)

    w = {"model.embed_tokens.weight": mat(VOCAB, HIDDEN), "lm_head.weight": mat(VOCAB, HIDDEN),
         "model.norm.weight": (1 + 0.05 * rng.standard_normal(HIDDEN)).astype(np.float32)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w[p + "self_attn.q_proj.weight"] = mat(HIDDEN, HIDDEN)
        w[p + "self_attn.k_proj.weight"] = mat(HIDDEN // 2, HIDDEN)
        w[p + "self_attn.v_proj.weight"] = mat(HIDDEN // 2, HIDDEN)
        w[p + "self_attn.o_proj.weight"] = mat(HIDDEN, HIDDEN).T.copy()
        w[p + "mlp.gate_proj.weight"] = mat(FFN, HIDDEN)
        w[p + "mlp.up_proj.weight"] = mat(FFN, HIDDEN)
        w[p + "mlp.down_proj.weight"] = mat(FFN, HIDDEN).T.copy()
        w[p + "input_layernorm.weight"] = (1 + 0.05 * rng.standard_normal(HIDDEN)).astype(np.float32)
        w[p + "post_attention_layernorm.weight"] = (1 + 0.05 * rng.standard_normal(HIDDEN)).astype(np.float32)
    return w


def _derived(parent: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Fine-tune-like noise (30 % of each tensor's spread) and the MLP neurons of every layer permuted."""
    rng = np.random.default_rng(seed)
    child = {k: (v + 0.3 * v.std() * rng.standard_normal(v.shape)).astype(np.float32) if v.ndim == 2 else v.copy()
             for k, v in parent.items()}
    for i in range(LAYERS):
        p = f"model.layers.{i}.mlp."
        perm = rng.permutation(FFN)
        child[p + "gate_proj.weight"] = child[p + "gate_proj.weight"][perm]
        child[p + "up_proj.weight"] = child[p + "up_proj.weight"][perm]
        child[p + "down_proj.weight"] = child[p + "down_proj.weight"][:, perm]
    return child


def write_models(root: Path) -> dict[str, Path]:
    """The three checkpoints as Hugging Face folders (config.json + model.safetensors) under ``root``."""
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
              "intermediate_size": FFN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "num_key_value_heads": HEADS // 2, "vocab_size": VOCAB, "tie_word_embeddings": False,
              "rms_norm_eps": 1e-6, "torch_dtype": "float32"}
    parent = _weights(1)
    models = {"parent": parent, "child": _derived(parent, 2), "other": _weights(3)}
    paths = {}
    for name, weights in models.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
        save_file(weights, str(folder / "model.safetensors"))
        paths[name] = folder
    return paths


def stable(result: dict, paths: dict[str, Path]) -> dict:
    """The result without what depends on the machine: timings, bytes read, and where the files lie."""
    out = {k: v for k, v in result.items() if k not in VOLATILE}
    text = json.dumps(out, ensure_ascii=False)
    for name, path in paths.items():
        text = text.replace(str(path), f"<{name}>")
    return json.loads(text)


def main(out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from simsa.lineage.compare import compare_paths  # the current code's entry point

    paths = write_models(out / "models")
    for label, (cand, ref) in PAIRS.items():
        result = compare_paths(paths[cand], paths[ref])
        (out / f"{label}.json").write_text(json.dumps(stable(result, paths), indent=1, ensure_ascii=False) + "\n",
                                           encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
