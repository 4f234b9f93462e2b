"""Originality summary: a lineage comparison read against a programme's originality rules (pure, no I/O).

The programme's minimum condition is that the model was trained from re-initialised weights, even where open-source
components are used; weights reused from another model are acceptable only where the program's gate allows it, and
then only declared, under an allowed licence and credited. This module maps the weight evidence of one
``simsa lineage compare`` result (component verdicts, identity counts, log10 p) onto those criteria and recommends a
gate result with its reasons. Every finding is relative to the one reference compared. Tokenizer and architecture
similarity ride along as labelled priors and never change a status.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

from simsa.errors import InputError
from simsa.lineage.model.roles import STACKS
from simsa.program.grades import Grade, strongest

COMPARE_SCHEMA = "simsa.lineage.compare/1"
SCHEMA = "simsa.originality/1"
PASS, FAIL, REVIEW = "pass", "fail", "needs review"
GROUPS = ("attention", "mlp", "experts", "shared_experts", "router", "embedding", "output_head", "norms", "projector",
          "other")
VERDICTS = ("identical", "derived", "independent", "inconclusive")
REUSED_WEIGHTS = ("reused_frozen", "reused_tuned")
PRIOR_LABEL = "prior — not weight evidence"
SCOPE = ("Findings are relative to the one reference compared: a component independent of it may still descend from "
         "another model.")
_COMPONENT_RE = re.compile(r"^([a-z]+)(?:\.([a-z_]+))?$")


def check_component_pattern(value: str) -> str:
    """A lineage component or stack name as the program file may write it: ``vision`` or ``vision.attention``."""
    m = _COMPONENT_RE.match(value.strip())
    if not m or m.group(1) not in STACKS or (m.group(2) is not None and m.group(2) not in GROUPS):
        raise ValueError(f"{value!r} is not a lineage component; expected a stack ({', '.join(STACKS)}) or "
                         f"STACK.GROUP such as vision.attention (groups: {', '.join(GROUPS)})")
    return value.strip()


def covers(pattern: str, component: str) -> bool:
    """Whether a stack or component pattern (``vision``, ``vision.mlp``) names a component (``vision.mlp``)."""
    return component == pattern or component.startswith(pattern + ".")


@dataclass(frozen=True)
class OriginalityRules:
    """What the program allows: see ``[stages.gates.originality]`` in docs/program-file.md.

    ``allow_reuse``: stacks or components whose weights may come from another model (default: none — every part is
    trained from re-initialised weights). ``allow_frozen``: such reused weights may be used unchanged (default
    false: they must have been trained further). ``allowed_licences``: licences reuse is acceptable under (None: any
    declared licence). ``require_credit``: reused parts must be credited.
    """

    allow_reuse: tuple[str, ...] = ()
    allow_frozen: bool = False
    allowed_licences: tuple[str, ...] | None = None
    require_credit: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> OriginalityRules:
        data = dict(data or {})
        licences = data.get("allowed_licences")
        return cls(allow_reuse=tuple(check_component_pattern(str(x)) for x in data.get("allow_reuse") or ()),
                   allow_frozen=bool(data.get("allow_frozen", False)),
                   allowed_licences=None if licences is None else tuple(str(x) for x in licences),
                   require_credit=bool(data.get("require_credit", True)))

    def allows(self, component: str) -> bool:
        return any(covers(p, component) for p in self.allow_reuse)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["allow_reuse"] = list(self.allow_reuse)
        out["allowed_licences"] = None if self.allowed_licences is None else list(self.allowed_licences)
        return out


# --- the validity card


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


@dataclass(frozen=True)
class Assumption:
    """One assumption of the null the comparison checked, with its outcome (passed, corrected, failed, not checked).

    ``excluded`` counts the residual coordinates left out, by reason, over both models (the exchangeability check).
    """

    check: str
    outcome: str
    detail: str = ""
    stack: str | None = None
    width: int | None = None
    kept: int | None = None
    excluded: tuple[tuple[str, int], ...] = ()

    def excluded_text(self) -> str:
        """``32 constant, 0 duplicated, 0 spiked (96 of 128 kept)``, or "" when nothing was counted."""
        text = ", ".join(f"{n} {reason}" for reason, n in self.excluded)
        if self.kept is not None and self.width is not None:
            text += f"{' ' if text else ''}({self.kept} of {self.width} kept)"
        return text

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"check": self.check, "outcome": self.outcome, "detail": self.detail}
        if self.stack is not None:
            out["stack"] = self.stack
        if self.width is not None:
            out["width"] = self.width
        if self.kept is not None:
            out["kept"] = self.kept
        if self.excluded:
            out["excluded"] = dict(self.excluded)
        return out


@dataclass(frozen=True)
class Calibration:
    """What the calibration bench measured for this model family at this threshold: the false-positive rate behind
    a ``derived`` verdict, and how many hard negatives (independently initialised pairs) it rests on."""

    hard_negatives: int
    derived: int
    upper_95: float
    family: str = ""
    threshold_log10: float | None = None
    models: int | None = None
    false_positive_rate: float | None = None
    inconclusive_rate: float | None = None
    source: str = ""

    def sentence(self) -> str:
        """The line an appeal panel reads: how often this family's unrelated pairs were called derived."""
        text = (f"{self.derived} of {self.hard_negatives} hard negatives of this family were called derived at this "
                f"threshold (95 % upper bound {_pct(self.upper_95)})")
        details = [self.family] if self.family else []
        if self.models is not None:
            details.append(f"{self.models} models")
        if self.threshold_log10 is not None:
            details.append(f"threshold log10 p ≤ {self.threshold_log10:g}")
        if self.inconclusive_rate is not None:
            details.append(f"{_pct(self.inconclusive_rate)} inconclusive")
        return text + (f"; {', '.join(details)}" if details else "") + "."

    def to_dict(self) -> dict:
        return asdict(self)


