"""A semantic diff of two parsed programs: what changed, and whether it can change who advances.

Each change is classified `rules` (it can change a decision: points, normalisation, gates, elimination, tie-breakers,
sources, participants, suites…) or `cosmetic` (names, descriptions, Korean names, display-only settings), and names
the stages whose decisions it can affect, so that loading a new version after a decision can say which decisions
it puts in question. Pure logic: two `Program` objects in, typed changes out.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from simsa.program.schema import Criterion, Program, Stage, Suite, Team

Category = Literal["rules", "cosmetic"]
Kind = Literal["added", "removed", "changed"]

# Fields that only describe (shown in reports, never read by the rules). Everything else is a rule.
COSMETIC_FIELDS = frozenset({"name", "name_ko", "description", "organiser", "timezone", "members", "attribution"})


@dataclass(frozen=True)
class Change:
    """One difference. `path` reads like the file: `stages[stage-1].criteria[nia].points`."""

    path: str
    kind: Kind
    category: Category
    before: Any = None
    after: Any = None
    stages: tuple[str, ...] = ()   # stages whose decision this change can affect (none for cosmetic ones)

    def describe(self) -> str:
        if self.kind == "added":
            return f"{self.path} added"
        if self.kind == "removed":
            return f"{self.path} removed"
        return f"{self.path}: {_short(self.before)} → {_short(self.after)}"

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "category": self.category, "before": self.before,
                "after": self.after, "stages": list(self.stages), "summary": self.describe()}


@dataclass(frozen=True)
class ProgramDiff:
    changes: tuple[Change, ...]

    @property
    def rules(self) -> list[Change]:
        return [c for c in self.changes if c.category == "rules"]

    @property
    def cosmetic(self) -> list[Change]:
        return [c for c in self.changes if c.category == "cosmetic"]

    def affecting(self, stage_id: str) -> list[Change]:
        """Rule changes that can change the decision of this stage."""
        return [c for c in self.rules if stage_id in c.stages]

    def to_dict(self) -> dict:
        return {"changes": [c.to_dict() for c in self.changes], "rules": len(self.rules),
                "cosmetic": len(self.cosmetic)}


def diff_programs(before: Program, after: Program) -> ProgramDiff:
    """Every semantic difference from `before` to `after`, in file order, with the stages each can affect."""
    raw: list[tuple[str, Kind, Any, Any, str]] = []  # (path, kind, before, after, field or entity)
    _model(before.program, after.program, "program", raw)
    _keyed(before.teams, after.teams, "teams", lambda t: t.id, raw)
    _order(before.teams, after.teams, "teams", raw)
    _keyed(before.stages, after.stages, "stages", lambda s: s.id, raw)
    _order(before.stages, after.stages, "stages", raw)
    _keyed(before.suites, after.suites, "suites", lambda s: s.id, raw)
    changes = []
    for path, kind, old, new, name in raw:
        category: Category = "cosmetic" if kind == "changed" and name in COSMETIC_FIELDS else "rules"
        stages = _affected(path, kind, before, after) if category == "rules" else ()
        changes.append(Change(path=path, kind=kind, category=category, before=old, after=new, stages=stages))
    return ProgramDiff(tuple(changes))


def unified_text(before: str, after: str, from_label: str, to_label: str) -> str:
    """The line diff of the two files' texts (what a reviewer reads next to the semantic diff)."""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=from_label, tofile=to_label)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --- comparison

_Raw = list[tuple[str, Kind, Any, Any, str]]

# Lists of tables inside a model, matched by identity rather than position.
_KEYS: dict[tuple[type, str], Callable[[Any], str]] = {
    (Team, "borrowed"): lambda b: b.component,
    (Stage, "gates"): lambda g: g.id,
    (Suite, "tasks"): lambda t: f"{t.task}/{t.metric}",
}


def _model(a: BaseModel, b: BaseModel, path: str, out: _Raw) -> None:
    for name in type(a).model_fields:
        va, vb = getattr(a, name), getattr(b, name)
        where = f"{path}.{name}"
        if isinstance(a, Stage) and isinstance(b, Stage) and name == "criteria":
            _criteria(a, b, path, out)
        elif (type(a), name) in _KEYS:
            _keyed(va, vb, where, _KEYS[(type(a), name)], out)
        elif isinstance(va, BaseModel) and isinstance(vb, BaseModel):
            _model(va, vb, where, out)
        elif _plain(va) != _plain(vb):
            out.append((where, "changed", _plain(va), _plain(vb), name))


