"""Read and validate a program file, turning every failure into one `file:line: key: message` error.

Three passes: TOML, the schema (each table on its own), then cross-references between tables
(`simsa.program.crossref`) and, for a file on disk, the previous-decision files it pins
(`simsa.program.previous`). Problems that cannot change an outcome come back as warnings on the result.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from simsa.errors import ProgramFileError
from simsa.files import FileReadError, read_limited
from simsa.program import crossref, previous
from simsa.program.locate import Path as KeyPath
from simsa.program.locate import dotted, index_lines, line_of
from simsa.program.schema import Program

MAX_PROGRAM_BYTES = 1_000_000


@dataclass(frozen=True)
class ProgramWarning:
    """A problem that cannot change an outcome (e.g. a suite nothing uses), located like an error."""

    path: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}:{f' {self.key}:' if self.key else ''} {self.message}"

    def to_dict(self) -> dict[str, str | int | None]:
        return {"line": self.line, "key": self.key, "message": self.message, "text": str(self)}


@dataclass(frozen=True)
class LoadedProgram:
    """A validated program together with the exact text it came from (hashed for the audit log)."""

    program: Program
    text: str
    sha256: str
    path: str
    warnings: tuple[ProgramWarning, ...] = field(default=())


def _keys_at(loc: KeyPath) -> list[str]:
    """The keys the schema allows in the table at `loc` (empty when `loc` is not a table of the schema)."""
    model: type[BaseModel] = Program
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        while get_origin(ann) in (list, tuple, Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if not args:
                return []
            ann = args[0]
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _describe(err: ErrorDetails) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        loc = tuple(err.get("loc", ()))
        if loc and isinstance(loc[-1], str):
            close = difflib.get_close_matches(loc[-1], _keys_at(loc[:-1]), n=1, cutoff=0.6)
            if close:
                return f"unknown key (did you mean {close[0]!r}? see docs/program-file.md)"
        return "unknown key (check its spelling; see docs/program-file.md)"
    if kind == "missing":
        return "required key is missing"
    msg = re.sub(r"^Value error, ", "", msg)
    value = err.get("input")
    if kind not in ("value_error", "missing") and isinstance(value, str | int | float | bool) and len(repr(value)) < 60:
        msg += f" (got {value!r})"
    return msg


# Checks that span several keys (model validators) fail at the table that holds them; these rules move the error
# to the key to fix, keyed by the schema's message. A message that matches no rule keeps the table's location.
_Refine = Callable[[Any, re.Match[str]], KeyPath | None]


def _get(data: Any, loc: KeyPath) -> Any:
    for part in loc:
        if isinstance(part, int):
            if not isinstance(data, list) or not 0 <= part < len(data):
                return None
        elif not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _same(value: Any, wanted: str) -> bool:
    return isinstance(value, str) and value.strip() == wanted


def _nth_with(items: Any, key: str, wanted: str, nth: int) -> int | None:
    """Index of the nth (0-based) table in `items` whose `key` is `wanted`."""
    if not isinstance(items, list):
        return None
    hits = [i for i, item in enumerate(items) if isinstance(item, dict) and _same(item.get(key), wanted)]
    return hits[nth] if len(hits) > nth else None


def _criteria(items: Any, prefix: KeyPath) -> Iterator[tuple[KeyPath, dict]]:
    """(path, table) of every criterion in `items` and below, depth-first as Stage.walk visits them."""
    if not isinstance(items, list):
        return
    for i, crit in enumerate(items):
        if isinstance(crit, dict):
            yield (*prefix, i), crit
            yield from _criteria(crit.get("children"), (*prefix, i, "children"))


def _in_list(name: str, key: str, nth: int, leaf: str | None = None) -> _Refine:
    def rule(node: Any, m: re.Match[str]) -> KeyPath | None:
        i = _nth_with(_get(node, (name,)), key, m.group(1), nth)
        return None if i is None else (name, i, leaf or key)
    return rule


def _fixed(*keys: str) -> _Refine:
    return lambda node, m: keys


def _first_present(*keys: str) -> _Refine:
    return lambda node, m: next(((k,) for k in keys if isinstance(node, dict) and k in node), None)


def _first_absent(*keys: str) -> _Refine:
    return lambda node, m: next(((k,) for k in keys if isinstance(node, dict) and node.get(k) is None), None)


def _item(items: Any, m: re.Match[str]) -> KeyPath | None:
    """The index of the string named by the message in a list of strings."""
    hits = [i for i, item in enumerate(items if isinstance(items, list) else []) if _same(item, m.group(1))]
    return (hits[0],) if hits else None


def _tie_breaker(node: Any, m: re.Match[str]) -> KeyPath | None:
    return ("tie_breakers", *(_item(_get(node, ("tie_breakers",)), m) or ()))


def _criterion_twice(node: Any, m: re.Match[str]) -> KeyPath | None:
    hits = [path for path, crit in _criteria(_get(node, ("criteria",)), ("criteria",))
            if _same(crit.get("id"), m.group(1))]
    return (*hits[1], "id") if len(hits) > 1 else None


def _source_twice(node: Any, m: re.Match[str]) -> KeyPath | None:
    for path, crit in _criteria(_get(node, ("criteria",)), ("criteria",)):
        if _same(crit.get("id"), m.group(3)) and _same(crit.get("source"), m.group(1)):
            return (*path, "source")
    return None


def _participant_twice(node: Any, m: re.Match[str]) -> KeyPath | None:
    items = _get(node, ("participants",))
    hits = [i for i, item in enumerate(items if isinstance(items, list) else []) if _same(item, m.group(1))]
    return ("participants", hits[1]) if len(hits) > 1 else None


_REFINE: list[tuple[re.Pattern[str], _Refine]] = [
    (re.compile(r"^team id '(.+)' is used twice$"), _in_list("teams", "id", 1)),
    (re.compile(r"^stage id '(.+)' is used twice$"), _in_list("stages", "id", 1)),
    (re.compile(r"^team '(.+)' joins_at "), _in_list("teams", "id", 0, "joins_at")),
    (re.compile(r"^stage '(.+)' starts before the stage listed before it"), _in_list("stages", "id", 0, "start")),
    (re.compile(r"^stage '.+' ends \("), _fixed("end")),
    (re.compile(r"^stage '.+' declares total_points "), _fixed("total_points")),
    (re.compile(r"^tie-breaker '(.+)' names no criterion"), _tie_breaker),
    (re.compile(r"^unknown tie-breaker '(.+)';"), _item),
    (re.compile(r"^criterion id '(.+)' is used twice in stage "), _criterion_twice),
    (re.compile(r"^source '(.+)' feeds both '(.+)' and '(.+)';"), _source_twice),
    (re.compile(r"^gate id '(.+)' is used twice in stage "), _in_list("gates", "id", 1)),
    (re.compile(r"^criterion '.+' has \S+ points but its children sum to "), _fixed("points")),
    (re.compile(r"^criterion '.+' has children, so it cannot also have "),
     _first_present("source", "normalisation", "raw_range")),
    (re.compile(r"^leaf criterion '.+' needs a source"), _fixed("source")),
    (re.compile(r"^gate '.+' of kind min_score needs both "), _first_absent("source", "threshold")),
    (re.compile(r"^gate '.+' of kind \S+ takes no source or threshold"), _first_present("source", "threshold")),
    (re.compile(r"^gate '.+': allowed_licences applies only"), _fixed("allowed_licences")),
    (re.compile(r"^gate '.+': originality applies only"), _fixed("originality")),
    (re.compile(r"^borrowed '.+' covers lineage components but declares weights"), _fixed("weights")),
    (re.compile(r"^participant '(.+)' is listed twice in stage "), _participant_twice),
    (re.compile(r"^stage '.+' has both participants and previous_decision"), _fixed("previous_decision")),
]


def _refine(data: Any, err: ErrorDetails) -> KeyPath:
    """The location of a validation error, moved from a table to the key to fix where the rule is known."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") != "value_error":
        return loc
    message = re.sub(r"^Value error, ", "", str(err.get("msg", "")))
    node = _get(data, loc)
    for pattern, rule in _REFINE:
        match = pattern.match(message)
        if match:
            try:
                more = rule(node, match)
            except (TypeError, IndexError):
                more = None
            return loc + tuple(more) if more else loc
    return loc


