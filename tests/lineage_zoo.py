"""A zoo of tiny, briefly trained Hugging Face models for validating the lineage test.

The lineage test answers "was model A initialised from model B's weights?". To measure whether it
answers correctly we need models whose history we know: hard negatives (same architecture,
tokenizer and data, different seed) and models derived from a parent in the ways that matter in
practice (fine-tuning, continued pretraining, function-preserving permutation, layer removal,
partial re-initialisation, dtype cast, embedding reuse). Everything is built on CPU from a seeded
synthetic corpus, so the zoo is reproducible and needs no downloads.

Importable as ``tests.lineage_zoo`` (by ``benchmarks/lineage_validity.py``) and as ``lineage_zoo`` (by
pytest); it must not import pytest.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)
from transformers.utils import logging as hf_logging

ZOO_VERSION = "lineage-zoo-2"
ZOO_FILE = "ZOO.json"
# Set to a directory to keep one zoo across test sessions (bump ZOO_VERSION when the recipe changes).
ZOO_DIR_ENV = "SIMSA_LINEAGE_ZOO_DIR"
# torch threads used while building (default 1, see _quiet_and_threads).
ZOO_THREADS_ENV = "SIMSA_LINEAGE_ZOO_THREADS"

PairKind = Literal["negative", "derived", "identical"]

# Shapes: small enough that the whole zoo trains in about two minutes on one CPU core.
HIDDEN = 64
LAYERS = 4
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
SEQ_LEN = 64
BATCH = 16
VOCAB_TARGET = 512

BASE_STEPS = 150
BASE_LR = 3e-3
CONTINUE_STEPS = 100
CONTINUE_LR = 1e-3
DROP_STEPS = 50
EMB_REUSE_STEPS = 150
DROPPED_LAYER = 2
REINIT_LAYER = 1

SEEDS = {"llama": 5, "moe": 4, "bert": 4}
COMPONENTS = {
    "llama": ["text.embedding", "text.attention", "text.mlp", "text.output_head"],
    "moe": ["text.embedding", "text.attention", "text.experts", "text.router", "text.output_head"],
    # BERT keeps its standard tied MLM decoder, so its output head *is* the embedding.
    "bert": ["text.embedding", "text.attention", "text.mlp"],
}
EOW = "</w>"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"]


@dataclass
class Pair:
    """One (candidate, reference) question for the lineage test and the answer it must give.

    ``expect`` keys: ``layer_map`` ([candidate_layer, reference_layer] pairs that must be found),
    ``new_layers`` (candidate layers with no parent: the re-initialised layer, and every layer of a
    negative or of an embeddings-reused model), ``derived_components`` and ``independent_components``
    (names from COMPONENTS).
    """

    name: str
    family: str
    candidate: str
    reference: str
    kind: PairKind
    derivation: str
    expect: dict[str, Any] = field(default_factory=dict)


@dataclass
class Zoo:
    """The built zoo: model directories by name, the pairs to test, and per-model build facts."""

    root: Path
    models: dict[str, Path]
    pairs: list[Pair]
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    build_seconds: float = 0.0

    def negatives(self) -> list[Pair]:
        return [p for p in self.pairs if p.kind == "negative"]

    def positives(self) -> list[Pair]:
        return [p for p in self.pairs if p.kind != "negative"]


# --------------------------------------------------------------------------- synthetic corpora


def _lexicon(n_words: int = 360, seed: int = 7) -> list[str]:
    """Made-up words from CV syllables, so BPE has real sub-word structure to learn."""
    rng = np.random.default_rng(seed)
    syllables = [c + v for c in "ptkbdgmnlrsvz" for v in "aeiou"]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n_words:
        n_syl = int(rng.choice([1, 2, 2, 3, 3, 4]))
        word = "".join(syllables[i] for i in rng.integers(0, len(syllables), n_syl))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass
class _Language:
    """A Zipfian bigram language: each word strongly prefers a few successors."""

    words: list[str]
    unigram: np.ndarray  # probability per word index
    successors: np.ndarray  # (n_words, n_succ) word indices
    succ_cdf: np.ndarray  # (n_succ,) cumulative successor weights
    follow_p: float = 0.85

    def sentences(self, n: int, seed: int) -> list[str]:
        """Sample n sentences position by position for all sentences at once (fast)."""
        rng = np.random.default_rng(seed)
        max_len = 12
        lengths = rng.integers(5, max_len + 1, n)
        uni_cdf = np.cumsum(self.unigram)
        cur = np.searchsorted(uni_cdf, rng.random(n) * uni_cdf[-1])
        out = np.empty((n, max_len), dtype=np.int64)
        out[:, 0] = cur
        for t in range(1, max_len):
            follow = rng.random(n) < self.follow_p
            slot = np.minimum(np.searchsorted(self.succ_cdf, rng.random(n)), self.successors.shape[1] - 1)
            nxt_follow = self.successors[cur, slot]
            nxt_free = np.minimum(np.searchsorted(uni_cdf, rng.random(n) * uni_cdf[-1]), len(self.words) - 1)
            cur = np.where(follow, nxt_follow, nxt_free)
            out[:, t] = cur
        return [" ".join(self.words[w] for w in out[i, : lengths[i]]) + " ." for i in range(n)]


def _language(words: list[str], seed: int) -> _Language:
    """Corpus A and B share the words but differ in word ranks and bigram structure."""
    rng = np.random.default_rng(seed)
    n = len(words)
    ranks = rng.permutation(n)
    unigram = 1.0 / (ranks + 1.0) ** 1.1
    unigram /= unigram.sum()
    n_succ = 4
    successors = np.stack([rng.choice(n, n_succ, replace=False, p=unigram) for _ in range(n)])
    weights = np.array([0.5, 0.25, 0.15, 0.10])
    return _Language(words, unigram, successors, np.cumsum(weights))


@dataclass
class _Corpus:
    """Token streams for training and a fixed held-out stream for measuring loss."""

    name: str
    train: np.ndarray
    held_out: np.ndarray


def _learn_bpe(sentences: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn BPE merges with a fixed tie-break (count, then pair text).

    ``tokenizers``' own BpeTrainer breaks count ties differently from run to run, which would make
    the zoo (and so the validity numbers) change between builds; we only have a few hundred word
    types, so learning the merges here is quick and fully reproducible.
    """
    counts = Counter(word for sentence in sentences for word in sentence.split())
    words = {w: [*w[:-1], w[-1] + EOW] for w in sorted(counts)}
    alphabet = sorted({sym for syms in words.values() for sym in syms})
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *alphabet])}
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pairs: Counter[tuple[str, str]] = Counter()
        for w, syms in words.items():
            for a, b in itertools.pairwise(syms):
                pairs[(a, b)] += counts[w]
        if not pairs:
            break
        best, n = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if n < 2:
            break
        merged = best[0] + best[1]
        merges.append(best)
        vocab.setdefault(merged, len(vocab))
        for w, syms in words.items():
            i, out = 0, []
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    return vocab, merges


