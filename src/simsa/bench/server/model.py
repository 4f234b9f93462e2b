"""The served checkpoint: `ServedModel`, its weights digest and `load_model`."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig

from simsa.bench.identity import weights_digest
from simsa.bench.server.errors import ApiError
from simsa.errors import InputError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ServedModel:
    """The loaded checkpoint and what /v1/models says about it; the tokenizer is used under `tok_lock`."""

    model: Any
    tokenizer: Any
    name: str
    directory: Path
    sha256: str
    max_len: int
    vocab: int
    eos_ids: frozenset[int]
    pad_id: int
    chat_template: str | None
    device: torch.device
    tok_lock: threading.Lock = field(default_factory=threading.Lock)

    def card(self) -> dict[str, Any]:
        """The /v1/models entry; `simsa` carries the content hash clients key their caches by."""
        template_sha = hashlib.sha256(self.chat_template.encode("utf-8")).hexdigest() if self.chat_template else None
        return {"id": self.name, "object": "model", "created": 0, "owned_by": "simsa", "root": self.name,
                "max_model_len": self.max_len,
                "simsa": {"sha256": self.sha256, "sha256_of": "*.safetensors", "directory": self.directory.name,
                          "max_model_len": self.max_len, "chat_template_sha256": template_sha}}

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested != self.name:
            raise ApiError(404, f"model {requested!r} is not served here; this server serves {self.name!r}",
                           "model_not_found")

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        with self.tok_lock:
            return list(self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        with self.tok_lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def decode_each(self, batches: list[list[int]]) -> list[str]:
        with self.tok_lock:
            return self.tokenizer.batch_decode(batches, skip_special_tokens=False)


def _max_context(config: Any, tokenizer: Any) -> int:
    """The longest sequence the model takes: its position limit, or the tokenizer's when that is smaller."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    limits = [value for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
              if isinstance(value := getattr(text_config, attr, None), int) and value > 0][:1]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    return min(limits) if limits else 2048


def _template_text(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        return json.dumps(template, sort_keys=True, ensure_ascii=False)
    return template if isinstance(template, str) else None


def load_model(model_dir: Path, name: str | None = None, dtype: str = "float32", device: str = "cpu") -> ServedModel:
    """Load a safetensors checkpoint for serving; a directory that is not one becomes an InputError."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: not a directory (serve-model takes a Hugging Face model directory)")
    if not (model_dir / "config.json").is_file():
        raise InputError(f"{model_dir}: no config.json (is this a Hugging Face model directory?)")
    weights = sorted(model_dir.glob("*.safetensors"))
    if not weights:
        raise InputError(f"{model_dir}: no *.safetensors weights (simsa serves safetensors checkpoints only)")
    if dtype not in _DTYPES:
        raise InputError(f"dtype {dtype!r}: choose one of {', '.join(_DTYPES)}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=_DTYPES[dtype], use_safetensors=True)
        model.to(device)  # type: ignore[arg-type]  # transformers wraps .to with functools.wraps, losing `self`
    except Exception as exc:
        raise InputError(f"{model_dir}: cannot load the model ({type(exc).__name__}: {exc})") from exc
    model.eval()
    embedding = model.get_input_embeddings().weight
    if not isinstance(embedding, torch.Tensor):
        raise InputError(f"{model_dir}: the input embeddings have no weight matrix (cannot tell the vocabulary)")
    eos = model.generation_config.eos_token_id
    eos_ids = {*(eos if isinstance(eos, list) else [eos] if eos is not None else [])}
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    pad_id = next((i for i in (tokenizer.pad_token_id, *sorted(eos_ids)) if i is not None), 0)
    # The request decides how to decode: sampling defaults shipped with a checkpoint must not leak into answers.
    model.generation_config = GenerationConfig(eos_token_id=sorted(eos_ids) or None, pad_token_id=pad_id,
                                               bos_token_id=model.generation_config.bos_token_id)
    return ServedModel(model=model, tokenizer=tokenizer, name=name or model_dir.resolve().name,
                       directory=model_dir.resolve(), sha256=weights_digest(weights),
                       max_len=_max_context(model.config, tokenizer),
                       vocab=embedding.shape[0], eos_ids=frozenset(eos_ids), pad_id=pad_id,
                       chat_template=_template_text(tokenizer), device=torch.device(device))
