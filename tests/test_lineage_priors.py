"""Tokenizer and architecture provenance: priors reported beside weight evidence, never deciding a verdict.

Tokenizers are real ``tokenizer.json`` files trained with the ``tokenizers`` library; configs are real
``transformers`` config dicts (no model is instantiated).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from simsa.errors import CheckpointError
from simsa.lineage.compare.evidence import _candidate_of_reference
from simsa.lineage.model.priors import compare_configs, known_architecture
from simsa.lineage.model.tokenizer import (
    PRIOR_LABEL,
    Vocabulary,
    compare_vocabularies,
    load_vocabulary,
    read_vocabulary,
    token_alignment,
)

# --------------------------------------------------------------------------- tokenizers


def _corpus(seed: int, syllables: list[str], n: int = 400) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(300)]
    return [" ".join(rng.choice(words, size=12)) for _ in range(n)]


LATIN = ["ka", "ne", "ri", "mo", "tu", "sa", "lo", "pe", "di", "gu", "ban", "ter", "ol", "is", "en", "ach"]
HANGUL = ["가", "나", "다", "라", "마", "바", "사", "아", "자", "차", "카", "타", "파", "하", "한", "국"]
SPECIALS = ["[UNK]", "<s>", "</s>", "<pad>"]


def _bpe(corpus: list[str], vocab_size: int = 300) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                                               show_progress=False))
    return tok


def _save(tok: Tokenizer | dict, path: Path) -> dict[str, Path]:
    path.mkdir(parents=True, exist_ok=True)
    text = tok.to_str() if isinstance(tok, Tokenizer) else json.dumps(tok, ensure_ascii=False)
    (path / "tokenizer.json").write_text(text, encoding="utf-8")
    return {"tokenizer.json": path / "tokenizer.json"}


def _extend(tok: Tokenizer, new_tokens: list[str], special: str) -> dict:
    """What a vocabulary extension does to tokenizer.json: new pieces and merges appended, a new special token."""
    data = json.loads(tok.to_str())
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    nxt = max(vocab.values()) + 1
    for piece in new_tokens:
        if piece not in vocab:
            vocab[piece] = nxt
            nxt += 1
            if len(piece) == 2:
                merges.append([piece[0], piece[1]])
    data["added_tokens"].append({"id": nxt, "content": special, "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": True})
    return data


@pytest.fixture(scope="module")
def toks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("tok")
    base = _bpe(_corpus(1, LATIN))
    other_latin = _bpe(_corpus(2, [*LATIN[::-1], "zu", "xo"]))
    korean = _bpe(_corpus(3, HANGUL))
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.pre_tokenizer = pre_tokenizers.Whitespace()
    wordpiece.train_from_iterator(_corpus(1, LATIN), trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=SPECIALS, show_progress=False))
    hangul_pairs = [a + b for a in HANGUL[:8] for b in HANGUL[8:]]
    remapped = json.loads(base.to_str())
    vocab = remapped["model"]["vocab"]
    keys = sorted(vocab, key=vocab.get)
    order = np.random.default_rng(0).permutation(len(keys))
    remapped["model"]["vocab"] = {k: int(order[i]) for i, k in enumerate(keys)}
    remapped["added_tokens"] = []
    return {
        "base": _save(base, root / "base"),
        "extended": _save(_extend(base, HANGUL + hangul_pairs, "<|image|>"), root / "extended"),
        "other_latin": _save(other_latin, root / "other_latin"),
        "korean": _save(korean, root / "korean"),
        "wordpiece": _save(wordpiece, root / "wordpiece"),
        "remapped": _save(remapped, root / "remapped"),
    }


def _cmp(toks: dict, cand: str, ref: str) -> dict:
    return compare_vocabularies(load_vocabulary(toks[cand]), load_vocabulary(toks[ref]))


def test_same_tokenizer(toks: dict) -> None:
    out = _cmp(toks, "base", "base")
    size = len(load_vocabulary(toks["base"]).tokens)
    assert out["available"] and out["relation"] == "same" and out["label"] == PRIOR_LABEL
    assert out["summary"] == f"same tokenizer ({size} tokens at the same ids, same merges)"
    assert out["jaccard"] == 1.0 and out["same_id_agreement"] == 1.0
    assert out["merges"]["order"] == "same" and out["merges"]["kendall_tau"] == 1.0
    assert out["pipeline"] == {"normalizer": "same", "pre_tokenizer": "same", "decoder": "same"}
    assert out["model"] == {"candidate": "BPE", "reference": "BPE", "same": True}


def test_extended_vocabulary_keeps_ids_and_merge_order(toks: dict) -> None:
    out = _cmp(toks, "extended", "base")
    base, ext = load_vocabulary(toks["base"]), load_vocabulary(toks["extended"])
    added = len(ext.tokens) - len(base.tokens)
    assert out["relation"] == "extends" and added > 40
    assert out["summary"] == (f"candidate's vocabulary extends the reference's (all {len(base.tokens)} reference "
                              f"tokens at the same ids, {added} added; merges agree in order)")
    assert out["reference_tokens_at_same_id"] == 1.0
    merges = out["merges"]
    assert merges["order"] == "reference is a prefix" and merges["first_n_found"] == 1.0
    assert merges["identical_prefix"] == len(base.merges) == merges["reference"] < merges["candidate"]
    assert merges["kendall_tau"] == 1.0 and merges["spearman_rho"] == 1.0
    assert "prefix" in merges["meaning"]
    special = out["special_tokens"]
    assert special["shared"] == sorted(SPECIALS) and special["candidate_only"] == ["<|image|>"]
    assert special["same_ids"] and {d["token"]: d["candidate_id"] for d in special["details"]}["<s>"] == 1
    assert all(d["candidate_id"] == d["reference_id"] for d in special["details"])
    # The other way round: the reference's vocabulary is the larger one.
    back = _cmp(toks, "base", "extended")
    assert back["relation"] == "subset" and "cut-down copy" in back["summary"]
    assert back["merges"]["order"] == "candidate is a prefix"


def test_unrelated_and_independently_trained_tokenizers(toks: dict) -> None:
    out = _cmp(toks, "korean", "base")
    assert out["relation"] == "unrelated" and out["summary"].startswith("vocabularies unrelated (Jaccard 0.0")
    other = _cmp(toks, "other_latin", "base")
    assert other["relation"] not in ("same", "extends", "subset", "same vocabulary")
    assert other["merges"]["order"] == "differ" and "merges differ in order" in other["summary"]
    assert other["merges"]["first_n_found"] < 0.95
    assert other["special_tokens"]["same_ids"]  # the same special tokens first: allowed and common


def test_remapped_ids_and_wordpiece(toks: dict) -> None:
    out = _cmp(toks, "remapped", "base")
    assert out["relation"] == "remapped" and out["jaccard"] == 1.0 and out["same_id_agreement"] < 0.1
    wp = _cmp(toks, "wordpiece", "base")
    assert wp["model"] == {"candidate": "WordPiece", "reference": "BPE", "same": False}
    assert "WordPiece vs BPE" in wp["summary"] and "merges" not in wp
    assert wp["pipeline"]["normalizer"] == "different"


def test_alignment_follows_token_strings(toks: dict) -> None:
    ext, base = load_vocabulary(toks["extended"]), load_vocabulary(toks["base"])
    pairs = token_alignment(ext, base)
    assert len(pairs) == len(base.tokens) and all(c == r for c, r in pairs)


_TOKEN_TABLES = st.dictionaries(st.text(alphabet="abc▁한", max_size=3), st.integers(0, 40), max_size=30)


@settings(max_examples=200, deadline=None)
@given(_TOKEN_TABLES, _TOKEN_TABLES)
def test_token_alignment_pairs_every_shared_string_by_candidate_id(cand: dict[str, int], ref: dict[str, int]) -> None:
    # Ids may repeat (a hostile file can give two strings one id): rows are ordered by candidate, then reference id.
    pairs = token_alignment(Vocabulary(cand), Vocabulary(ref))
    assert pairs.dtype == np.int64 and pairs.shape == (len(cand.keys() & ref.keys()), 2)
    assert pairs.tolist() == sorted([cid, ref[tok]] for tok, cid in cand.items() if tok in ref)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=40))
def test_reference_to_candidate_table_keeps_the_last_pair_of_a_reference_id(rows: list[tuple[int, int]]) -> None:
    pairs = np.array(sorted(rows), dtype=np.int64)
    table = _candidate_of_reference(pairs)
    expected = {r: c for c, r in pairs.tolist()}  # the mapping an anchor row's reference id is looked up in
    assert {r: int(c) for r, c in enumerate(table) if c >= 0} == expected


def test_token_list_vocabulary_as_gguf_gives_it() -> None:
    tokens = ["<unk>", "<s>", "</s>", "▁the", "▁a", "▁the"]  # a repeated string keeps its first id
    vocab = Vocabulary.from_tokens(tokens, merges=[["▁", "t"], "h e"], special=["<s>", "</s>"], source="model.gguf")
    assert vocab.tokens == {"<unk>": 0, "<s>": 1, "</s>": 2, "▁the": 3, "▁a": 4}
    assert vocab.merges == ["▁ t", "h e"] and vocab.kind == "token list" and vocab.special == ["</s>", "<s>"]
    bigger = Vocabulary.from_tokens([*tokens[:5], "▁한", "▁국"], source="other.gguf")
    out = compare_vocabularies(bigger, vocab)
    assert out["relation"] == "extends" and out["pipeline"]["normalizer"] == "unknown"
    with pytest.raises(CheckpointError, match=r"model\.gguf: token 1 is a int, not a string"):
        Vocabulary.from_tokens(["a", 7], source="model.gguf")  # type: ignore[list-item]


HOSTILE = {
    "not-json": b"{not json",
    "list": b"[1, 2, 3]",
    "not-utf8": b'{"model": {"vocab": {"\xff": 1}}}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "huge-int": b'{"model": {"vocab": {"a": 1' + b"0" * 5000 + b"}}}",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_malformed_tokenizer_files_are_unavailable_with_a_reason(kind: str, tmp_path: Path,
                                                                 toks: dict) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_bytes(HOSTILE[kind])
    files = {"tokenizer.json": path}
    with pytest.raises(CheckpointError, match=r"^tokenizer\.json: "):
        load_vocabulary(files)
    vocab, reason = read_vocabulary(files)
    assert vocab is None and reason and reason.startswith("tokenizer.json: ") and "\n" not in reason
    out = compare_vocabularies(vocab, load_vocabulary(toks["base"]), reasons={"candidate": reason})
    assert out["available"] is False and out["summary"] == "tokenizer comparison unavailable"
    assert out["note"].startswith("no readable vocabulary for the candidate (candidate: tokenizer.json: ")


def test_odd_but_valid_tokenizer_files(tmp_path: Path, toks: dict) -> None:
    odd = {"model": {"type": "BPE", "vocab": {"a": 0, "b": True, "c": -3, "d": "7", "e": 1},
                     "merges": [["a", "e"], 5, None, "a b"]},
           "added_tokens": [{"id": "x", "content": "<bad>"}, {"id": 2, "content": "<s>", "special": True}, 4]}
    vocab = load_vocabulary(_save(odd, tmp_path / "odd"))
    assert vocab is not None and vocab.tokens == {"a": 0, "e": 1, "<s>": 2} and vocab.merges == ["a e", "a b"]
    empty = load_vocabulary(_save({"model": {"vocab": 7, "merges": 3}, "added_tokens": 5}, tmp_path / "empty"))
    out = compare_vocabularies(empty, load_vocabulary(toks["base"]))
    assert out["available"] is False and out["candidate"]["size"] == 0 and "holds no tokens" in out["note"]
    only_model = tmp_path / "tokenizer.model"
    only_model.write_bytes(b"\x00")
    assert read_vocabulary({"tokenizer.model": only_model}) == (
        None, "only tokenizer.model (SentencePiece protobuf), which is not parsed")
    assert read_vocabulary({})[1] == "no tokenizer.json, vocab.json or vocab.txt"
    missing = compare_vocabularies(None, None)
    assert missing["available"] is False and "candidate and reference" in missing["note"]


def test_vocab_txt_and_vocab_json_with_merges(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n##s\n", encoding="utf-8")
    wp = load_vocabulary({"vocab.txt": tmp_path / "vocab.txt"})
    assert wp.kind == "WordPiece" and wp.tokens["##s"] == 3 and wp.pipeline is None
    (tmp_path / "vocab.json").write_text(json.dumps({"h": 0, "e": 1, "he": 2}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nh e\n", encoding="utf-8")
    bpe = load_vocabulary({"vocab.json": tmp_path / "vocab.json", "merges.txt": tmp_path / "merges.txt"})
    assert bpe.kind == "BPE" and bpe.merges == ["h e"]


# --------------------------------------------------------------------------- architecture


def _cfg(name: str, **kwargs: object) -> dict:
    import transformers

    return getattr(transformers, name)(**kwargs).to_dict()


SMALL_LLAMA = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 8,
               "intermediate_size": 512, "vocab_size": 1000}


def test_same_architecture() -> None:
    cfg = _cfg("LlamaConfig", **SMALL_LLAMA)
    out = compare_configs(cfg, dict(cfg))
    assert out["verdict"] == "same" and out["different"] == {} and out["groups"] == {}
    assert out["summary"] == "same architecture as the reference (llama, every compared field equal)"
    assert out["label"] == PRIOR_LABEL and out["share_equal"] == 1.0


def test_modified_llama_is_grouped() -> None:
    ref = _cfg("LlamaConfig", **SMALL_LLAMA)
    cand = _cfg("LlamaConfig", **{**SMALL_LLAMA, "num_hidden_layers": 6, "num_key_value_heads": 2,
                                  "vocab_size": 1200, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5},
                rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    out = compare_configs(cand, ref)
    assert out["verdict"] == "same family, modified" and out["same_model_type"]
    assert set(out["groups"]) == {"shape", "positional", "normalisation"}
    assert list(out["groups"]["shape"]) == ["num_hidden_layers", "num_key_value_heads", "vocab_size"]
    assert out["groups"]["positional"]["rope_theta"] == {"candidate": 500000.0, "reference": 10000.0}
    assert out["different"]["num_hidden_layers"] == {"candidate": 6, "reference": 4}
    assert out["summary"].startswith("architecture of llama with modifications — shape: num_hidden_layers 4→6, "
                                     "num_key_value_heads 8→2, vocab_size 1000→1200; positional: ")
    assert "normalisation: rms_norm_eps 1e-06→1e-05" in out["summary"]
    assert "transformers_version" not in out["same"] and "initializer_range" not in out["same"]


def test_old_style_rope_fields_compare_with_rope_parameters() -> None:
    new = _cfg("LlamaConfig", **SMALL_LLAMA)
    old = {k: v for k, v in new.items() if k != "rope_parameters"} | {"rope_theta": 10000.0, "rope_scaling": None}
    assert compare_configs(old, new)["verdict"] == "same"


def test_moe_and_different_families() -> None:
    moe = _cfg("Qwen3MoeConfig", hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
               intermediate_size=512, moe_intermediate_size=128, vocab_size=1000)
    more_experts = dict(moe, num_experts_per_tok=4, num_local_experts=64, sliding_window=4096,
                        use_sliding_window=True)
    out = compare_configs(more_experts, moe)
    assert out["verdict"] == "same family, modified"
    assert set(out["groups"]["moe"]) == {"num_experts_per_tok", "num_local_experts"}
    assert set(out["groups"]["attention"]) == {"sliding_window", "use_sliding_window"}
    llama = _cfg("LlamaConfig", **SMALL_LLAMA)
    diff = compare_configs(moe, llama)
    assert diff["verdict"] == "different"
    assert diff["summary"].startswith("different architectures: candidate qwen3_moe (Qwen3-MoE), reference llama "
                                      "(Llama);")
    bert = compare_configs(_cfg("BertConfig"), llama)
    assert bert["verdict"] == "different" and bert["family"]["candidate"]["family"] == "bert"


def test_renamed_model_type_is_still_the_same_family() -> None:
    moe = _cfg("Qwen3MoeConfig", hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2)
    renamed = dict(moe, model_type="sovereign_moe", architectures=["SovereignMoeForCausalLM"])
    out = compare_configs(renamed, moe)
    assert out["verdict"] == "same family, modified" and not out["same_model_type"]
    assert "renamed model_type 'sovereign_moe'" in out["summary"]
    assert out["family"]["candidate"]["confidence"] == "inferred"


@pytest.mark.parametrize(("name", "kwargs", "family"), [
    ("LlamaConfig", {}, "llama"),
    ("Qwen2Config", {}, "qwen2"),
    ("Qwen3Config", {}, "qwen3"),
    ("Qwen3MoeConfig", {}, "qwen3_moe"),
    ("Qwen2MoeConfig", {}, "qwen2_moe"),
    ("DeepseekV3Config", {}, "deepseek_v3"),
    ("Glm4Config", {}, "glm4"),
    ("Glm4MoeConfig", {}, "glm4_moe"),
    ("Gemma2Config", {}, "gemma2"),
    ("Gemma3TextConfig", {}, "gemma3"),
    ("MistralConfig", {}, "mistral"),
    ("MixtralConfig", {}, "mixtral"),
    ("Phi3Config", {}, "phi3"),
    ("GPT2Config", {}, "gpt2"),
    ("GPTNeoXConfig", {}, "gpt_neox"),
    ("BertConfig", {}, "bert"),
])
def test_known_architecture_by_model_type_and_by_shape(name: str, kwargs: dict, family: str) -> None:
    cfg = _cfg(name, **kwargs)
    declared = known_architecture(cfg)
    assert declared["family"] == family and declared["confidence"] == "declared"
    assert declared["label"] == PRIOR_LABEL and declared["summary"].startswith("follows ")
    anonymous = dict(cfg, model_type="acme", architectures=None)
    inferred = known_architecture(anonymous)
    # Field names alone cannot tell GLM-4 from Llama; every other family keeps its shape signature.
    expected = "llama" if family == "glm4" else family
    assert (inferred["family"], inferred["confidence"]) == (expected, "inferred"), inferred["basis"]
    assert inferred["summary"].startswith("probably follows ")


def test_known_architecture_from_class_and_traits() -> None:
    cfg = _cfg("DeepseekV3Config")
    by_class = known_architecture(dict(cfg, model_type="x", architectures=["DeepseekV3ForCausalLM"]))
    assert by_class["basis"] == "class 'DeepseekV3ForCausalLM'" and by_class["confidence"] == "declared"
    traits = " ".join(by_class["traits"])
    assert "multi-head latent attention (kv_lora_rank 512" in traits and "256 routed experts, 8 per token, 1 shared" \
        in traits
    vl = known_architecture(_cfg("Qwen2VLConfig"))
    assert vl["family"] == "qwen2_vl" and set(vl["parts"]) >= {"text", "vision"}
    assert known_architecture(None)["available"] is False
    assert known_architecture({"foo": 1})["family"] is None
    assert compare_configs(None, cfg)["available"] is False
