"""Throughput of fingerprinting many checkpoints through the executor seam: serial against Ray on this machine.

    .venv/bin/python benchmarks/scale_out.py [--models 200] [--cpus 2] [--work DIR] [--json]

Writes N synthetic Llama-shaped checkpoints once (random weights; `--hidden`, `--layers`, `--vocab` set their size),
fingerprints them all with `--executor serial` and then with `--executor ray` (a local instance of `--cpus` CPUs),
each into its own registry with no stored results, checks that both registries hold byte-identical fingerprints,
and prints wall time, checkpoints per second, the speed-up, and the peak memory of every Ray worker and of the
serial process. Needs Ray (`pip install 'simsa[ray]'`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from simsa.lineage.fingerprints.registry import Registry
from simsa.lineage.fingerprints.service import fingerprint_many
from simsa.lineage.formats.fingerprint import FingerprintSettings
from simsa.scale import open_executor


def write_model(root: Path, seed: int, *, hidden: int = 64, layers: int = 2, vocab: int = 512) -> Path:
    """A Llama-shaped checkpoint of random float32 weights: config.json and one model.safetensors."""
    rng = np.random.default_rng(seed)
    inter = hidden * 2
    tensors = {"model.embed_tokens.weight": rng.normal(0, 0.02, (vocab, hidden)),
               "lm_head.weight": rng.normal(0, 0.02, (vocab, hidden)),
               "model.norm.weight": np.ones(hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors |= {p + "input_layernorm.weight": np.ones(hidden),
                    p + "post_attention_layernorm.weight": np.ones(hidden)}
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[p + f"self_attn.{name}.weight"] = rng.normal(0, 0.02, (hidden, hidden))
        tensors |= {p + "mlp.gate_proj.weight": rng.normal(0, 0.02, (inter, hidden)),
                    p + "mlp.up_proj.weight": rng.normal(0, 0.02, (inter, hidden)),
                    p + "mlp.down_proj.weight": rng.normal(0, 0.02, (hidden, inter))}
    root.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(root / "model.safetensors"))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "num_hidden_layers": layers, "intermediate_size": inter, "num_attention_heads": 4,
              "num_key_value_heads": 4, "vocab_size": vocab, "tie_word_embeddings": False}
    (root / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return root


def _digests(registry: Registry) -> dict[str, str]:
    return {n: hashlib.sha256((registry.root / e["file"]).read_bytes()).hexdigest()
            for n, e in registry.entries.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--work", type=Path, default=Path("scale-out-bench"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    models_root = args.work / "models"
    marker = models_root / f"done-{args.models}-{args.hidden}-{args.layers}-{args.vocab}"
    if not marker.exists():
        shutil.rmtree(models_root, ignore_errors=True)
        for i in range(args.models):
            write_model(models_root / f"c{i:03d}", seed=i, hidden=args.hidden, layers=args.layers, vocab=args.vocab)
        marker.touch()
    models = [(str(models_root / f"c{i:03d}"), f"c{i:03d}") for i in range(args.models)]
    settings = FingerprintSettings()
    figures: dict[str, dict] = {}
    registries: dict[str, Registry] = {}
    for kind in ("serial", "ray"):
        root = args.work / f"registry-{kind}"
        shutil.rmtree(root, ignore_errors=True)
        registry = Registry.open(root, create=True)
        started = time.perf_counter()
        with open_executor(kind, num_cpus=args.cpus) as executor:
            ready = time.perf_counter()
            run = fingerprint_many(models, settings, registry, executor, store=None)
        wall = time.perf_counter() - started
        peaks: dict[int, int] = {}
        for r in run.results:
            if r.value:
                pid = int(r.value["worker_pid"])
                peaks[pid] = max(peaks.get(pid, 0), int(r.value["worker_peak_rss_bytes"]))
        figures[kind] = {"seconds": round(wall, 2), "start_seconds": round(ready - started, 2),
                         "per_second": round(len(models) / wall, 2), "failed": len(run.failed),
                         "workers": len(peaks),
                         "peak_rss_mib_per_worker": sorted(round(v / 2**20) for v in peaks.values())}
        registries[kind] = registry
    figures["identical"] = _digests(registries["serial"]) == _digests(registries["ray"])  # type: ignore[assignment]
    figures["speedup"] = round(figures["serial"]["seconds"] / figures["ray"]["seconds"], 2)  # type: ignore[assignment]
    figures["driver_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # type: ignore[assignment]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for kind in ("serial", "ray"):
            f = figures[kind]
            print(f"{kind:>6}: {args.models} checkpoints in {f['seconds']} s ({f['per_second']}/s; start "
                  f"{f['start_seconds']} s), {f['workers']} worker(s), peak RSS per worker "
                  f"{f['peak_rss_mib_per_worker']} MiB, failed {f['failed']}")
        print(f"speed-up {figures['speedup']}×; byte-identical registries: {figures['identical']}; driver peak RSS "
              f"{figures['driver_peak_rss_mib']} MiB")
    return 0 if figures["identical"] and not figures["serial"]["failed"] and not figures["ray"]["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
