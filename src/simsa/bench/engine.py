"""The engine adapter: lm-evaluation-harness does the evaluating; simsa adds the per-item cache around its model.

`CachedLM` is an lm-eval `LM` that wraps lm-eval's own model classes (built from the same model name and arguments
the bare `lm_eval` command would use, so the numbers are the same). Each request is looked up in the item cache
first; the rest go to the inner model in one call, in lm-eval's order, and each answer is written to the cache
through lm-eval's cache hook the moment the inner model produces it. A run killed midway therefore loses at most
the request in flight, and the restarted run asks the model only for what was never answered.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from simsa.bench.backends import Backend, throttle
from simsa.bench.cache import ItemCache, canonical_json, item_key, item_scope
from simsa.bench.ratelimit import TokenBucket

Progress = Callable[[str, int, int], None]
METHODS = ("loglikelihood", "loglikelihood_rolling", "generate_until")


def _quiet_lm_eval() -> None:
    for name in ("lm-eval", "lm_eval", "lm_eval.api", "lm_eval.evaluator", "lm_eval.models"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import lm_eval.evaluator

    lm_eval.evaluator.get_git_commit_hash = _git_commit_hash
    lm_eval.evaluator.add_env_info = _env_info


def _env_info(storage: dict[str, Any]) -> None:
    """lm-eval's environment record without torch's `collect_env`, which runs pip and other programs (about 0.4 s
    per evaluation, paid again by every shard of a run); simsa's manifest records the hardware and versions."""
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    storage.update({"pretty_env_info": None, "transformers_version": version("transformers"),
                    "lm_eval_version": version("lm_eval"), "upper_git_hash": None})


def _git_commit_hash() -> str | None:
    """lm-eval's record of the working directory's git commit, without its `fatal: not a git repository` on stderr
    when simsa runs outside a repository (lm-eval runs `git describe` with stderr left attached)."""
    import subprocess

    from lm_eval.loggers.utils import get_commit_from_path

    try:
        return subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return get_commit_from_path(os.getcwd())


def _tqdm_disabled() -> bool:
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


def _quietly(method: Callable[..., list[Any]], requests: list[Any], quiet: bool) -> list[Any]:
    """Call an lm-eval model method without its tqdm bars when quiet: its models pass `disable=disable_tqdm` to
    tqdm explicitly, which overrides TQDM_DISABLE, so the bars reach log files as thousands of lines otherwise."""
    if quiet and "disable_tqdm" in inspect.signature(method).parameters:
        return method(requests, disable_tqdm=True)
    return method(requests)


def task_config(task_manager: Any, name: str) -> dict[str, Any] | None:
    """A task's YAML configuration, read without building the task or loading its data (None for groups/py tasks)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = task_manager.task_index.get(name)
    if entry is None or entry.yaml_path is None:
        return None
    try:
        config = load_yaml(entry.yaml_path, resolve_func=False)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def task_version(task_manager: Any, name: str) -> str | None:
    """A task's declared version (None when it declares none)."""
    version = ((task_config(task_manager, name) or {}).get("metadata") or {}).get("version")
    return None if version is None else str(version)


@dataclass
class CallCounts:
    """Requests answered from the cache and by the model, per task."""

    cached: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    computed: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def total_cached(self) -> int:
        return sum(self.cached.values())

    @property
    def total_computed(self) -> int:
        return sum(self.computed.values())


class _Hook:
    """lm-eval's cache hook: inner models call `add_partial` as each answer is produced."""

    def __init__(self, owner: CachedLM) -> None:
        self.owner = owner

    def add_partial(self, method: str, args: Any, result: Any) -> None:
        self.owner._answered(method, args, result)


def _build_lm(name: str, args: dict[str, Any], backend: Backend) -> Any:
    import lm_eval.api.registry as registry

    if backend.api_key:
        os.environ["OPENAI_API_KEY"] = backend.api_key  # lm-eval's API models read the key from here only
    arg_string = ",".join(f"{k}={v}" for k, v in args.items())
    lm = registry.get_model(name).create_from_arg_string(
        arg_string, {"batch_size": backend.batch_size, "max_batch_size": None, "device": backend.device})
    if backend.rate_limit and hasattr(lm, "amodel_call"):
        throttle(lm, TokenBucket(backend.rate_limit))
    return lm