def _train_tokenizer(sentences: list[str], vocab_size: int = VOCAB_TARGET) -> Tokenizer:
    """Classic BPE with an end-of-word suffix, learnt once on corpus A and shared by every model.

    Other sizes or sentences give the derived tokenizers of ``lineage_derivations`` (extended or replaced vocabulary).
    """
    vocab, merges = _learn_bpe(sentences, vocab_size)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]", end_of_word_suffix=EOW))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder(suffix=EOW)
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def _stream(tok: Tokenizer, sentences: list[str]) -> np.ndarray:
    """Concatenated token ids with </s> after every sentence."""
    eos = tok.token_to_id("</s>")
    ids: list[int] = []
    for enc in tok.encode_batch(sentences, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.int64)


# --------------------------------------------------------------------------- batches and training


@dataclass
class _Specials:
    pad: int
    cls: int
    sep: int
    mask: int
    bos: int
    eos: int
    vocab: int


def _batch(family: str, stream: np.ndarray, rng: np.random.Generator, sp: _Specials) -> dict[str, torch.Tensor]:
    """Random windows from the stream; the seed's rng fixes the data order (and MLM masks)."""
    body = SEQ_LEN - 2 if family == "bert" else SEQ_LEN
    starts = rng.integers(0, len(stream) - body, BATCH)
    windows = np.stack([stream[s : s + body] for s in starts])
    if family != "bert":
        ids = torch.from_numpy(windows)
        return {"input_ids": ids, "labels": ids.clone()}
    ids = np.concatenate([np.full((BATCH, 1), sp.cls), windows, np.full((BATCH, 1), sp.sep)], axis=1)
    labels = np.full_like(ids, -100)
    pick = rng.random(ids.shape) < 0.15
    pick[:, 0] = pick[:, -1] = False
    labels[pick] = ids[pick]
    action = rng.random(ids.shape)
    ids = ids.copy()
    ids[pick & (action < 0.8)] = sp.mask
    rand = pick & (action >= 0.8) & (action < 0.9)
    ids[rand] = rng.integers(len(SPECIAL_TOKENS), sp.vocab, int(rand.sum()))
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.ones(ids.shape, dtype=torch.long),
        "labels": torch.from_numpy(labels),
    }


