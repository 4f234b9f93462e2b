"""The run manifest: everything needed to reproduce a run's numbers, with or without simsa.

It records the engine and its version, each task's version and data hashes, the model's content hash or pinned
revision, the chat template, seeds, backend settings and the hardware — and `lm_eval_command`, a bare `lm_eval`
command line that reproduces the numbers with lm-evaluation-harness alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from simsa.bench.backends import Backend

Seeds = tuple[int, int, int, int]
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def hardware() -> dict[str, Any]:
    """The machine the numbers came from (floating-point results can differ across devices)."""
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
                            "python": sys.version.split()[0]}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
            if torch.cuda.is_available() else []
    except ImportError:
        info["torch"] = None
    return info


def _arg_string(args: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items() if k != "api_key")


def lm_eval_command(tasks: list[str], backend: Backend, *, include_path: Path, output_types: dict[str, str],
                    limit: int | float | None, num_fewshot: int | None, apply_chat_template: bool,
                    gen_kwargs: str | None, seeds: Seeds, output_path: str = "lm-eval-out") -> str:
    """A bare `lm_eval` command line (two, joined by `&&`, when scoring and generation use different models)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for task in tasks:
        which = "generation" if output_types.get(task) == "generate_until" else "loglikelihood"
        name, args = getattr(backend, which)
        if backend.identity.kind == "hub" and "pretrained" in args:
            # runs read the pinned snapshot from the local cache; the command names the repository and commit
            args = {**args, "pretrained": backend.identity.details.get("repo"),
                    "revision": backend.identity.revision}
        groups.setdefault((name, _arg_string(args)), []).append(task)
    commands = []
    for (name, args), names in groups.items():
        chat = apply_chat_template or (name == backend.generation[0] and backend.needs_chat_template_for_generation
                                       and any(output_types.get(t) == "generate_until" for t in names))
        argv = ["lm_eval", "run", "--model", name, "--model_args", args, "--tasks", ",".join(names),
                "--include_path", str(include_path), "--batch_size", str(backend.batch_size),
                "--seed", ",".join(str(s) for s in seeds), "--log_samples", "--output_path", output_path]
        if backend.device:
            argv += ["--device", backend.device]
        if limit is not None:
            argv += ["--limit", str(limit)]
        if num_fewshot is not None:
            argv += ["--num_fewshot", str(num_fewshot)]
        if chat:
            argv += ["--apply_chat_template"]
        if gen_kwargs:
            argv += ["--gen_kwargs", gen_kwargs]
        commands.append(shlex.join(argv))
    return " && ".join(commands)


def config_sha256(config: dict[str, Any] | None) -> str | None:
    """The sha256 of a task's configuration as lm-eval logged it, as JSON (the form a shard's output travels in) and
    without the memory addresses in its functions' names (`<function f at 0x7f…>` differs from process to process;
    the function does not)."""
    if not config:
        return None
    text = _ADDRESS.sub("", json.dumps(config, sort_keys=True, ensure_ascii=False, default=str))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_manifest(*, tasks: list[str], backend: Backend, raw: dict[str, Any], versions: dict[str, str | None],
                   datasets: dict[str, Any], include_path: Path, output_types: dict[str, str],
                   limit: int | float | None, num_fewshot: int | None, apply_chat_template: bool,
                   gen_kwargs: str | None, seeds: Seeds, simsa_command: list[str] | None = None) -> dict[str, Any]:
    """The manifest of a finished run (JSON-able)."""
    from simsa import __version__

    identity = backend.identity.to_dict()
    template = identity.pop("chat_template")
    task_info = {}
    for name in sorted(raw.get("results", {})):
        task_info[name] = {
            "version": (raw.get("versions") or {}).get(name, versions.get(name)),
            "n_samples": (raw.get("n-samples") or {}).get(name),
            "task_hash": (raw.get("task_hashes") or {}).get(name),
            "output_type": output_types.get(name),
            "dataset": datasets.get(name),
            "config_sha256": config_sha256((raw.get("configs") or {}).get(name)),
        }
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "simsa_version": __version__,
        "engine": {"name": "lm-evaluation-harness", "version": _version("lm_eval"),
                   "transformers": _version("transformers"), "datasets": _version("datasets")},
        "tasks": task_info,
        "requested_tasks": tasks,
        "model": identity,
        "chat_template": {"applied": apply_chat_template, "template": template,
                          "sha256": identity.get("chat_template_sha256")},
        "backend": backend.to_dict(),
        "settings": {"limit": limit, "num_fewshot": num_fewshot, "gen_kwargs": gen_kwargs,
                     "batch_size": backend.batch_size},
        "seeds": {"random": seeds[0], "numpy": seeds[1], "torch": seeds[2], "fewshot": seeds[3]},
        "hardware": hardware(),
        "lm_eval_command": lm_eval_command(tasks, backend, include_path=include_path, output_types=output_types,
                                           limit=limit, num_fewshot=num_fewshot,
                                           apply_chat_template=apply_chat_template, gen_kwargs=gen_kwargs,
                                           seeds=seeds),
        "simsa_command": shlex.join(simsa_command) if simsa_command else None,
    }