class CachedLM(LM):
    """An lm-eval model that answers from the item cache first and from lm-eval's own model classes otherwise."""

    def __init__(self, backend: Backend, cache: ItemCache, task_manager: Any,
                 progress: Progress | None = None, total: int | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.cache = cache
        self.task_manager = task_manager
        self.progress = progress
        self.counts = CallCounts()
        self.versions: dict[str, str | None] = {}
        self._inner: dict[str, Any] = {}
        self._pending: dict[str, list[tuple[str, str]]] = {}
        self._written: set[str] = set()
        self._done = 0
        self._total = total or 0
        self._settings = backend.numeric_settings()

    # -- inner models, built on first need (a run with no generation never builds the chat model)
    def _lm_for(self, method: str) -> Any:
        which = "generation" if method == "generate_until" else "loglikelihood"
        name, args = getattr(self.backend, which)
        signature = canonical_json([name, args])
        if signature not in self._inner:
            for other in self._inner.values():  # same model name and arguments: one instance serves both
                if other._simsa_signature == signature:
                    self._inner[signature] = other
                    break
            else:
                lm = _build_lm(name, args, self.backend)
                lm._simsa_signature = signature
                lm.set_cache_hook(_Hook(self))
                self._inner[signature] = lm
        return self._inner[signature]

    # -- the attributes lm-eval's evaluator reads
    @property
    def tokenizer_name(self) -> str:
        return getattr(self._lm_for("generate_until"), "tokenizer_name", "simsa")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self._lm_for("generate_until").apply_chat_template(chat_history, add_generation_prompt)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self._lm_for("generate_until").chat_template(chat_template)

    def get_model_info(self) -> dict[str, Any]:
        """The inner model's description when one was built (a run answered wholly from the cache builds none)."""
        if not self._inner:
            return {}
        info = getattr(next(iter(self._inner.values())), "get_model_info", None)
        return info() if callable(info) else {}

    # -- keys
    def _version(self, task: str) -> str | None:
        if task not in self.versions:
            self.versions[task] = task_version(self.task_manager, task)
        return self.versions[task]

    def _key(self, method: str, task: str, args: Any) -> str:
        return item_key(self.backend.identity.key, self._settings, task, self._version(task), method, args)

    def _scope(self, task: str) -> str:
        return item_scope(self.backend.identity.key, self._settings, task)

    # -- the three request types
    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._serve("loglikelihood", requests, lambda v: (float(v[0]), bool(v[1])))

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._serve("loglikelihood_rolling", requests, float)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        return self._serve("generate_until", requests, str)

    def _serve(self, method: str, requests: list[Any], decode: Callable[[Any], Any]) -> list[Any]:
        self._total += len(requests)
        keys = [self._key(method, req.task_name, req.args) for req in requests]
        found = self.cache.get_many(keys)
        results: list[Any] = [decode(found[k]) if k in found else None for k in keys]
        missing = [i for i, k in enumerate(keys) if k not in found]
        for req, key in zip(requests, keys, strict=True):
            (self.counts.cached if key in found else self.counts.computed)[req.task_name] += 1
        self._done += len(requests) - len(missing)
        self._report(method)
        if missing:
            self._written = set()
            self._pending = defaultdict(list)
            for i in missing:
                self._pending[self._args_id(method, requests[i].args)].append((keys[i], requests[i].task_name))
            answers = _quietly(getattr(self._lm_for(method), method), [requests[i] for i in missing],
                               quiet=self.progress is not None or _tqdm_disabled())
            for i, answer in zip(missing, answers, strict=True):
                results[i] = decode(answer)
                if keys[i] not in self._written:
                    task = requests[i].task_name
                    self.cache.put(keys[i], answer, kind=method, task=task, scope=self._scope(task))
            self._pending = {}
        return results

    @staticmethod
    def _args_id(method: str, args: Any) -> str:
        return canonical_json([method, args])

    def _answered(self, method: str, args: Any, result: Any) -> None:
        """Write an answer as soon as the inner model has it (called from inside lm-eval's model loop)."""
        waiting = self._pending.get(self._args_id(method, args)) if self._pending else None
        if not waiting:
            return
        for key, task in waiting:
            if key not in self._written:
                self.cache.put(key, list(result) if isinstance(result, tuple) else result, kind=method, task=task,
                               scope=self._scope(task))
                self._written.add(key)
                self._done += 1
        self._report(method)

    def _report(self, method: str) -> None:
        if self.progress is not None:
            self.progress("requests", self._done, max(self._total, self._done))


@dataclass
class EngineResult:
    """What an lm-eval run gave back, plus simsa's counts."""

    raw: dict[str, Any]
    counts: CallCounts
    versions: dict[str, str | None]
    seconds: float


def run_lm_eval(tasks: list[str], backend: Backend, cache_path: Path, *, task_manager: Any,
                limit: int | float | None = None, num_fewshot: int | None = None,
                apply_chat_template: bool = False, gen_kwargs: str | None = None,
                seeds: tuple[int, int, int, int] = (0, 1234, 1234, 1234),
                bootstrap_iters: int = 1000, progress: Progress | None = None) -> EngineResult:
    """Evaluate tasks through lm-eval's `simple_evaluate` with the cached wrapper as its model."""
    import lm_eval

    _quiet_lm_eval()
    if progress is not None:
        os.environ.setdefault("TQDM_DISABLE", "1")  # our progress bar replaces lm-eval's tqdm bars
    start = time.perf_counter()
    with ItemCache(cache_path) as cache:
        lm = CachedLM(backend, cache, task_manager, progress=progress)
        raw = lm_eval.simple_evaluate(
            model=lm, tasks=tasks, num_fewshot=num_fewshot, batch_size=backend.batch_size, device=backend.device,
            limit=limit, bootstrap_iters=bootstrap_iters, log_samples=True, task_manager=task_manager,
            apply_chat_template=apply_chat_template, gen_kwargs=gen_kwargs, random_seed=seeds[0],
            numpy_random_seed=seeds[1], torch_random_seed=seeds[2], fewshot_random_seed=seeds[3],
            verbosity="ERROR")
    if raw is None:
        raise RuntimeError("lm-eval returned no results")
    return EngineResult(raw=raw, counts=lm.counts, versions=dict(lm.versions), seconds=time.perf_counter() - start)
