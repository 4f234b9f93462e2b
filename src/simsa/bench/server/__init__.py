"""`simsa serve-model`: an OpenAI-compatible HTTP server over one transformers checkpoint.

Benchmark runs reach served models through the OpenAI completions and chat APIs (lm-eval's `local-completions` and
`local-chat-completions`). This server lets a team without vLLM serve a checkpoint for such runs, and lets the tests
drive the HTTP backend against a real model. Log-probabilities are the float32 log-softmax of the logits of the same
forward pass transformers runs, so lm-eval's numbers through this server equal its in-process `hf` numbers.

One worker thread owns the model; the event loop only parses, validates and queues. Scoring requests (max_tokens 0,
or 1 with temperature 0) that wait together run as one right-padded forward pass. Generation runs one prompt at a
time with `model.generate`, with the model's own sampling defaults replaced by the request's parameters.

The package, in the order a request meets it: `errors` (ApiError and the error bodies), `protocol` (the request
bodies), `model` (the loaded checkpoint), `worker` (the model's thread), `plans` (what a request needs from the
worker), `render` (the response bodies) and `app` (the gate and `create_app`). Importing it loads torch and
transformers, so the CLI imports it only when serving.
"""

from simsa.bench.server.app import DEFAULT_MAX_BODY_BYTES, create_app
from simsa.bench.server.errors import ApiError
from simsa.bench.server.model import ServedModel, load_model
from simsa.bench.server.plans import DEFAULT_COMPLETION_TOKENS, PromptPlan, plan_chat, plan_completion
from simsa.bench.server.protocol import MAX_TOP_LOGPROBS, ChatMessage, ChatRequest, CompletionRequest
from simsa.bench.server.render import render_chat, render_completion
from simsa.bench.server.worker import (
    LOGIT_BUDGET,
    LOGPROB_FLOOR,
    GenResult,
    GenSpec,
    ModelWorker,
    ScoreResult,
    ScoreSeq,
    TopList,
)

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "DEFAULT_MAX_BODY_BYTES",
    "LOGIT_BUDGET",
    "LOGPROB_FLOOR",
    "MAX_TOP_LOGPROBS",
    "ApiError",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "GenResult",
    "GenSpec",
    "ModelWorker",
    "PromptPlan",
    "ScoreResult",
    "ScoreSeq",
    "ServedModel",
    "TopList",
    "create_app",
    "load_model",
    "plan_chat",
    "plan_completion",
    "render_chat",
    "render_completion",
]
