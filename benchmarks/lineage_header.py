"""Opening a checkpoint whose safetensors header lists very many tensors: time and peak memory.

    .venv/bin/python benchmarks/lineage_header.py [--tensors 600000] [--dir DIR] [--stages file,checkpoint,side]

A valid file may list hundreds of thousands of tensors (a fine-grained MoE stores every expert's projections apart),
so opening must stay bounded in time and memory however long the header is. The script writes such a model — one
safetensors file of tiny MoE expert tensors (a qwen3_moe layout, so the names map to roles) plus config.json — then
opens it in a fresh child process per stage and prints wall and CPU time (CPU time is the steadier figure on a busy
machine) and peak RSS (VmHWM, or ru_maxrss where /proc is missing):

* ``file``: `SafetensorsFile` (read and validate the header);
* ``checkpoint``: `Checkpoint.open` (the above, plus FP8 scale pairing and the sorted name list);
* ``side``: `open_side` (the above, plus the role mapping of every name and the unit groups).

A child process per stage keeps each peak apart from the writer's and from the other stages'.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("file", "checkpoint", "side")
HIDDEN, EXPERT_INTER = 8, 4
PROJECTIONS = (("gate_proj", (EXPERT_INTER, HIDDEN)), ("up_proj", (EXPERT_INTER, HIDDEN)),
               ("down_proj", (HIDDEN, EXPERT_INTER)))


def layout(tensors: int) -> tuple[int, int]:
    """Layers and experts per layer so that the expert projections number about `tensors`."""
    experts = 512
    layers = max(1, round(tensors / (experts * len(PROJECTIONS))))
    return layers, experts


def tensor_specs(layers: int, experts: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes (all F16): embeddings, head, per layer attention, norms, router and every expert."""
    specs: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (64, HIDDEN)),
                                                ("lm_head.weight", (64, HIDDEN)), ("model.norm.weight", (HIDDEN,))]
    for i in range(layers):
        p = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            specs.append((p + f"self_attn.{proj}.weight", (HIDDEN, HIDDEN)))
        specs.append((p + "input_layernorm.weight", (HIDDEN,)))
        specs.append((p + "post_attention_layernorm.weight", (HIDDEN,)))
        specs.append((p + "mlp.gate.weight", (experts, HIDDEN)))
        for e in range(experts):
            for proj, shape in PROJECTIONS:
                specs.append((p + f"mlp.experts.{e}.{proj}.weight", shape))
    return specs


def write_model(root: Path, tensors: int) -> dict:
    """A directory holding config.json and one valid safetensors file with about `tensors` tiny F16 tensors."""
    layers, experts = layout(tensors)
    specs = tensor_specs(layers, experts)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in specs:
        nbytes = 2 * math.prod(shape)
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "model.safetensors"
    with open(path, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        fh.write(os.urandom(offset))  # any bytes are valid F16 codes for opening
    config = {"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "hidden_size": HIDDEN,
              "intermediate_size": 4 * HIDDEN, "moe_intermediate_size": EXPERT_INTER, "num_hidden_layers": layers,
              "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 4, "num_experts": experts,
              "num_experts_per_tok": 2, "vocab_size": 64, "tie_word_embeddings": False}
    (root / "config.json").write_text(json.dumps(config))
    return {"tensors": len(specs), "layers": layers, "experts": experts, "header_bytes": len(text),
            "file_bytes": path.stat().st_size}


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def child(stage: str, root: Path) -> dict:
    """Open the model at one stage, in this (fresh) process: wall and CPU seconds, tensors seen, peak RSS."""
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.formats.checkpoint import Checkpoint
    from simsa.lineage.formats.safetensors import SafetensorsFile

    imported = peak_rss_mib()  # the interpreter and simsa's imports, before anything is opened
    t0, c0 = time.perf_counter(), time.process_time()
    if stage == "file":
        with SafetensorsFile(root / "model.safetensors") as f:
            count = len(f.names())
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    elif stage == "checkpoint":
        with Checkpoint.open(root) as ckpt:
            count = len(ckpt.names())
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        side = open_side(root)
        try:
            count = len(side.amap.tensors)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            side.ckpt.close()
    return {"stage": stage, "seconds": seconds, "cpu_seconds": cpu, "tensors": count, "rss_mib": peak_rss_mib(),
            "imports_rss_mib": imported}


def run_child(stage: str, root: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", stage, "--dir", str(root)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr.strip()}")
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tensors", type=int, default=600_000, help="about how many tensors the header lists")
    parser.add_argument("--dir", type=Path, help="where the model is written (default: a temporary directory)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {', '.join(STAGES)}")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.dir)))
        return
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="simsa-header-") as scratch:
        root = args.dir or Path(scratch) / "model"
        t0 = time.perf_counter()
        written = write_model(root, args.tensors)
        written["write_seconds"] = time.perf_counter() - t0
        results = [run_child(stage, root) for stage in stages]
    if args.json:
        print(json.dumps({"model": written, "stages": results}, indent=2))
        return
    print(f"{written['tensors']} tensors ({written['layers']} layers x {written['experts']} experts), header "
          f"{written['header_bytes'] / 1e6:.1f} MB, file {written['file_bytes'] / 1e6:.1f} MB "
          f"(written in {written['write_seconds']:.1f} s)")
    for r in results:
        print(f"  {r['stage']:<11} {r['seconds']:7.2f} s wall {r['cpu_seconds']:7.2f} s CPU   peak RSS "
              f"{r['rss_mib']:5.0f} MiB (of which interpreter and imports {r['imports_rss_mib']:.0f} MiB)   "
              f"{r['tensors']} tensors")


if __name__ == "__main__":
    main()