def _keyed(a: Sequence[BaseModel], b: Sequence[BaseModel], path: str, key: Callable[[Any], str], out: _Raw) -> None:
    old, new = _by_key(a, key), _by_key(b, key)
    for k, item in old.items():
        if k not in new:
            out.append((f"{path}[{k}]", "removed", _plain(item), None, path))
    for k, item in new.items():
        if k in old:
            _model(old[k], item, f"{path}[{k}]", out)
        else:
            out.append((f"{path}[{k}]", "added", None, _plain(item), path))


def _by_key(items: Sequence[BaseModel], key: Callable[[Any], str]) -> dict[str, BaseModel]:
    out: dict[str, BaseModel] = {}
    for item in items:
        k = key(item)
        n = 2
        while k in out:  # e.g. two borrowed entries with the same component name
            k = f"{key(item)}#{n}"
            n += 1
        out[k] = item
    return out


def _order(a: Sequence[Team | Stage], b: Sequence[Team | Stage], path: str, out: _Raw) -> None:
    """Reordering teams changes the `team_order` tie-breaker; reordering stages changes who feeds whom."""
    common = {x.id for x in a} & {x.id for x in b}
    before = [x.id for x in a if x.id in common]
    after = [x.id for x in b if x.id in common]
    if before != after:
        out.append((f"{path} (order)", "changed", before, after, "order"))


def _criteria(a: Stage, b: Stage, path: str, out: _Raw) -> None:
    """Criteria are matched by id across the tree (ids are unique in a stage); a move shows as a parent change."""
    old = {c.id: (c, parent) for c, _, parent in a.walk()}
    new = {c.id: (c, parent) for c, _, parent in b.walk()}
    for cid, (crit, parent) in old.items():
        if cid not in new:
            out.append((f"{path}.criteria[{cid}]", "removed", _criterion(crit, parent), None, "criteria"))
    for cid, (crit, parent) in new.items():
        where = f"{path}.criteria[{cid}]"
        if cid not in old:
            out.append((where, "added", None, _criterion(crit, parent), "criteria"))
            continue
        before, after = _criterion(*old[cid]), _criterion(crit, parent)
        for name in before:
            if before[name] != after[name]:
                out.append((f"{where}.{name}", "changed", before[name], after[name], name))


def _criterion(crit: Criterion, parent: str | None) -> dict:
    data = crit.model_dump(mode="json", exclude={"children"})
    data["parent"] = parent
    return data


def _plain(value: Any) -> Any:
    """JSON-ready form of a value (for --json output and the audit log)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _short(value: Any, most: int = 60) -> str:
    text = "none" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return text if len(text) <= most else text[: most - 1] + "…"


# --- which decisions a change can affect


def _affected(path: str, kind: Kind, before: Program, after: Program) -> tuple[str, ...]:
    head = path.split(".", 1)[0]
    ident = head[head.index("[") + 1:-1] if "[" in head else None
    out: list[str] = []
    if head.startswith("stages["):
        out.append(ident or "")
        if kind != "changed" and path == head:  # a stage added or removed changes the next stage's predecessor
            for prog in (after, before):
                ids = [s.id for s in prog.stages]
                if ident in ids and ids.index(ident) + 1 < len(ids):
                    out.append(ids[ids.index(ident) + 1])
    elif head == "stages (order)" or head == "teams (order)":
        out += [s.id for s in after.stages] + [s.id for s in before.stages]
    elif head.startswith("teams["):
        for prog in (after, before):
            team = next((t for t in prog.teams if t.id == ident), None)
            if team is not None:
                ids = [s.id for s in prog.stages]
                start = ids.index(team.joins_at) if team.joins_at in ids else 0
                out += ids[start:]
    elif head.startswith("suites["):
        source = f"bench:{ident}"
        for prog in (after, before):
            out += [s.id for s in prog.stages if source in s.score_sources()]
    return tuple(dict.fromkeys(out))