NO_CALIBRATION = "No calibration data for this family."


@dataclass(frozen=True)
class Validity:
    """The validity card of one compare result: the null, the assumptions checked and the measured error rate."""

    null: str
    method: str
    assumptions: tuple[Assumption, ...]
    calibration: Calibration | None
    family: str = ""  # the calibration family the pair was placed in (dense decoder, moe, encoder)

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Validity | None:
        """The card of a compare result; None when the result has none (written before cards were recorded).
        A malformed card raises InputError naming the field."""
        card = result.get("validity")
        if card is None:
            return None
        if not isinstance(card, dict):
            raise _bad("validity", "expected an object")
        for key in ("null", "method", "family"):
            if not isinstance(card.get(key) or "", str):
                raise _bad(f"validity.{key}", "expected text")
        items = card.get("assumptions")
        items = [] if items is None else items
        if not isinstance(items, list):
            raise _bad("validity.assumptions", "expected a list")
        calibration = _calibration(card.get("calibration"))
        return cls(str(card.get("null") or ""), str(card.get("method") or ""),
                   tuple(_assumption(a, f"validity.assumptions[{i}]") for i, a in enumerate(items)), calibration,
                   str(card.get("family") or (calibration.family if calibration is not None else "")))

    @property
    def calibration_line(self) -> str:
        if self.calibration is not None:
            return self.calibration.sentence()
        return NO_CALIBRATION if not self.family else f"{NO_CALIBRATION[:-1]} ({self.family})."

    def to_dict(self) -> dict:
        return {"null": self.null, "method": self.method, "family": self.family or None,
                "assumptions": [a.to_dict() for a in self.assumptions],
                "calibration": None if self.calibration is None else self.calibration.to_dict(),
                "calibration_line": self.calibration_line}


def _optional_count(value: object, where: str) -> int | None:
    if value is None:
        return None
    if not _count(value):
        raise _bad(where, f"expected a count, got {value!r}")
    return value


