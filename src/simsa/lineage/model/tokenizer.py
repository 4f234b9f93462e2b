"""Tokenizer provenance: a prior, reported apart from weight evidence and never deciding a verdict.

Reusing a tokenizer is allowed and common; its overlap is reported on its own and used for one practical purpose:
aligning embedding rows by token string, so that a candidate with an extended or reordered vocabulary is still
compared row by row with the reference. The provenance section says how the two tokenizers relate — the same one, an
extension (the parent's tokens at the same ids, more added, the parent's BPE merges kept as a prefix), a cut-down copy,
a remapping, or unrelated — because that tells a reader where to look, not whether weights were copied.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simsa.errors import CheckpointError

PRIOR_LABEL = "prior — not weight evidence"
MAX_TOKENIZER_BYTES = 256 << 20  # real tokenizer.json files are tens of MB; anything far larger is refused
MAX_TOKEN_ID = 2**31 - 1  # no vocabulary comes near; a larger id in a file is not a token of any embedding
MERGE_PREFIX_N = 10_000  # the reference's first N merges are looked up in the candidate's
MAX_TOKEN_DETAILS = 200  # shared special/added tokens listed with their ids
NEAR_ALL = 0.99  # "all reference tokens at the same ids" tolerates 1 % changed (reserved slots reused)
ORDER_AGREES = 0.95  # Kendall tau and first-N share at which merge orders are said to agree


@dataclass
class Vocabulary:
    tokens: dict[str, int]  # token string → id
    merges: list[str] = field(default_factory=list)  # BPE merges in rank order, "a b"
    special: list[str] = field(default_factory=list)
    kind: str = ""  # BPE, WordPiece, Unigram, WordLevel, vocab.txt, vocab.json, token list
    source: str = ""
    added: list[str] = field(default_factory=list)  # every added token (special or not), as tokenizer.json lists them
    pipeline: dict[str, Any] | None = None  # normalizer / pre_tokenizer / decoder from tokenizer.json; None: unknown

    @classmethod
    def from_tokens(cls, tokens: Sequence[str], *, merges: Iterable[str] = (), special: Iterable[str] = (),
                    kind: str = "token list", source: str = "token list") -> Vocabulary:
        """A vocabulary from token strings in id order, e.g. the ``tokenizer.ggml.tokens`` of a GGUF file.

        A string listed twice keeps its first id (GGUF files of some models repeat placeholder tokens).
        """
        ids: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not isinstance(tok, str):
                raise CheckpointError(f"{source}: token {i} is a {type(tok).__name__}, not a string")
            ids.setdefault(tok, i)
        merge_list = [_merge_text(m) for m in merges]
        return cls(ids, merge_list, sorted({str(s) for s in special}), kind, source)


def _merge_text(m: object) -> str:
    return " ".join(str(x) for x in m) if isinstance(m, list | tuple) else str(m)


def _read_text(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_TOKENIZER_BYTES:
            raise CheckpointError(f"{path.name}: {size} bytes; {what}s are limited to {MAX_TOKENIZER_BYTES} bytes")
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise CheckpointError(f"{path.name}: cannot read the {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path.name}: not a readable {what}: not UTF-8 at byte {exc.start}") from exc


def _read_json_object(path: Path, what: str) -> dict:
    text = _read_text(path, what)
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise CheckpointError(f"{path.name}: not a readable {what}: {exc}") from exc
    except RecursionError:
        raise CheckpointError(f"{path.name}: not a readable {what}: nested too deeply") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name}: not a readable {what}: expected a JSON object")
    return data


def _is_id(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_TOKEN_ID


def _from_tokenizer_json(path: Path) -> Vocabulary:
    data = _read_json_object(path, "tokenizer file")
    raw_model = data.get("model")
    model = raw_model if isinstance(raw_model, dict) else {}
    kind = str(model.get("type") or "")
    vocab = model.get("vocab")
    tokens: dict[str, int] = {}
    if isinstance(vocab, dict):
        tokens = {str(k): int(v) for k, v in vocab.items() if _is_id(v)}
    elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        tokens = {str(item[0]): i for i, item in enumerate(vocab) if isinstance(item, list) and item}
    special, added = [], []
    added_tokens = data.get("added_tokens")
    for item in added_tokens if isinstance(added_tokens, list) else []:
        if isinstance(item, dict) and "content" in item and _is_id(item.get("id")):
            content = str(item["content"])
            tokens.setdefault(content, int(item["id"]))
            added.append(content)
            if item.get("special"):
                special.append(content)
    raw_merges = model.get("merges")
    merges = [_merge_text(m) for m in raw_merges if isinstance(m, str | list)] if isinstance(raw_merges, list) else []
    pipeline = {key: data.get(key) for key in ("normalizer", "pre_tokenizer", "decoder")}
    return Vocabulary(tokens, merges, sorted(set(special)), kind or "tokenizer.json", path.name, added, pipeline)


def load_vocabulary(files: dict[str, Path]) -> Vocabulary | None:
    """Read the vocabulary from ``tokenizer.json`` or ``vocab.json``/``merges.txt`` or ``vocab.txt``.

    SentencePiece ``tokenizer.model`` files alone are not parsed (protobuf); they yield None and the report says so.
    An unreadable file raises CheckpointError (one line naming it); ``read_vocabulary`` returns the reason instead.
    """
    if "tokenizer.json" in files:
        return _from_tokenizer_json(files["tokenizer.json"])
    if "vocab.json" in files:
        path = files["vocab.json"]
        raw = _read_json_object(path, "vocabulary")
        tokens = {str(k): int(v) for k, v in raw.items() if _is_id(v)}
        merges: list[str] = []
        if "merges.txt" in files:
            lines = _read_text(files["merges.txt"], "merges file").splitlines()
            merges = [ln for ln in lines if ln and not ln.startswith("#version")]
        return Vocabulary(tokens, merges, [], "BPE", path.name)
    if "vocab.txt" in files:
        path = files["vocab.txt"]
        lines = _read_text(path, "vocabulary").splitlines()
        ids: dict[str, int] = {}
        for i, tok in enumerate(lines):
            ids.setdefault(tok, i)
        return Vocabulary(ids, [], [], "WordPiece", path.name)
    return None


def read_vocabulary(files: dict[str, Path]) -> tuple[Vocabulary | None, str | None]:
    """Like ``load_vocabulary`` but never raises: (vocabulary, None) or (None, why there is none).

    A hostile or malformed tokenizer file must not stop a weight comparison; the tokenizer section then says
    "unavailable" with this reason.
    """
    try:
        vocab = load_vocabulary(files)
    except CheckpointError as exc:
        return None, str(exc)
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:  # defensive: odd types deep in the file
        return None, f"tokenizer files could not be parsed: {type(exc).__name__}"
    if vocab is None:
        if "tokenizer.model" in files:
            return None, "only tokenizer.model (SentencePiece protobuf), which is not parsed"
        return None, "no tokenizer.json, vocab.json or vocab.txt"
    return vocab, None


def token_alignment(cand: Vocabulary, ref: Vocabulary) -> np.ndarray:
    """(candidate id, reference id) rows for every token string both vocabularies hold, sorted by candidate id.

    An int64 array of shape (n, 2): a scan pairs one candidate with hundreds of references' vocabularies of up to
    150 k tokens, so the pairing stays in C (set intersection, then a sort).
    """
    common = cand.tokens.keys() & ref.tokens.keys()
    c = np.fromiter(map(cand.tokens.__getitem__, common), np.int64, len(common))
    r = np.fromiter(map(ref.tokens.__getitem__, common), np.int64, len(common))
    order = np.lexsort((r, c))
    return np.stack([c[order], r[order]], axis=1)


# --- comparison


def _n(x: int) -> str:
    """32000 → "32 000", as the summary reads aloud."""
    return f"{x:,}".replace(",", " ")


def _rank_correlations(ref_ranks: list[int], cand_ranks: list[int]) -> tuple[float | None, float | None]:
    if len(ref_ranks) < 2:
        return None, None
    from scipy import stats

    tau = stats.kendalltau(ref_ranks, cand_ranks).statistic
    rho = stats.spearmanr(ref_ranks, cand_ranks).statistic
    clean = [None if v is None or not math.isfinite(float(v)) else round(float(v), 6) for v in (tau, rho)]
    return clean[0], clean[1]


def compare_merges(cand: list[str], ref: list[str], first_n: int = MERGE_PREFIX_N) -> dict:
    """BPE merge-order agreement.

    An extended vocabulary keeps its parent's merges, in the parent's order, as a prefix (new merges are appended), so
    the reference's first merges are all found in the candidate and the ranks of shared merges agree (Kendall τ ≈ 1).
    Tokenizers trained independently on similar text share many early merges too, but in a shuffled order.
    """
    k = min(len(cand), len(ref))
    prefix = 0
    while prefix < k and cand[prefix] == ref[prefix]:
        prefix += 1
    cand_rank: dict[str, int] = {}
    for i, m in enumerate(cand):
        cand_rank.setdefault(m, i)
    ref_rank: dict[str, int] = {}
    for i, m in enumerate(ref):
        ref_rank.setdefault(m, i)
    n = min(first_n, len(ref))
    found = sum(1 for m in ref[:n] if m in cand_rank) / n if n else 0.0
    both = [(i, cand_rank[m]) for m, i in sorted(ref_rank.items(), key=lambda kv: kv[1]) if m in cand_rank]
    tau, rho = _rank_correlations([a for a, _ in both], [b for _, b in both])
    if cand == ref:
        order = "same"
    elif prefix == len(ref):
        order = "reference is a prefix"
    elif prefix == len(cand):
        order = "candidate is a prefix"
    elif found >= ORDER_AGREES and tau is not None and tau >= ORDER_AGREES:
        order = "agree"
    else:
        order = "differ"
    return {
        "candidate": len(cand),
        "reference": len(ref),
        "shared": sum(1 for m in cand if m in ref_rank),
        "identical_prefix": prefix,
        "same_rank_agreement": round(sum(1 for i in range(k) if cand[i] == ref[i]) / k, 6) if k else 0.0,
        "first_n": n,
        "first_n_found": round(found, 6),
        "kendall_tau": tau,
        "spearman_rho": rho,
        "order": order,
        "meaning": "An extended vocabulary keeps the parent's merge order as a prefix; independently trained BPE "
                   "tokenizers share early merges in a shuffled order.",
    }


def _special_section(cand: Vocabulary, ref: Vocabulary) -> dict:
    cand_extra = set(cand.special) | set(cand.added)
    ref_extra = set(ref.special) | set(ref.added)
    shared_extra = sorted(cand_extra & ref_extra, key=lambda t: (ref.tokens.get(t, -1), t))
    details = [{"token": t, "candidate_id": cand.tokens.get(t), "reference_id": ref.tokens.get(t),
                "special": t in cand.special and t in ref.special} for t in shared_extra[:MAX_TOKEN_DETAILS]]
    shared_special = sorted(set(cand.special) & set(ref.special))
    return {
        "shared": shared_special,
        "candidate_only": sorted(set(cand.special) - set(ref.special)),
        "reference_only": sorted(set(ref.special) - set(cand.special)),
        "same_ids": all(cand.tokens.get(t) == ref.tokens.get(t) for t in shared_special),
        "details": details,
        "added": {"candidate": len(set(cand.added)), "reference": len(set(ref.added)), "shared": len(shared_extra)},
    }


def _pipeline_section(cand: Vocabulary, ref: Vocabulary) -> dict:
    out = {}
    for key in ("normalizer", "pre_tokenizer", "decoder"):
        if cand.pipeline is None or ref.pipeline is None:
            out[key] = "unknown"
        else:
            out[key] = "same" if cand.pipeline.get(key) == ref.pipeline.get(key) else "different"
    return out


def _relation(cand: Vocabulary, ref: Vocabulary, same_id: int, jaccard: float, agreement: float,
              merges: dict | None) -> tuple[str, str]:
    """(relation, one-line summary) of the candidate's vocabulary to the reference's."""
    nc, nr = len(cand.tokens), len(ref.tokens)
    merge_note = ""
    if merges is not None:
        if merges["order"] in ("same", "reference is a prefix", "candidate is a prefix", "agree"):
            merge_note = "; merges agree in order"
        else:
            tau = merges["kendall_tau"]
            merge_note = "; merges differ in order" + (f" (Kendall τ {tau:.2f})" if tau is not None else "")
    kinds = f"; {cand.kind} vs {ref.kind}" if cand.kind and ref.kind and cand.kind != ref.kind else ""
    if cand.tokens == ref.tokens and cand.merges == ref.merges:
        return "same", f"same tokenizer ({_n(nr)} tokens at the same ids" + (
            ", same merges)" if cand.merges else ")") + kinds
    if cand.tokens == ref.tokens:
        return "same vocabulary", f"same vocabulary ({_n(nr)} tokens at the same ids){merge_note}{kinds}"
    if nr and same_id / nr >= NEAR_ALL and nc > nr:
        at = "all" if same_id == nr else f"{_n(same_id)} of"
        return "extends", (f"candidate's vocabulary extends the reference's ({at} {_n(nr)} reference tokens at the "
                           f"same ids, {_n(nc - same_id)} added{merge_note}){kinds}")
    if nc and same_id / nc >= NEAR_ALL and nr > nc:
        at = "all" if same_id == nc else f"{_n(same_id)} of"
        return "subset", (f"candidate's vocabulary is a cut-down copy of the reference's ({at} {_n(nc)} candidate "
                          f"tokens at the reference's ids, {_n(nr - same_id)} reference tokens dropped"
                          f"{merge_note}){kinds}")
    if jaccard >= 0.9 and agreement < 0.5:
        return "remapped", (f"same tokens with different ids (Jaccard {jaccard:.2f}, {agreement:.0%} of shared tokens "
                            f"at the same id{merge_note}){kinds}")
    if jaccard >= 0.5:
        return "overlapping", (f"largely shared vocabularies (Jaccard {jaccard:.2f}, {agreement:.0%} of shared tokens "
                               f"at the same id{merge_note}){kinds}")
    if jaccard >= 0.1:
        return "partly overlapping", (f"partly overlapping vocabularies (Jaccard {jaccard:.2f}{merge_note}) — common "
                                      f"between tokenizers trained on similar text{kinds}")
    return "unrelated", f"vocabularies unrelated (Jaccard {jaccard:.2f}){kinds}"


def compare_vocabularies(cand: Vocabulary | None, ref: Vocabulary | None, *,
                         reasons: Mapping[str, str | None] | None = None, first_n: int = MERGE_PREFIX_N) -> dict:
    """The ``tokenizer`` section of a comparison: overlap, ids, merges, special tokens, pipeline and a summary.

    ``reasons`` ("candidate"/"reference" → why there is no vocabulary, from ``read_vocabulary``) is reported when a
    side has none, so a broken tokenizer file reads as "unavailable because …" rather than stopping the comparison.
    """
    reasons = reasons or {}
    if cand is None or ref is None:
        missing = [n for n, v in (("candidate", cand), ("reference", ref)) if v is None]
        why = "; ".join(f"{n}: {reasons[n]}" for n in missing if reasons.get(n))
        return {"available": False, "label": PRIOR_LABEL,
                "note": f"no readable vocabulary for the {' and '.join(missing)}" + (f" ({why})" if why else ""),
                "summary": "tokenizer comparison unavailable"}
    sides = {"candidate": {"kind": cand.kind, "size": len(cand.tokens), "source": cand.source},
             "reference": {"kind": ref.kind, "size": len(ref.tokens), "source": ref.source}}
    if not cand.tokens or not ref.tokens:
        empty = " and ".join(n for n, v in (("candidate", cand), ("reference", ref)) if not v.tokens)
        return {"available": False, "label": PRIOR_LABEL, **sides,
                "note": f"the {empty}'s tokenizer file holds no tokens", "summary": "tokenizer comparison unavailable"}
    shared = set(cand.tokens) & set(ref.tokens)
    union = set(cand.tokens) | set(ref.tokens)
    same_id = sum(1 for t in shared if cand.tokens[t] == ref.tokens[t])
    jaccard = len(shared) / len(union) if union else 0.0
    agreement = same_id / len(shared) if shared else 0.0
    merges = compare_merges(cand.merges, ref.merges, first_n) if cand.merges and ref.merges else None
    relation, summary = _relation(cand, ref, same_id, jaccard, agreement, merges)
    out = {
        "available": True,
        "label": PRIOR_LABEL,
        **sides,
        "shared_tokens": len(shared),
        "jaccard": round(jaccard, 6),
        "same_id_agreement": round(agreement, 6),
        "reference_tokens_at_same_id": round(same_id / len(ref.tokens), 6),
        "model": {"candidate": cand.kind, "reference": ref.kind, "same": cand.kind == ref.kind},
        "special_tokens": _special_section(cand, ref),
        "pipeline": _pipeline_section(cand, ref),
        "relation": relation,
        "summary": summary,
    }
    if merges is not None:
        out["merges"] = merges
    out["note"] = "Tokenizer reuse is common and allowed; this section is a prior and never decides a verdict."
    return out
