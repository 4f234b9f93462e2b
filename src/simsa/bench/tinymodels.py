"""Tiny Korean causal language models, built and briefly trained on the CPU, for the demo and the tests.

No model hub is needed: a byte-level BPE tokenizer is trained on the shipped KoSBi sentences (text that the demo's
suites do not score), then a small Llama-architecture model is trained on them for a given number of steps. More
steps give a better model, so teams in the demo differ for a real reason. The directories are ordinary Hugging Face
checkpoints (safetensors, tokenizer.json, a chat template) that every backend loads.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Called with (0, None, model) before the first step, then (step, loss, model) after each optimiser step, the loss
# being that batch's before the update: what a training-evidence package records (checkpoints and a log).
TrainingTrace = Callable[[int, "float | None", Any], None]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
FORMAT_VERSION = "tiny-ko-1"


@dataclass(frozen=True)
class TinySpec:
    """What a tiny model is: its width, depth, training steps and seed (all of it goes into the directory name)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    steps: int = 200
    seed: int = 0
    vocab: int = 1200
    seq_len: int = 64
    batch: int = 16
    lr: float = 3e-3

    @property
    def name(self) -> str:
        return f"{FORMAT_VERSION}-h{self.hidden}-l{self.layers}-s{self.steps}-seed{self.seed}"


def korean_corpus() -> list[str]:
    """KoSBi's sentences and contexts (unique, in file order): plain Korean text for pre-training."""
    raw = json.loads((files("simsa.bench") / "data" / "kosbi" / "kosbi_test.json").read_text(encoding="utf-8"))
    seen: dict[str, None] = {}
    for row in raw:
        for key in ("context", "sentence"):
            text = (row.get(key) or "").strip()
            if text:
                seen.setdefault(text, None)
    return list(seen)


def _tokenizer(corpus: list[str], vocab: int) -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok


def build_tiny_model(out: Path, spec: TinySpec | None = None, trace: TrainingTrace | None = None) -> Path:
    """Build (or reuse, when `out` already holds a finished build) a tiny trained model directory.

    With a `trace` the model is always trained (a trace needs the run itself); the training is the same, so the
    weights are those a build without one gives.
    """
    spec = spec or TinySpec()
    done = out / "simsa-tiny.json"
    if trace is None and done.exists() and json.loads(done.read_text()).get("name") == spec.name:
        return out
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    corpus = korean_corpus()
    tok = _tokenizer(corpus, spec.vocab)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|pad|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    eos = tok.token_to_id("<|endoftext|>")
    assert eos is not None  # one of SPECIALS, which the tokenizer was trained with
    torch.manual_seed(spec.seed)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=spec.hidden, intermediate_size=spec.hidden * 3,
                         num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                         num_key_value_heads=spec.heads, max_position_embeddings=1024, bos_token_id=eos,
                         eos_token_id=eos, pad_token_id=tok.token_to_id("<|pad|>"), tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    if trace is not None:
        trace(0, None, model)
    if spec.steps:
        stream: list[int] = []
        for text in corpus:
            stream.extend([*tok.encode(text).ids, eos])
        data = torch.tensor(stream, dtype=torch.long)
        rng = random.Random(spec.seed)
        opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
        model.train()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: one thread is as fast, and far faster when the cores are busy
        try:
            for step in range(spec.steps):
                starts = [rng.randrange(0, len(data) - spec.seq_len - 1) for _ in range(spec.batch)]
                batch = torch.stack([data[s:s + spec.seq_len] for s in starts])
                for group in opt.param_groups:
                    group["lr"] = spec.lr * min(1.0, (step + 1) / 20) * (1 - step / spec.steps * 0.9)
                loss = model(input_ids=batch, labels=batch).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                if trace is not None:
                    trace(step + 1, float(loss.item()), model)
        finally:
            torch.set_num_threads(threads)
    model.eval()
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    done.write_text(json.dumps({"name": spec.name, "spec": spec.__dict__}, indent=2) + "\n")
    return out
