"""Tokenizer provenance: a separate finding, never weight evidence.

Reusing a tokenizer is allowed and common; its overlap is reported on its own and used for one practical purpose:
aligning embedding rows by token string, so that a candidate with an extended or reordered vocabulary is still
compared row by row with the reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from simsa.errors import CheckpointError


@dataclass
class Vocabulary:
    tokens: dict[str, int]  # token string → id
    merges: list[str] = field(default_factory=list)  # BPE merges in rank order, "a b"
    special: list[str] = field(default_factory=list)
    kind: str = ""  # BPE, WordPiece, Unigram, WordLevel, vocab.txt, vocab.json
    source: str = ""


def _merge_text(m: object) -> str:
    return " ".join(m) if isinstance(m, list) else str(m)


def _read_json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path.name}: not a readable {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name}: not a readable {what}: expected a JSON object")
    return data


def load_vocabulary(files: dict[str, Path]) -> Vocabulary | None:
    """Read the vocabulary from ``tokenizer.json`` or ``vocab.json``/``merges.txt`` or ``vocab.txt``.

    SentencePiece ``tokenizer.model`` files alone are not parsed (protobuf); they yield None and the report says so.
    """
    if "tokenizer.json" in files:
        path = files["tokenizer.json"]
        data = _read_json_object(path, "tokenizer file")
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        kind = str(model.get("type") or "")
        vocab = model.get("vocab")
        tokens: dict[str, int] = {}
        if isinstance(vocab, dict):
            tokens = {str(k): int(v) for k, v in vocab.items() if isinstance(v, int)}
        elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
            tokens = {str(item[0]): i for i, item in enumerate(vocab) if isinstance(item, list) and item}
        special = []
        added_tokens = data.get("added_tokens")
        for added in added_tokens if isinstance(added_tokens, list) else []:
            if isinstance(added, dict) and "content" in added and isinstance(added.get("id"), int):
                tokens.setdefault(str(added["content"]), int(added["id"]))
                if added.get("special"):
                    special.append(str(added["content"]))
        raw_merges = model.get("merges")
        merges = [_merge_text(m) for m in raw_merges] if isinstance(raw_merges, list) else []
        return Vocabulary(tokens, merges, sorted(special), kind or "tokenizer.json", path.name)
    if "vocab.json" in files:
        path = files["vocab.json"]
        raw = _read_json_object(path, "vocabulary")
        tokens = {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}
        merges: list[str] = []
        if "merges.txt" in files:
            lines = files["merges.txt"].read_text(encoding="utf-8", errors="replace").splitlines()
            merges = [ln for ln in lines if ln and not ln.startswith("#version")]
        return Vocabulary(tokens, merges, [], "BPE", path.name)
    if "vocab.txt" in files:
        path = files["vocab.txt"]
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return Vocabulary({tok: i for i, tok in enumerate(lines)}, [], [], "WordPiece", path.name)
    return None


def token_alignment(cand: Vocabulary, ref: Vocabulary) -> list[tuple[int, int]]:
    """(candidate id, reference id) for every token string both vocabularies hold, sorted by candidate id."""
    return sorted((cid, ref.tokens[tok]) for tok, cid in cand.tokens.items() if tok in ref.tokens)


def compare_vocabularies(cand: Vocabulary | None, ref: Vocabulary | None) -> dict:
    """The ``tokenizer`` section of a comparison."""
    if cand is None or ref is None:
        missing = [n for n, v in (("candidate", cand), ("reference", ref)) if v is None]
        return {"available": False, "note": f"no readable vocabulary for the {' and '.join(missing)}"}
    shared = set(cand.tokens) & set(ref.tokens)
    union = set(cand.tokens) | set(ref.tokens)
    same_id = sum(1 for t in shared if cand.tokens[t] == ref.tokens[t])
    out = {
        "available": True,
        "candidate": {"kind": cand.kind, "size": len(cand.tokens), "source": cand.source},
        "reference": {"kind": ref.kind, "size": len(ref.tokens), "source": ref.source},
        "shared_tokens": len(shared),
        "jaccard": round(len(shared) / len(union), 6) if union else 0.0,
        "same_id_agreement": round(same_id / len(shared), 6) if shared else 0.0,
        "special_tokens": {
            "shared": sorted(set(cand.special) & set(ref.special)),
            "candidate_only": sorted(set(cand.special) - set(ref.special)),
            "reference_only": sorted(set(ref.special) - set(cand.special)),
        },
    }
    if cand.merges and ref.merges:
        k = min(len(cand.merges), len(ref.merges))
        prefix = 0
        while prefix < k and cand.merges[prefix] == ref.merges[prefix]:
            prefix += 1
        ref_rank = {m: i for i, m in enumerate(ref.merges)}
        common = [m for m in cand.merges if m in ref_rank]
        out["merges"] = {
            "candidate": len(cand.merges),
            "reference": len(ref.merges),
            "shared": len(common),
            "identical_prefix": prefix,
            "same_rank_agreement": round(sum(1 for i, m in enumerate(cand.merges[:k]) if ref.merges[i] == m) / k, 6)
            if k else 0.0,
        }
    out["note"] = "Tokenizer reuse is common and allowed; this section never decides a verdict."
    return out
