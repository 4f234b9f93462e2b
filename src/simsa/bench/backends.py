"""Backends: how a run reaches the model — in process (transformers, vLLM) or over an OpenAI-compatible API.

Each backend is expressed as lm-evaluation-harness's own model name and model arguments, so that the manifest's
bare `lm_eval` command line reproduces the numbers without simsa. Settings that can change numbers (dtype, maximum
length, how requests are tokenised) go into the cache key; settings that only change speed (batch size,
concurrency, rate limits) do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsa.bench.identity import ModelIdentity, resolve_local_or_hub
from simsa.bench.ratelimit import TokenBucket
from simsa.errors import InputError

BACKENDS = ("hf", "openai", "vllm")
# Model arguments that change speed only: left out of cache keys.
_SPEED_ONLY = {"num_concurrent", "max_retries", "timeout", "batch_size", "max_batch_size", "rate_limit",
               "gpu_memory_utilization", "api_key"}


@dataclass
class BackendOptions:
    """What the user asked for (`simsa bench run` options)."""

    backend: str = "hf"
    model: str = ""
    dtype: str = "float32"
    device: str = "cpu"
    batch_size: int = 1
    max_length: int | None = None
    base_url: str | None = None
    api_model: str | None = None
    tokenizer: str | None = None
    concurrency: int = 4
    max_retries: int = 5
    timeout: float = 120.0
    rate_limit: float | None = None
    api_key: str | None = None
    tensor_parallel: int = 1


@dataclass
class Backend:
    """A backend resolved: lm-eval model names and arguments per request type, and the model's identity."""

    name: str
    identity: ModelIdentity
    loglikelihood: tuple[str, dict[str, Any]]
    generation: tuple[str, dict[str, Any]]
    batch_size: int = 1
    device: str | None = None
    rate_limit: float | None = None
    needs_chat_template_for_generation: bool = False
    notes: list[str] = field(default_factory=list)
    api_key: str | None = field(default=None, repr=False)

    def numeric_settings(self) -> dict[str, Any]:
        """Settings that decide the numbers (part of every cache key)."""
        def keep(args: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in sorted(args.items())
                    if k not in _SPEED_ONLY and k not in {"pretrained", "base_url", "tokenizer", "model"}}
        return {"backend": self.name, "loglikelihood": [self.loglikelihood[0], keep(self.loglikelihood[1])],
                "generation": [self.generation[0], keep(self.generation[1])]}

    def to_dict(self) -> dict[str, Any]:
        def redact(args: dict[str, Any]) -> dict[str, Any]:
            return {k: ("***" if k == "api_key" and v else v) for k, v in args.items()}
        return {"name": self.name, "lm_eval_model": {"loglikelihood": self.loglikelihood[0],
                                                     "generation": self.generation[0]},
                "model_args": {"loglikelihood": redact(self.loglikelihood[1]),
                               "generation": redact(self.generation[1])},
                "batch_size": self.batch_size, "device": self.device, "rate_limit_rps": self.rate_limit,
                "notes": self.notes}


def check_options(opts: BackendOptions) -> None:
    """Refuse options no model can run with (before any model is pinned)."""
    if opts.backend not in BACKENDS:
        raise InputError(f"unknown backend {opts.backend!r}; expected one of {', '.join(BACKENDS)}")
    if opts.batch_size < 1 or opts.concurrency < 1 or opts.max_retries < 0 or opts.timeout <= 0:
        raise InputError("--batch-size and --concurrency must be ≥ 1, --max-retries ≥ 0 and --timeout > 0")
    if opts.rate_limit is not None and opts.rate_limit <= 0:
        raise InputError("--rate-limit must be a positive number of requests per second")
    if opts.tensor_parallel < 1:
        raise InputError("--tensor-parallel must be at least 1 (the GPUs one vLLM model is split over)")