def parse_program(text: str, path: str = "<program>") -> LoadedProgram:
    """Validate program text; raises ProgramFileError naming file, line and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
        if line is None and "end of document" in message:
            line = text.count("\n") + (0 if text.endswith("\n") else 1)
        raise ProgramFileError(path, line, None, f"TOML syntax error: {message}") from None
    except RecursionError:
        raise ProgramFileError(path, None, None, "TOML syntax error: arrays or inline tables are nested too deeply"
                               ) from None
    try:
        program = Program.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # An unknown key usually explains the rest (a misspelt key is also a missing one), so it is reported first.
        first = min(errors, key=lambda e: e.get("type") != "extra_forbidden")
        loc = _refine(data, first)
        positions = index_lines(text)
        line = line_of(positions, loc)
        raise ProgramFileError(path, line, dotted(loc) or None, _describe(first) + _more(len(errors) - 1)) from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    warnings = _located(text, path, crossref.check(program))
    return LoadedProgram(program=program, text=text, sha256=digest, path=path, warnings=warnings)


def _more(n: int) -> str:
    return f" (and {n} more problem{'s' if n > 1 else ''})" if n > 0 else ""


def _located(text: str, path: str, issues: list[crossref.Issue]) -> tuple[ProgramWarning, ...]:
    """Raise the first error of `issues` at its line; return the warnings, located the same way."""
    positions = index_lines(text) if issues else {}
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        first = errors[0]
        raise ProgramFileError(path, line_of(positions, first.loc), dotted(first.loc) or None,
                               first.message + _more(len(errors) - 1))
    return tuple(ProgramWarning(path, line_of(positions, i.loc), dotted(i.loc) or None, i.message) for i in issues)


def read_text(path: str | Path) -> str:
    """A program file's text: a regular file, at most MAX_PROGRAM_BYTES, UTF-8 (a leading BOM dropped)."""
    shown = str(path)
    try:
        raw = read_limited(path, MAX_PROGRAM_BYTES, "program files")
    except FileReadError as exc:
        message = "is a directory, expected a .toml program file" if exc.kind == "a directory" else str(exc)
        raise ProgramFileError(shown, None, None, message) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProgramFileError(shown, line, None, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
                                                 f"{exc.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise ProgramFileError(shown, None, None, "file is empty")
    return text


def load_program(path: str | Path) -> LoadedProgram:
    """Read a program file from disk and validate it, with the previous-decision files it pins beside it."""
    shown = str(path)
    text = read_text(path)
    loaded = parse_program(text, shown)
    issues = previous.check_files(loaded.program, Path(path).parent)
    if not issues:
        return loaded
    more = _located(text, shown, issues)
    return replace(loaded, warnings=loaded.warnings + more)