def _eval_batches(family: str, corpus: _Corpus, sp: _Specials, n: int = 4) -> list[dict[str, torch.Tensor]]:
    """A fixed held-out set per family and corpus, so start/end losses are comparable."""
    rng = np.random.default_rng(424242)
    return [_batch(family, corpus.held_out, rng, sp) for _ in range(n)]


@torch.no_grad()
def _eval_loss(model: PreTrainedModel, batches: list[dict[str, torch.Tensor]]) -> float:
    model.eval()
    losses = [float(model(**b).loss) for b in batches]
    return float(np.mean(losses))


def _train(
    model: PreTrainedModel,
    family: str,
    corpus: _Corpus,
    sp: _Specials,
    *,
    steps: int,
    lr: float,
    seed: int,
) -> dict[str, Any]:
    """AdamW with warmup and cosine decay; returns held-out loss before and after as proof of training."""
    evals = _eval_batches(family, corpus, sp)
    loss_start = _eval_loss(model, evals)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1.0 + np.cos(np.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = model(**_batch(family, corpus.train, rng, sp)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    model.eval()
    return {
        "corpus": corpus.name,
        "steps": steps,
        "lr": lr,
        "data_seed": seed,
        "loss_start": round(loss_start, 4),
        "loss_end": round(_eval_loss(model, evals), 4),
        "seconds": round(seconds, 2),
    }


# --------------------------------------------------------------------------- architectures


def _config(family: str, sp: _Specials, layers: int = LAYERS) -> Any:
    if family == "llama":
        return LlamaConfig(
            vocab_size=sp.vocab,
            hidden_size=HIDDEN,
            intermediate_size=128,
            num_hidden_layers=layers,
            num_attention_heads=HEADS,
            num_key_value_heads=KV_HEADS,
            head_dim=HEAD_DIM,
            max_position_embeddings=SEQ_LEN,
            tie_word_embeddings=False,
            bos_token_id=sp.bos,
            eos_token_id=sp.eos,
            pad_token_id=sp.pad,
        )
    if family == "moe":
        return Qwen3MoeConfig(
            vocab_size=sp.vocab,
            hidden_size=HIDDEN,
            intermediate_size=128,
            moe_intermediate_size=16,
            num_experts=16,  # enough router rows for a unit-level router test
            num_experts_per_tok=2,
            norm_topk_prob=True,
            num_hidden_layers=layers,
            num_attention_heads=HEADS,
            num_key_value_heads=KV_HEADS,
            head_dim=HEAD_DIM,
            max_position_embeddings=SEQ_LEN,
            tie_word_embeddings=False,
            bos_token_id=sp.bos,
            eos_token_id=sp.eos,
            pad_token_id=sp.pad,
        )
    if family == "bert":
        return BertConfig(
            vocab_size=sp.vocab,
            hidden_size=HIDDEN,
            intermediate_size=128,
            num_hidden_layers=layers,
            num_attention_heads=HEADS,
            max_position_embeddings=SEQ_LEN,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            pad_token_id=sp.pad,
        )
    raise ValueError(f"unknown family {family!r}")


_MODEL_CLASSES: dict[str, type[PreTrainedModel]] = {
    "llama": LlamaForCausalLM,
    "moe": Qwen3MoeForCausalLM,
    "bert": BertForMaskedLM,
}


def _fresh(family: str, sp: _Specials, seed: int, layers: int = LAYERS) -> PreTrainedModel:
    """The seed fixes the initial weights (and, in _train, the data order)."""
    torch.manual_seed(seed)
    model = _MODEL_CLASSES[family](_config(family, sp, layers))
    model.eval()
    return model


_EMBEDDING_KEY = {
    "llama": "model.embed_tokens.weight",
    "moe": "model.embed_tokens.weight",
    "bert": "bert.embeddings.word_embeddings.weight",
}

_LAYER_RE = re.compile(r"^(.*\.layers?\.)(\d+)\.(.*)$")


def _layer_of(key: str) -> int | None:
    m = _LAYER_RE.match(key)
    return int(m.group(2)) if m else None


# --------------------------------------------------------------------------- derivations


def _shuffle(rng: np.random.Generator, n: int) -> np.ndarray:
    """A permutation that is never the identity (when n > 1), so permuted models really differ."""
    while True:
        perm = rng.permutation(n)
        if n < 2 or not np.array_equal(perm, np.arange(n)):
            return perm


def _permute_heads(sd: dict[str, torch.Tensor], prefix: dict[str, str], n_heads: int, n_kv: int,
                   rng: np.random.Generator) -> None:
    """Permute KV groups together with their query heads, and query heads within each group.

    ``prefix`` maps q/k/v/o to tensor-name stems (without ``.weight``/``.bias``).
    """
    rep = n_heads // n_kv
    kv_perm = _shuffle(rng, n_kv)
    q_order = np.concatenate([g * rep + _shuffle(rng, rep) for g in kv_perm]) if rep > 1 else kv_perm

    def rows(name: str, order: np.ndarray) -> None:
        for suffix in (".weight", ".bias"):
            key = name + suffix
            if key in sd:
                t = sd[key]
                sd[key] = t.reshape(len(order), HEAD_DIM, *t.shape[1:])[order].reshape(t.shape).clone()

    rows(prefix["q"], q_order)
    rows(prefix["k"], kv_perm)
    rows(prefix["v"], kv_perm)
    o = sd[prefix["o"] + ".weight"]
    sd[prefix["o"] + ".weight"] = o.reshape(o.shape[0], n_heads, HEAD_DIM)[:, q_order].reshape(o.shape).clone()


def _permute_neurons(sd: dict[str, torch.Tensor], in_rows: list[str], out_cols: str, rng: np.random.Generator) -> None:
    """Permute hidden units of a feed-forward block: rows (and biases) in, columns out."""
    width = sd[in_rows[0] + ".weight"].shape[0]
    perm = torch.from_numpy(_shuffle(rng, width))
    for stem in in_rows:
        sd[stem + ".weight"] = sd[stem + ".weight"][perm].clone()
        if stem + ".bias" in sd:
            sd[stem + ".bias"] = sd[stem + ".bias"][perm].clone()
    sd[out_cols + ".weight"] = sd[out_cols + ".weight"][:, perm].clone()


def _permute_experts(sd: dict[str, torch.Tensor], stem: str, rng: np.random.Generator) -> None:
    """Reorder experts (with the router rows) and the neurons inside each expert."""
    gate_up, down, router = stem + ".experts.gate_up_proj", stem + ".experts.down_proj", stem + ".gate.weight"
    n_exp, two_i, _ = sd[gate_up].shape
    width = two_i // 2
    e_perm = torch.from_numpy(_shuffle(rng, n_exp))
    gu, dn = sd[gate_up][e_perm].clone(), sd[down][e_perm].clone()
    for e in range(n_exp):
        perm = torch.from_numpy(_shuffle(rng, width))
        gu[e] = gu[e][torch.cat([perm, perm + width])]
        dn[e] = dn[e][:, perm]
    sd[gate_up], sd[down] = gu, dn
    sd[router] = sd[router][e_perm].clone()


def _permuted(parent: PreTrainedModel, family: str, seed: int) -> PreTrainedModel:
    """A function-preserving re-ordering of heads and neurons in every layer."""
    rng = np.random.default_rng(seed)
    sd = {k: v.detach().clone() for k, v in parent.state_dict().items()}
    for i in range(parent.config.num_hidden_layers):
        if family in ("llama", "moe"):
            base = f"model.layers.{i}"
            attn = {x: f"{base}.self_attn.{x}_proj" for x in "qkvo"}
            _permute_heads(sd, attn, HEADS, KV_HEADS, rng)
            if family == "llama":
                _permute_neurons(sd, [f"{base}.mlp.gate_proj", f"{base}.mlp.up_proj"], f"{base}.mlp.down_proj", rng)
            else:
                _permute_experts(sd, f"{base}.mlp", rng)
        else:
            base = f"bert.encoder.layer.{i}"
            attn = {
                "q": f"{base}.attention.self.query",
                "k": f"{base}.attention.self.key",
                "v": f"{base}.attention.self.value",
                "o": f"{base}.attention.output.dense",
            }
            _permute_heads(sd, attn, HEADS, HEADS, rng)
            _permute_neurons(sd, [f"{base}.intermediate.dense"], f"{base}.output.dense", rng)
    child = copy.deepcopy(parent)
    child.load_state_dict(sd, strict=True)
    return child


def _layer_dropped(parent: PreTrainedModel, family: str, sp: _Specials, drop: int) -> PreTrainedModel:
    """Remove one layer and renumber the rest, as in depth-pruned releases."""
    sd: dict[str, torch.Tensor] = {}
    for key, value in parent.state_dict().items():
        m = _LAYER_RE.match(key)
        if m is None:
            sd[key] = value.detach().clone()
            continue
        idx = int(m.group(2))
        if idx == drop:
            continue
        new_idx = idx - 1 if idx > drop else idx
        sd[f"{m.group(1)}{new_idx}.{m.group(3)}"] = value.detach().clone()
    child = _MODEL_CLASSES[family](_config(family, sp, parent.config.num_hidden_layers - 1))
    child.load_state_dict(sd, strict=True)
    child.eval()
    return child


def _partially_reinit(parent: PreTrainedModel, family: str, sp: _Specials, layer: int, seed: int) -> PreTrainedModel:
    """Replace every weight of one layer (attention, MLP, norms) with a fresh model's."""
    donor = _fresh(family, sp, seed)
    sd = {k: v.detach().clone() for k, v in parent.state_dict().items()}
    for key, value in donor.state_dict().items():
        if _layer_of(key) == layer:
            sd[key] = value.detach().clone()
    child = copy.deepcopy(parent)
    child.load_state_dict(sd, strict=True)
    return child


# --------------------------------------------------------------------------- expectations


def _expect(
    *,
    layer_map: list[list[int]] | None = None,
    new_layers: list[int] | None = None,
    derived: list[str] | None = None,
    independent: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "layer_map": layer_map or [],
        "new_layers": new_layers or [],
        "derived_components": derived or [],
        "independent_components": independent or [],
    }


def _identity_map(n: int = LAYERS) -> list[list[int]]:
    return [[i, i] for i in range(n)]


def _negative_expect(family: str) -> dict[str, Any]:
    """Different seeds: no layer may match and every candidate layer must show no evidence."""
    return _expect(new_layers=list(range(LAYERS)), independent=list(COMPONENTS[family]))


def _derived_expect(family: str, layer_map: list[list[int]], new_layers: list[int] | None = None) -> dict[str, Any]:
    return _expect(layer_map=layer_map, new_layers=new_layers, derived=list(COMPONENTS[family]))


# --------------------------------------------------------------------------- building


def _build_threads() -> int:
    try:
        return max(1, int(os.environ.get(ZOO_THREADS_ENV, "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def _quiet_and_threads() -> Iterator[None]:
    """Few torch threads and no per-save progress bars; restore both after.

    One thread by default: these matrices are tiny, so a second thread gains little on an idle 2-core box,
    while with any other torch process running (parallel test runs) 2 threads spin-wait on each other
    and steps got 10-40x slower (measured: 1 thread 32-49 ms/step, 2 threads 300-1300 ms/step under load).
    """
    threads = torch.get_num_threads()
    bars = hf_logging.is_progress_bar_enabled()
    torch.set_num_threads(_build_threads())
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if bars:
            hf_logging.enable_progress_bar()


def _tokenizer_config() -> dict[str, Any]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": SEQ_LEN,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }


def _load_manifest(root: Path) -> Zoo | None:
    path = root / ZOO_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("version") != ZOO_VERSION:
        return None
    model_paths = {name: root / meta["path"] for name, meta in data["models"].items()}
    if not all((p / "model.safetensors").is_file() for p in model_paths.values()):
        return None
    return Zoo(
        root=root,
        models=model_paths,
        pairs=[Pair(**p) for p in data["pairs"]],
        info=data["models"],
        build_seconds=float(data.get("build_seconds", 0.0)),
    )


# --------------------------------------------------------------------------- data for fixtures built on the zoo


@dataclass
class ZooData:
    """The zoo's tokenizer, special ids, token streams and raw sentences (for fixtures that build on the zoo)."""

    tokenizer: Tokenizer
    specials: _Specials
    corpora: dict[str, _Corpus]
    sentences: dict[str, dict[str, list[str]]]  # corpus name → {"train": [...], "held_out": [...]}


def corpus_sentences() -> dict[str, dict[str, list[str]]]:
    """The zoo's two synthetic corpora as sentences: A (training and tokenizer corpus) and B (fine-tuning)."""
    words = _lexicon()
    lang_a, lang_b = _language(words, seed=11), _language(words, seed=22)
    return {
        "A": {"train": lang_a.sentences(12000, seed=101), "held_out": lang_a.sentences(600, seed=102)},
        "B": {"train": lang_b.sentences(6000, seed=201), "held_out": lang_b.sentences(600, seed=202)},
    }


def specials_of(tok: Tokenizer, vocab: int | None = None) -> _Specials:
    """Special-token ids of a tokenizer with the zoo's special tokens; ``vocab`` overrides its size."""
    return _Specials(
        pad=tok.token_to_id("[PAD]"),
        cls=tok.token_to_id("[CLS]"),
        sep=tok.token_to_id("[SEP]"),
        mask=tok.token_to_id("[MASK]"),
        bos=tok.token_to_id("<s>"),
        eos=tok.token_to_id("</s>"),
        vocab=tok.get_vocab_size() if vocab is None else vocab,
    )


def tokenize_corpora(tok: Tokenizer, sentences: dict[str, dict[str, list[str]]]) -> dict[str, _Corpus]:
    """Token streams of every corpus under ``tok`` (the zoo's, or another tokenizer for vocabulary changes)."""
    return {
        name: _Corpus(name, _stream(tok, parts["train"]), _stream(tok, parts["held_out"]))
        for name, parts in sentences.items()
    }


def zoo_data(root: Path | None = None) -> ZooData:
    """The zoo's data: its saved tokenizer under ``root`` when there is one, else the same tokenizer learnt anew."""
    sentences = corpus_sentences()
    path = Path(root) / "tokenizer" / "tokenizer.json" if root is not None else None
    if path is not None and path.is_file():
        tok = Tokenizer.from_file(str(path))
    else:
        tok = _train_tokenizer(sentences["A"]["train"])
    return ZooData(tok, specials_of(tok), tokenize_corpora(tok, sentences), sentences)


def zoo_root(basetemp: Path) -> Path:
    """Where a test session keeps its zoo: one fixed path, so every fixture that asks shares one build."""
    override = os.environ.get(ZOO_DIR_ENV, "").strip()
    return Path(override) if override else Path(basetemp) / "lineage-zoo"


def build_zoo(root: Path, *, progress: Callable[[str], None] | None = None) -> Zoo:
    """Build (or reuse) the zoo under ``root``; ZOO.json is written last, so a partial build is redone."""
    root = Path(root)
    cached = _load_manifest(root)
    if cached is not None:
        if progress:
            progress(f"zoo: reusing {root / ZOO_FILE}")
        return cached
    with _quiet_and_threads():
        return _build(root, progress or (lambda _msg: None))


def _build(root: Path, say: Callable[[str], None]) -> Zoo:
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    (root / ZOO_FILE).unlink(missing_ok=True)
    models_dir = root / "models"
    if models_dir.exists():
        shutil.rmtree(models_dir)
    models_dir.mkdir()

    sentences = corpus_sentences()
    tok = _train_tokenizer(sentences["A"]["train"])
    tok_dir = root / "tokenizer"
    tok_dir.mkdir(exist_ok=True)
    tok.save(str(tok_dir / "tokenizer.json"))
    sp = specials_of(tok)
    corpora = tokenize_corpora(tok, sentences)
    say(f"zoo: tokenizer vocab {sp.vocab}, corpus A {len(corpora['A'].train)} tokens, B {len(corpora['B'].train)}")

    models: dict[str, Path] = {}
    info: dict[str, dict[str, Any]] = {}
    pairs: list[Pair] = []

    def save(name: str, model: PreTrainedModel, family: str, meta: dict[str, Any]) -> None:
        out = models_dir / name
        model.save_pretrained(out, safe_serialization=True)
        shutil.copyfile(tok_dir / "tokenizer.json", out / "tokenizer.json")
        (out / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(), indent=2) + "\n")
        models[name] = out
        info[name] = {
            "path": os.path.relpath(out, root),
            "family": family,
            "architecture": type(model).__name__,
            "layers": model.config.num_hidden_layers,
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            **meta,
        }

    def train(model: PreTrainedModel, family: str, name: str, corpus: str, steps: int, lr: float,
              seed: int) -> dict[str, Any]:
        stats = _train(model, family, corpora[corpus], sp, steps=steps, lr=lr, seed=seed)
        say(f"zoo: {name}: {steps} steps on {corpus}, loss {stats['loss_start']:.3f} -> {stats['loss_end']:.3f} "
            f"({stats['seconds']:.1f}s)")
        return stats

    def pair(family: str, candidate: str, reference: str, kind: PairKind, derivation: str,
             expect: dict[str, Any]) -> None:
        pairs.append(Pair(f"{candidate}~{reference}", family, candidate, reference, kind, derivation, expect))

    for family, n_seeds in SEEDS.items():
        comps = COMPONENTS[family]
        bases: dict[int, PreTrainedModel] = {}
        for seed in range(n_seeds):
            name = f"{family}-s{seed}"
            model = _fresh(family, sp, seed)
            stats = train(model, family, name, "A", BASE_STEPS, BASE_LR, seed)
            save(name, model, family, {"derivation": "base", "parent": None, "seed": seed, "training": [stats]})
            bases[seed] = model
        for i, j in itertools.combinations(range(n_seeds), 2):
            pair(family, f"{family}-s{j}", f"{family}-s{i}", "negative", "seed", _negative_expect(family))

        parent_name, parent = f"{family}-s0", bases[0]

        # Fine-tuned on a different distribution.
        name = f"{family}-s0-ft"
        child = copy.deepcopy(parent)
        stats = train(child, family, name, "B", CONTINUE_STEPS, CONTINUE_LR, 1000)
        save(name, child, family, {"derivation": "fine-tuned", "parent": parent_name, "training": [stats]})
        pair(family, name, parent_name, "derived", "fine-tuned", _derived_expect(family, _identity_map()))

        # Permuted heads and neurons: same function, shuffled coordinates.
        name = f"{family}-s0-perm"
        save(name, _permuted(parent, family, seed=2000), family,
             {"derivation": "permuted", "parent": parent_name, "training": []})
        pair(family, name, parent_name, "derived", "permuted", _derived_expect(family, _identity_map()))

        # Layer dropped, then healed briefly on A.
        name = f"{family}-s0-drop{DROPPED_LAYER}"
        child = _layer_dropped(parent, family, sp, DROPPED_LAYER)
        stats = train(child, family, name, "A", DROP_STEPS, CONTINUE_LR, 3000)
        save(name, child, family, {"derivation": "layer-dropped", "parent": parent_name,
                                   "dropped_layer": DROPPED_LAYER, "training": [stats]})
        layer_map = [[c, r] for c, r in enumerate(i for i in range(LAYERS) if i != DROPPED_LAYER)]
        pair(family, name, parent_name, "derived", "layer-dropped", _derived_expect(family, layer_map))

        # Continued pretraining on the same distribution with another data order.
        name = f"{family}-s0-cpt"
        child = copy.deepcopy(parent)
        stats = train(child, family, name, "A", CONTINUE_STEPS, CONTINUE_LR, 4000)
        save(name, child, family, {"derivation": "continued-pretraining", "parent": parent_name, "training": [stats]})
        pair(family, name, parent_name, "derived", "continued-pretraining", _derived_expect(family, _identity_map()))

        # One layer re-initialised from a fresh seed, then trained.
        name = f"{family}-s0-reinit{REINIT_LAYER}"
        child = _partially_reinit(parent, family, sp, REINIT_LAYER, seed=5000)
        stats = train(child, family, name, "A", CONTINUE_STEPS, CONTINUE_LR, 5001)
        save(name, child, family, {"derivation": "partial-reinit", "parent": parent_name,
                                   "reinit_layer": REINIT_LAYER, "training": [stats]})
        kept = [[i, i] for i in range(LAYERS) if i != REINIT_LAYER]
        pair(family, name, parent_name, "derived", "partial-reinit",
             _derived_expect(family, kept, new_layers=[REINIT_LAYER]))

        # Plain dtype cast: the same weights, rounded.
        name = f"{family}-s0-bf16"
        save(name, copy.deepcopy(parent).to(torch.bfloat16), family,
             {"derivation": "bf16-cast", "parent": parent_name, "training": []})
        pair(family, name, parent_name, "identical", "bf16-cast", _derived_expect(family, _identity_map()))

        # Fresh model that starts from the parent's token embedding only. The decoders' untied lm_head is
        # NOT copied (so "text.output_head" is independent); BERT's MLM decoder is tied to the embedding.
        name = f"{family}-emb-from-s0"
        child = _fresh(family, sp, seed=6000)
        with torch.no_grad():
            child.get_input_embeddings().weight.copy_(parent.get_input_embeddings().weight)
        stats = train(child, family, name, "A", EMB_REUSE_STEPS, BASE_LR, 6001)
        save(name, child, family, {"derivation": "embeddings-reused", "parent": parent_name, "seed": 6000,
                                   "copied": [_EMBEDDING_KEY[family]], "training": [stats]})
        pair(family, name, parent_name, "derived", "embeddings-reused",
             _expect(new_layers=list(range(LAYERS)), derived=["text.embedding"],
                     independent=[c for c in comps if c != "text.embedding"]))

    seconds = round(time.perf_counter() - t0, 1)
    manifest = {
        "version": ZOO_VERSION,
        "build_seconds": seconds,
        "build_threads": torch.get_num_threads(),
        "tokenizer": {"path": "tokenizer/tokenizer.json", "vocab_size": sp.vocab},
        "corpora": {k: {"train_tokens": len(c.train), "held_out_tokens": len(c.held_out)} for k, c in corpora.items()},
        "models": info,
        "pairs": [asdict(p) for p in pairs],
    }
    tmp = root / (ZOO_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(root / ZOO_FILE)
    say(f"zoo: built {len(models)} models, {len(pairs)} pairs in {seconds}s")
    return Zoo(root=root, models=models, pairs=pairs, info=info, build_seconds=seconds)


if __name__ == "__main__":
    import sys
    import tempfile

    default = Path(tempfile.gettempdir()) / "simsa-lineage-zoo"
    zoo = build_zoo(Path(sys.argv[1]) if len(sys.argv) > 1 else default, progress=print)
    print(f"{len(zoo.models)} models, {len(zoo.pairs)} pairs, {zoo.build_seconds}s")