def resolve_backend(opts: BackendOptions, memo: Path | None = None,
                    identity: ModelIdentity | None = None) -> Backend:
    """Pin the model and express the backend as lm-eval model arguments. A worker running one shard of a run is
    given the `identity` the driver pinned, so it does not hash the model's files again."""
    check_options(opts)
    if opts.backend == "openai":
        return _openai(opts)
    identity = identity or resolve_local_or_hub(opts.model, memo)
    pretrained = str(identity.path)
    if opts.backend == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise InputError("the vllm backend needs the optional extra: pip install 'simsa[vllm]'") from exc
        args: dict[str, Any] = {"pretrained": pretrained, "dtype": opts.dtype,
                                "tensor_parallel_size": opts.tensor_parallel}
        if opts.max_length:
            args["max_model_len"] = opts.max_length
        return Backend("vllm", identity, ("vllm", args), ("vllm", dict(args)), batch_size=opts.batch_size)
    args = {"pretrained": pretrained, "dtype": opts.dtype}
    if opts.max_length:
        args["max_length"] = opts.max_length
    return Backend("hf", identity, ("hf", args), ("hf", dict(args)), batch_size=opts.batch_size, device=opts.device)


def _openai(opts: BackendOptions) -> Backend:
    if not opts.base_url:
        raise InputError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    base = opts.base_url.rstrip("/")
    served = server_model_info(base, opts.api_key, opts.timeout)
    name = opts.api_model or opts.model or (served.get("id") if served else None)
    if not name:
        raise InputError(f"{base}: say which model to ask for with --model")
    tokenizer = opts.tokenizer or (opts.model if opts.model and Path(opts.model).is_dir() else None)
    if tokenizer is None:
        raise InputError("the openai backend scores multiple choice through completions with logprobs and needs "
                         "the model's tokenizer: pass --tokenizer DIR_OR_HUB_ID")
    simsa_info = (served or {}).get("simsa") or {}
    identity = ModelIdentity(ref=f"{base}#{name}", kind="server", sha256=simsa_info.get("sha256"),
                             chat_template=None, details={"served": served or {}, "base_url": base})
    notes = []
    if identity.sha256 is None:
        notes.append("the server does not report a content hash of its model: cached answers are keyed by its "
                     "URL and model name only")
    common: dict[str, Any] = {"model": name, "num_concurrent": opts.concurrency, "max_retries": opts.max_retries,
                              "timeout": int(opts.timeout)}
    # lm-eval assumes 2048 tokens of context; a longer prompt than the server takes would fail after retries
    max_length = opts.max_length or (served or {}).get("max_model_len") or simsa_info.get("max_model_len")
    if max_length:
        common["max_length"] = int(max_length)
    ll_args = {"base_url": f"{base}/completions", "tokenizer": tokenizer, "tokenizer_backend": "huggingface",
               "tokenized_requests": True, **common}
    gen_args = {"base_url": f"{base}/chat/completions", **common}
    if opts.api_key:
        notes.append("the API key is passed to lm-eval as OPENAI_API_KEY (lm-eval reads it from there only)")
    return Backend("openai", identity, ("local-completions", ll_args), ("local-chat-completions", gen_args),
                   batch_size=1, rate_limit=opts.rate_limit, needs_chat_template_for_generation=True, notes=notes,
                   api_key=opts.api_key)


def server_model_info(base: str, api_key: str | None, timeout: float) -> dict[str, Any] | None:
    """The first model a server lists at /models (with simsa's content hash when it is `simsa serve-model`)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{base}/models", headers=headers, timeout=min(timeout, 30.0))
    except httpx.HTTPError as exc:
        raise InputError(f"{base}: the server does not answer ({exc.__class__.__name__}: {exc})") from exc
    if response.status_code == 401:
        raise InputError(f"{base}: the server refused the API key (401); pass --api-key or set OPENAI_API_KEY")
    if response.status_code >= 400:
        return None
    try:
        data = response.json().get("data") or []
    except ValueError:
        return None
    return data[0] if data and isinstance(data[0], dict) else None


def throttle(lm: Any, limiter: TokenBucket) -> Any:
    """Make an lm-eval API model wait for the rate limiter before each HTTP call (sync and async paths)."""
    sync_call, async_call = lm.model_call, lm.amodel_call

    def model_call(*args: Any, **kwargs: Any) -> Any:
        limiter.acquire()
        return sync_call(*args, **kwargs)

    async def amodel_call(*args: Any, **kwargs: Any) -> Any:
        await limiter.acquire_async()
        return await async_call(*args, **kwargs)

    lm.model_call = model_call
    lm.amodel_call = amodel_call
    return lm