def _number(value: object, where: str, share: bool = False, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or (
            share and not 0 <= value <= 1):
        raise _bad(where, f"expected {'a share from 0 to 1' if share else 'a number'}, got {value!r}")
    return float(value)


def _assumption(item: object, where: str) -> Assumption:
    if not isinstance(item, dict) or not isinstance(item.get("check"), str) or not isinstance(item.get("outcome"), str):
        raise _bad(where, "expected an object with a check and an outcome")
    for key in ("detail", "stack"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise _bad(f"{where}.{key}", "expected text")
    excluded = item.get("excluded") or {}
    if not isinstance(excluded, dict) or not all(isinstance(k, str) and _count(v) for k, v in excluded.items()):
        raise _bad(f"{where}.excluded", "expected counts by reason")
    return Assumption(item["check"], item["outcome"], str(item.get("detail") or ""), item.get("stack"),
                      _optional_count(item.get("width"), f"{where}.width"),
                      _optional_count(item.get("kept"), f"{where}.kept"),
                      tuple((k, int(v)) for k, v in excluded.items()))


def _calibration(item: object) -> Calibration | None:
    if item is None:
        return None
    where = "validity.calibration"
    if not isinstance(item, dict):
        raise _bad(where, "expected an object or null")
    counts = {k: _optional_count(item.get(k), f"{where}.{k}") for k in ("hard_negatives", "derived", "models")}
    if counts["hard_negatives"] is None or counts["derived"] is None:
        raise _bad(where, "expected the counts hard_negatives and derived")
    if counts["derived"] > counts["hard_negatives"]:
        raise _bad(where, "more derived pairs than hard negatives")
    for key in ("family", "source"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise _bad(f"{where}.{key}", "expected text")
    return Calibration(
        hard_negatives=counts["hard_negatives"], derived=counts["derived"],
        upper_95=float(_number(item.get("upper_95"), f"{where}.upper_95", share=True, optional=False) or 0.0),
        family=str(item.get("family") or ""),
        threshold_log10=_number(item.get("threshold_log10"), f"{where}.threshold_log10"),
        models=counts["models"],
        false_positive_rate=_number(item.get("false_positive_rate"), f"{where}.false_positive_rate", share=True),
        inconclusive_rate=_number(item.get("inconclusive_rate"), f"{where}.inconclusive_rate", share=True),
        source=str(item.get("source") or ""))


# --- validating a saved compare result


def _bad(where: str, message: str) -> InputError:
    return InputError(f"lineage result: {where}: {message}")


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_compare_result(data: object) -> dict:
    """Validate the parts of a ``simsa lineage compare --json`` result this summary reads; one-line errors."""
    if not isinstance(data, dict):
        raise _bad("top level", "expected a JSON object")
    schema = data.get("schema")
    if schema != COMPARE_SCHEMA:
        raise _bad("schema", f"{schema!r} is not {COMPARE_SCHEMA!r}; pass the JSON written by "
                             "`simsa lineage compare --json` or `-o`")
    if data.get("verdict") not in VERDICTS:
        raise _bad("verdict", f"expected one of {', '.join(VERDICTS)}, got {data.get('verdict')!r}")
    for side in ("candidate", "reference"):
        if not isinstance(data.get(side), dict):
            raise _bad(side, "expected an object with the model's path")
    comps = data.get("components")
    if not isinstance(comps, list):
        raise _bad("components", "expected a list")
    seen = set()
    for i, c in enumerate(comps):
        where = f"components[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise _bad(where, "expected an object with a name")
        name = c["name"]
        stack = name.split(".", 1)[0]
        if stack not in STACKS or "." not in name:
            raise _bad(f"{where}.name", f"{name!r} is not STACK.GROUP with a stack of {', '.join(STACKS)}")
        if name in seen:
            raise _bad(f"{where}.name", f"{name!r} is listed twice")
        seen.add(name)
        if c.get("verdict") not in VERDICTS:
            raise _bad(f"{where}.verdict", f"expected one of {', '.join(VERDICTS)}, got {c.get('verdict')!r}")
        lp = c.get("log10_p")
        if lp is not None and (isinstance(lp, bool) or not isinstance(lp, int | float) or math.isnan(lp) or lp > 0):
            raise _bad(f"{where}.log10_p", f"expected null or a number ≤ 0, got {lp!r}")
        ident = c.get("identity")
        if not isinstance(ident, dict) or not all(_count(ident.get(k)) for k in ("tensors", "identical")):
            raise _bad(f"{where}.identity", "expected counts tensors and identical")
        if ident["identical"] > ident["tensors"]:
            raise _bad(f"{where}.identity", "more identical tensors than tensors")
    Validity.from_result(data)
    return data


# --- reading components


def _finding(c: dict) -> str:
    """What the lineage says of one component, in the words the criteria use."""
    ident = c["identity"]
    if c["verdict"] == "identical":
        bit = ident.get("bit_identical")
        return "identical" if not _count(bit) or bit >= ident["tensors"] else "near-identical"
    if c["verdict"] == "derived":
        return "derived"
    if c["verdict"] == "independent":
        return "independent"
    if not c.get("tested") and ident["identical"] == 0:
        return "not compared" if "absent from the reference" in str(c.get("reason", "")) else "untested"
    return "inconclusive"


def _weights(c: dict, finding: str) -> str | None:
    """Frozen (every tensor identical), partly frozen, or tuned — only for reused components."""
    if finding in ("identical", "near-identical"):
        return "frozen"
    if finding != "derived":
        return None
    ident = c["identity"]
    if ident["tensors"] and ident["identical"] >= ident["tensors"]:
        return "frozen"
    return "partly frozen" if ident["identical"] else "tuned"


def _lp(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def _describe(entry: dict) -> str:
    ident = entry["identity"]
    text = f"{entry['name']} {entry['finding']} (log10 p {_lp(entry['log10_p'])}, " \
           f"{ident['identical']}/{ident['tensors']} tensors identical"
    if entry.get("weights"):
        text += f", {entry['weights']}"
    return text + ")"


def _norm_ref(text: str) -> list[str]:
    """Path or hub-id segments, lower-case, revision and weight-file names dropped, for loose name matching."""
    t = text.strip().lower().split("@", 1)[0].rstrip("/")
    parts = [p for p in re.split(r"[\\/]+", t) if p and p not in (".", "..")]
    while parts and re.search(r"\.(safetensors|gguf|json)$", parts[-1]):
        parts.pop()
    return parts


def names_same_model(declared: str, path: str) -> bool:
    """Whether a declared model or source (``org/name``, a directory) plausibly names the model at ``path``.

    Matching is by the last path segment (the model's name), so ``foreign-lab/encoder-400m`` matches
    ``/data/models/encoder-400m``; anything looser would let a wrong comparison pass unnoticed.
    """
    d, p = _norm_ref(declared), _norm_ref(path)
    return bool(d and p) and d[-1] == p[-1]


# --- criteria


def _criterion(question: str, status: str, evidence: list, reasons: list[str]) -> dict:
    return {"question": question, "status": status, "evidence": evidence, "reasons": reasons}


def _stack_criterion(question: str, entries: list[dict], rules: OriginalityRules, absent_note: str) -> dict:
    """Reused components must be allowed (and, when frozen, frozen reuse allowed); undecided parts need review."""
    if not entries:
        return _criterion(question, PASS, [], [absent_note])
    evidence = [_describe(e) for e in entries]
    reused = [e for e in entries if e["reused"]]
    barred = [e for e in reused if not rules.allows(e["name"])]
    frozen = [e for e in reused if rules.allows(e["name"]) and e["weights"] == "frozen" and not rules.allow_frozen]
    fine = [e for e in reused if e not in barred and e not in frozen]
    fails, notes = [], []
    if barred:
        allowed = ", ".join(rules.allow_reuse) or "none"
        fails.append("initialised from the reference's weights, which the program does not allow (allow_reuse: "
                     f"{allowed}): " + ", ".join(f"{e['name']} ({e['finding']}, {e['weights']})" for e in barred))
    if frozen:
        fails.append("reused unchanged (every tensor identical), but the program allows reuse only when trained "
                     "further (allow_frozen = false): " + ", ".join(e["name"] for e in frozen))
    if fine:
        notes.append("reused as the program allows: " + ", ".join(f"{e['name']} ({e['weights']})" for e in fine))
    if fails:
        return _criterion(question, FAIL, evidence, fails)
    open_ = [e["name"] for e in entries if e["finding"] == "inconclusive"]
    if open_:
        undecided = f"undecided: {', '.join(open_)} (neither derived nor independent at the thresholds)"
        return _criterion(question, REVIEW, evidence, [undecided, *notes])
    tested = [e for e in entries if e["finding"] in ("independent", "identical", "near-identical", "derived")]
    if not tested:
        if all(e["finding"] == "not compared" for e in entries):
            return _criterion(question, PASS, evidence, [absent_note])
        return _criterion(question, REVIEW, evidence, ["no component could be tested"])
    indep = [e["name"] for e in entries if e["finding"] == "independent"]
    reasons = notes + ([f"independent of the reference: {', '.join(indep)}"] if indep else [])
    return _criterion(question, PASS, evidence, reasons)


def _declared_items(declaration: Mapping[str, Any] | None) -> list[dict]:
    items = (declaration or {}).get("borrowed") or []
    return [dict(i) for i in items if isinstance(i, Mapping)]


def _covering(items: list[dict], component: str) -> list[dict]:
    return [i for i in items if any(covers(str(p), component) for p in i.get("covers") or ())]


def _label(item: dict) -> str:
    return f"{item.get('component', '?')} ({item.get('source', '?')})"


def _declaration_criterion(entries: list[dict], declaration: Mapping[str, Any] | None, reference: str) -> dict:
    question = "Is every reuse found declared, as reused, from the compared reference?"
    reused = [e for e in entries if e["reused"]]
    items = _declared_items(declaration)
    evidence: list = []
    fails: list[str] = []
    review: list[str] = []
    undeclared: list[str] = []
    if declaration is None:
        if reused:
            return _criterion(question, REVIEW, [_describe(e) for e in reused],
                              ["no team declaration was given to check the reuse against"])
        return _criterion(question, PASS, [], ["no reuse found; no declaration needed"])
    for e in reused:
        cover = _covering(items, e["name"])
        as_reused = [i for i in cover if i.get("weights") in REUSED_WEIGHTS]
        if not as_reused:
            said = ", ".join(f"{_label(i)} declares weights = {i.get('weights')!r}" for i in cover)
            undeclared.append(e["name"] + (f" ({said})" if said else ""))
            continue
        evidence.append({"component": e["name"], "declared_by": [_label(i) for i in as_reused],
                         "declared_weights": sorted({str(i.get("weights")) for i in as_reused}),
                         "found_weights": e["weights"]})
        if not any(names_same_model(str(i.get("source", "")), reference) for i in as_reused):
            review.append(f"{e['name']}: declared source {', '.join(str(i.get('source')) for i in as_reused)} "
                          f"does not name the compared reference {reference}")
        declared = {i.get("weights") for i in as_reused}
        if e["weights"] == "frozen" and "reused_frozen" not in declared:
            review.append(f"{e['name']} is declared as tuned, but every tensor is identical to the reference's")
        elif e["weights"] != "frozen" and declared == {"reused_frozen"}:
            review.append(f"{e['name']} is declared as frozen, but its weights differ from the reference's "
                          f"({e['weights']})")
    # Declared reuse of this very reference that the comparison does not find: the wrong files may have been compared.
    by_name = {e["name"]: e for e in entries}
    for item in items:
        if item.get("weights") not in REUSED_WEIGHTS or not names_same_model(str(item.get("source", "")), reference):
            continue
        parts = [e for n, e in by_name.items() if any(covers(str(p), n) for p in item.get("covers") or ())
                 and e["finding"] not in ("untested", "not compared")]
        if parts and all(e["finding"] == "independent" for e in parts):
            review.append(f"{_label(item)} is declared as reused, but the comparison finds "
                          f"{', '.join(e['name'] for e in parts)} independent of it")
    if undeclared:
        fails.append("reuse of the reference's weights not declared as reused: " + "; ".join(undeclared))
    if fails:
        return _criterion(question, FAIL, evidence, fails + review)
    if review:
        return _criterion(question, REVIEW, evidence, review)
    if not reused:
        return _criterion(question, PASS, evidence, ["no reuse of the reference's weights found"])
    return _criterion(question, PASS, evidence, ["every reused component is declared as reused from the reference"])


def _licence_criterion(entries: list[dict], declaration: Mapping[str, Any] | None, rules: OriginalityRules) -> dict:
    question = "Does every reused component carry an allowed licence and credit?"
    reused = [e for e in entries if e["reused"]]
    if not reused:
        return _criterion(question, PASS, [], ["nothing reused"])
    if declaration is None:
        return _criterion(question, REVIEW, [], ["no team declaration was given to read licences from"])
    items = [i for i in _declared_items(declaration) if i.get("weights") in REUSED_WEIGHTS]
    allowed = None if rules.allowed_licences is None else {x.lower() for x in rules.allowed_licences}
    evidence, fails = [], []
    undeclared = [e["name"] for e in reused if not _covering(items, e["name"])]
    if undeclared:
        fails.append("no licence declared for (reuse not declared): " + ", ".join(undeclared))
    for item in items:
        parts = [e["name"] for e in reused if any(covers(str(p), e["name"]) for p in item.get("covers") or ())]
        if not parts:
            continue
        licence = item.get("licence")
        evidence.append({"declared_by": _label(item), "components": parts, "licence": licence,
                         "credited": bool(item.get("credited")), "attribution": item.get("attribution")})
        if not licence:
            fails.append(f"{_label(item)} declares no licence")
        elif allowed is not None and str(licence).lower() not in allowed:
            fails.append(f"{_label(item)} is under {licence}, not a licence the program allows "
                         f"({', '.join(rules.allowed_licences or ())})")
        if rules.require_credit and not item.get("credited"):
            fails.append(f"{_label(item)} is not credited")
    if fails:
        return _criterion(question, FAIL, evidence, fails)
    return _criterion(question, PASS, evidence, ["every reused component is licensed as allowed and credited"])


def _subject_criterion(declaration: Mapping[str, Any] | None, candidate: str) -> dict:
    question = "Is the compared candidate the team's declared model?"
    if declaration is None:
        return _criterion(question, REVIEW, [candidate], ["no team declaration to check the candidate against"])
    models = [str(m) for m in declaration.get("models") or ()]
    if not models:
        return _criterion(question, REVIEW, [candidate], ["the team declares no models"])
    hit = [m for m in models if names_same_model(m, candidate)]
    if hit:
        return _criterion(question, PASS, [candidate], [f"the candidate is {hit[0]}"])
    return _criterion(question, REVIEW, [candidate], [f"the candidate {candidate} names none of the team's models "
                                                      f"({', '.join(models)})"])


# --- the summary


def _entries(result: dict, rules: OriginalityRules) -> list[dict]:
    out = []
    for c in result["components"]:
        finding = _finding(c)
        reused = finding in ("identical", "near-identical", "derived")
        ident = c["identity"]
        out.append({
            "name": c["name"],
            "stack": c["name"].split(".", 1)[0],
            "verdict": c["verdict"],
            "finding": finding,
            "reused": reused,
            "weights": _weights(c, finding),
            "log10_p": c.get("log10_p"),
            "identity": {"tensors": ident["tensors"], "identical": ident["identical"],
                         "bit_identical": ident.get("bit_identical")},
            "matched_fraction": c.get("matched_fraction"),
            "allowed": rules.allows(c["name"]) if reused else None,
        })
    return out


def _stacks(entries: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for stack in STACKS:
        mine = [e for e in entries if e["stack"] == stack]
        if not mine:
            continue
        reused = [e["name"] for e in mine if e["reused"]]
        indep = [e["name"] for e in mine if e["finding"] == "independent"]
        open_ = [e["name"] for e in mine if e["finding"] == "inconclusive"]
        if reused:
            status = "reused"
        elif open_:
            status = "undetermined"
        elif indep:
            status = "re-initialised"
        else:
            status = "not compared" if all(e["finding"] == "not compared" for e in mine) else "untested"
        out[stack] = {"status": status, "reused": reused, "independent": indep, "inconclusive": open_}
    return out


def _priors(result: dict) -> dict:
    tok, arch = result.get("tokenizer") or {}, result.get("architecture") or {}
    return {"label": PRIOR_LABEL,
            "tokenizer": tok.get("summary") if tok.get("available") else None,
            "architecture": arch.get("summary") if arch.get("available") else None}


def originality_summary(compare_result: dict, declaration: Mapping[str, Any] | None,
                        rules: OriginalityRules | Mapping[str, Any] | None = None) -> dict:
    """Map a lineage result onto the originality criteria and recommend ``pass``, ``fail`` or ``needs review``.

    ``declaration`` is the team's, as plain data: ``{"team", "models": [...], "licence", "borrowed": [{"component",
    "source", "licence", "credited", "attribution", "weights", "covers": [...]}]}``; None when there is none.
    ``rules`` are the gate's ``OriginalityRules`` (default: no reuse allowed).
    """
    result = check_compare_result(compare_result)
    if not isinstance(rules, OriginalityRules):
        rules = OriginalityRules.from_mapping(rules)
    entries = _entries(result, rules)
    candidate = str(result["candidate"].get("path", ""))
    reference = str(result["reference"].get("path", ""))
    text = [e for e in entries if e["stack"] == "text"]
    other = [e for e in entries if e["stack"] != "text"]
    criteria = {
        "language_model": _stack_criterion(
            "Was the language model trained from re-initialised weights (not initialised from the reference)?",
            text, rules, "the reference has no language-model components to compare"),
        "encoders": _stack_criterion(
            "Are encoders and projectors re-initialised, or reused only as the program allows?",
            other, rules, "no encoder or projector components to compare"),
        "declaration": _declaration_criterion(entries, declaration, reference),
        "licence": _licence_criterion(entries, declaration, rules),
        "subject": _subject_criterion(declaration, candidate),
    }
    statuses = [c["status"] for c in criteria.values()]
    recommendation = FAIL if FAIL in statuses else REVIEW if REVIEW in statuses else PASS
    reasons = [f"{cid}: {r}" for cid, c in criteria.items() if c["status"] == recommendation for r in c["reasons"]]
    if recommendation == PASS:
        reasons = [f"{cid}: {c['reasons'][0]}" for cid, c in criteria.items() if c["reasons"]]
    stacks = _stacks(entries)
    validity = Validity.from_result(result)
    text_status = stacks.get("text", {}).get("status", "absent")
    return {
        "schema": SCHEMA,
        "recommendation": recommendation,
        "passed": {PASS: True, FAIL: False}.get(recommendation),
        "reasons": reasons,
        "criteria": criteria,
        "components": entries,
        "stacks": stacks,
        "language_model": {"status": text_status,
                           "initialised_from_reference": {"reused": True, "re-initialised": False}.get(text_status)},
        "reused": [e["name"] for e in entries if e["reused"]],
        "lineage": {"verdict": result["verdict"], "log10_p": result.get("log10_p"), "rule": result.get("rule"),
                    "candidate": candidate, "reference": reference,
                    "validity": None if validity is None else validity.to_dict()},
        "team": (declaration or {}).get("team"),
        "rules": rules.as_dict(),
        "priors": _priors(result),
        "scope": SCOPE,
    }


TRAINING_EVIDENCE_SCHEMA = "simsa.evidence.verify/1"
_CHECK_STATUSES = ("passed", "failed", "not applicable")
_GRADES = ("cryptographic", "statistical", "heuristic", "declared")


def check_verification(data: object) -> dict:
    """An `evidence verify --json` result, checked for the fields the gate reads; one clear error otherwise."""
    where = "training evidence"
    if not isinstance(data, dict) or data.get("schema") != TRAINING_EVIDENCE_SCHEMA:
        raise _bad(where, f"not a {TRAINING_EVIDENCE_SCHEMA} result (the JSON of `simsa evidence verify --json`)")
    checks = data.get("checks")
    if not isinstance(data.get("ok"), bool) or not isinstance(checks, list) or not checks:
        raise _bad(where, "needs 'ok' and a non-empty list of 'checks'")
    for i, c in enumerate(checks):
        if not (isinstance(c, dict) and isinstance(c.get("id"), str) and c.get("status") in _CHECK_STATUSES
                and c.get("grade") in _GRADES and isinstance(c.get("summary"), str)):
            raise _bad(f"{where} check {i + 1}", "needs an id, a status (passed, failed, not applicable), a grade "
                                                 "and a summary")
    if data["ok"] != (not any(c["status"] == "failed" for c in checks)):
        raise _bad(where, "'ok' contradicts the checks' statuses")
    return data


def with_training_evidence(summary: dict, verification: dict, sha256: str | None = None) -> dict:
    """The originality summary with the team's verified training evidence beside the weights' evidence.

    A package that passes strengthens a pass. One that fails turns a pass into "needs review": a person reads which
    checks failed (each with its grade) and decides with a reason. A weight-based fail stays a fail.
    """
    v = check_verification(verification)
    team = summary.get("team")
    if v.get("team") and team and v["team"] != team:
        raise _bad("training evidence", f"is team {v['team']!r}'s package, not team {team!r}'s")
    failed = [c for c in v["checks"] if c["status"] == "failed"]
    question = "Does the team's training evidence (step 0, early checkpoints, log) show training from scratch?"
    if failed:
        reasons = [f"the package fails {c['id']} ({c['grade']}): {c['summary']}" for c in failed]
        criterion = _criterion(question, REVIEW, [str(v.get("package", ""))], reasons)
    else:
        passed = [c["id"] for c in v["checks"] if c["status"] == "passed"]
        criterion = _criterion(question, PASS, [str(v.get("package", ""))],
                               [f"the package passes every applicable check ({', '.join(passed)})"])
    out = dict(summary)
    out["criteria"] = {**summary["criteria"], "training_evidence": criterion}
    if summary["recommendation"] == PASS and failed:
        out["recommendation"], out["passed"] = REVIEW, None
        out["reasons"] = [f"training_evidence: {r}" for r in criterion["reasons"]]
    elif summary["recommendation"] == PASS:
        out["reasons"] = [*summary["reasons"], f"training_evidence: {criterion['reasons'][0]}"]
    out["training_evidence"] = {"ok": v["ok"], "model": v.get("model"), "package": v.get("package"),
                                "sha256": sha256, "failed": [c["id"] for c in failed],
                                "checks": [{k: c[k] for k in ("id", "status", "grade", "summary")}
                                           for c in v["checks"]]}
    return out


def evidence_text(summary: dict, lineage_sha256: str | None = None, limit: int = 4000) -> str:
    """One paragraph for a gate record: recommendation, each criterion's status and first reasons, priors."""
    lin = summary["lineage"]
    head = (f"Originality from lineage: {summary['recommendation'].upper()} (compare verdict {lin['verdict']}, "
            f"log10 p {_lp(lin['log10_p'])}; candidate {lin['candidate']} vs reference {lin['reference']}"
            + (f"; result sha256 {lineage_sha256[:16]}" if lineage_sha256 else "") + ").")
    parts = [head, _validity_line(lin.get("validity"))]
    for cid, c in summary["criteria"].items():
        parts.append(f"{cid}: {c['status']} — {'; '.join(c['reasons'][:3]) or 'no findings'}.")
    training = summary.get("training_evidence")
    if training:
        grades = ", ".join(f"{c['id']} ({c['grade']})" for c in training["checks"] if c["status"] == "failed")
        parts.append("Training evidence" + (f" (sha256 {training['sha256'][:16]})" if training.get("sha256") else "")
                     + (": every applicable check passed." if training["ok"] else f": FAILED {grades}."))
    priors = summary["priors"]
    shown = [f"{k} {v}" for k, v in (("tokenizer:", priors["tokenizer"]), ("architecture:", priors["architecture"]))
             if v]
    if shown:
        parts.append(f"Priors ({priors['label']}): " + "; ".join(shown) + ".")
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validity_line(card: dict | None) -> str:
    """One short line of the validity card for the gate's record: assumption outcomes and the calibration."""
    if not card:
        return "Validity card: not recorded in this result."
    checks = []
    for a in card["assumptions"]:
        where = f" ({a['stack']})" if a.get("stack") else ""
        checks.append(f"{a['check']}{where}: {a['outcome']}")
    return f"Validity: {'; '.join(checks) or 'no assumption checked'}. {card['calibration_line']}"


def declaration_from(team: Mapping[str, Any]) -> dict:
    """A team table of the program file (as a dict) reduced to what the summary reads."""
    return {"team": team.get("id"), "models": list(team.get("models") or ()), "licence": team.get("licence"),
            "borrowed": [dict(b) for b in team.get("borrowed") or () if isinstance(b, Mapping)]}



def summary_grade(summary: dict, passed: bool) -> Grade:
    """The evidence grade of an originality result recorded as `passed` from this summary.

    A failure on reused weights is cryptographic when a disallowed component's tensors are bit-identical to the
    reference's, statistical when it rests on a lineage test; a failure the weights do not show rests on the
    training evidence's strongest failed check, else on the declaration. A pass rests on the independence tests
    (statistical) when any component was tested, else on the declaration.
    """
    components = summary.get("components") or []
    if passed:
        tested = any(e.get("finding") == "independent" for e in components)
        return "statistical" if tested else "declared"
    disallowed = [e for e in components if e.get("reused") and e.get("allowed") is False]
    if any(e.get("finding") == "identical" for e in disallowed):
        return "cryptographic"
    if disallowed:
        return "statistical"
    training = summary.get("training_evidence") or {}
    failed = [c["grade"] for c in training.get("checks") or () if c.get("status") == "failed"]
    return strongest(failed) if failed else "declared"
