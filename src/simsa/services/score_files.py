"""Reading score files (.csv with a header row, or .json) into ScoreInput items.

Score files come from spreadsheets and scripts, so a file is read defensively: only a regular file is opened (a
FIFO or device would block or never end), at most MAX_IMPORT_BYTES are read whatever the file claims to be, text
saved by Korean spreadsheet software in CP949 (or as UTF-16) is recognised and converted with a notice, numbers
must be finite and at most MAX_SCORE_MAGNITUDE, and every bad row of a file is named in one error (up to
MAX_ROW_PROBLEMS) so a file is fixed in one pass. Every failure is an InputError of one line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from simsa.errors import MAX_LISTED_PROBLEMS, InputError, collect
from simsa.files import FileReadError, read_limited
from simsa.services.scores import FIELDS, MAX_IMPORT_BYTES, MAX_SCORE_MAGNITUDE, ScoreInput

MAX_ROW_PROBLEMS = MAX_LISTED_PROBLEMS
REQUIRED = ("stage", "team", "source", "value")
SCALARS = (str, int, float, bool, type(None))
T = TypeVar("T")


@dataclass(frozen=True)
class ParsedScores:
    """The scores of a file, and notices the user should see (e.g. the file's encoding was converted)."""

    items: list[ScoreInput]
    notices: list[str] = field(default_factory=list)
    encoding: str = "utf-8"


# --------------------------------------------------------------------------- bytes


def read_capped(path: str | Path, cap: int = MAX_IMPORT_BYTES) -> bytes:
    """The bytes of a regular file of at most `cap` bytes (`simsa.files.read_limited`, worded for data files)."""
    try:
        return read_limited(path, cap, "score files")
    except FileReadError as exc:
        if exc.problem == "not_regular":
            raise InputError(f"{path}: not a regular file ({exc.kind}); give a .csv or .json file") from None
        if exc.problem == "too_large":
            raise InputError(f"{path}: file is larger than {cap} bytes") from None
        raise InputError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- text


def _mostly_hangul(text: str) -> bool:
    """Whether the non-ASCII characters read as Korean: CP949 decodes many byte pairs of other encodings too."""
    other = [c for c in text if ord(c) > 127]
    hangul = sum(1 for c in other if "\uac00" <= c <= "\ud7a3" or "\u3131" <= c <= "\u318e")
    return hangul > 0 and hangul * 2 >= len(other)


def decode(data: bytes, path: str | Path) -> tuple[str, str, list[str]]:
    """(text, encoding, notices): UTF-8 (with or without BOM); UTF-16 with a BOM; else CP949 if it reads as Korean."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not data.startswith(codecs.BOM_UTF32_LE):
        try:
            return data.decode("utf-16"), "utf-16", [f"{path}: converted from UTF-16"]
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not valid UTF-16 although it starts with a UTF-16 byte order mark "
                             f"(offset {exc.start})") from None
    try:
        return data.decode("utf-8-sig"), "utf-8", []
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        text = data.decode("cp949")
    except UnicodeDecodeError:
        text = ""
    if text and _mostly_hangul(text):
        return text, "cp949", [f"{path}: converted from CP949 (Korean Windows encoding) to UTF-8"]
    raise InputError(f"{path}: not valid UTF-8 (offset {utf8_error.start}); save the file as UTF-8") from None


# --------------------------------------------------------------------------- values


def shown(value: object) -> str:
    """A value as an error message quotes it: repr, shortened (a 400-digit number is not worth printing whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 64:
        return f"an integer of {len(str(abs(value))) if abs(value).bit_length() < 10_000 else 'many'} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bounded(number: float, name: str, where: str, shown: str) -> float:
    if not math.isfinite(number) or abs(number) > MAX_SCORE_MAGNITUDE:
        raise InputError(f"{where}: {name} must be a finite number of magnitude at most {MAX_SCORE_MAGNITUDE:g}, "
                         f"got {shown}")
    return number


def _number(value: object, name: str, where: str, optional: bool) -> float | None:
    """A finite, bounded float from a JSON number or a text cell; None for an empty optional one."""
    if isinstance(value, bool):
        raise InputError(f"{where}: {name} must be a number, got {value!r}")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        return _bounded(number, name, where, shown(value))
    text = "" if value is None else str(value).strip()
    if not text:
        if optional:
            return None
        raise InputError(f"{where}: {name} is required")
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"{where}: {name} must be a number, got {shown(text)}") from None
    return _bounded(number, name, where, shown(text))


def flag(value: object, where: str, name: str = "example") -> bool:
    """A yes/no cell: true/false, yes/no, 1/0 (empty is no)."""
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise InputError(f"{where}: {name} must be true/false, got {shown(value)}")


def check_mapping(rec: dict[str, Any], where: str, fields: tuple[str, ...], required: tuple[str, ...]) -> None:
    """A record's fields are known, its values scalars, and its required text fields present."""
    unknown = sorted(set(rec) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown field {shown(unknown[0])} (fields: {', '.join(fields)})")
    for name, value in rec.items():
        if not isinstance(value, SCALARS):
            raise InputError(f"{where}: {name} must be text or a number, got {type(value).__name__}")
    for name in required:
        if not str(rec.get(name) or "").strip():
            raise InputError(f"{where}: {name} is required")


def _from_mapping(rec: dict[str, Any], where: str) -> ScoreInput:
    """One score from a CSV row or JSON object; the first problem of the record as an InputError."""
    check_mapping(rec, where, FIELDS, ("stage", "team", "source"))

    def opt(name: str) -> str | None:
        value = rec.get(name)
        return None if value is None or str(value).strip() == "" else str(value).strip()

    value = _number(rec.get("value"), "value", where, False)
    assert value is not None
    return ScoreInput(stage=str(rec["stage"]).strip(), team=str(rec["team"]).strip(),
                      source=str(rec["source"]).strip(), value=value,
                      stderr=_number(rec.get("stderr"), "stderr", where, True), rater=opt("rater") or "",
                      run_id=opt("run_id"), evidence=opt("evidence"), note=opt("note"),
                      example=flag(rec.get("example"), where), where=where)


# --------------------------------------------------------------------------- records


def csv_records(text: str, path: str | Path, fields: tuple[str, ...], required: tuple[str, ...],
                build: Callable[[dict[str, Any], str], T]) -> list[T]:
    """Records of a CSV file with a header row (columns checked against `fields`), each built by `build`."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise InputError(f"{path}:1: malformed CSV header: {exc}") from None
    if not header:
        raise InputError(f"{path}: empty CSV file (expected a header row: {', '.join(fields)})")
    names = [h.strip() for h in header]
    reader.fieldnames = names
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise InputError(f"{path}:1: unknown column {shown(unknown[0])} (columns: {', '.join(fields)})")
    missing = [n for n in required if n not in names]
    if missing:
        raise InputError(f"{path}:1: no {', '.join(repr(m) for m in missing)} column "
                         f"(required: {', '.join(required)})")

    def rows() -> Iterable[Callable[[], T]]:
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                where = f"{path}:{reader.line_num}"

                def malformed(where: str = where, exc: csv.Error = exc) -> T:
                    raise InputError(f"{where}: malformed CSV: {exc}")

                yield malformed
                return
            where = f"{path}:{reader.line_num}"
            if None in rec:
                yield partial(_too_many, where)
            else:
                yield partial(build, rec, where)

    return collect(rows())


def _too_many(where: str) -> Any:
    raise InputError(f"{where}: more values than header columns")


def json_records(text: str, path: str | Path, list_key: str, build: Callable[[dict[str, Any], str], T]) -> list[T]:
    """Records of a JSON file: a list of objects or {list_key: [...]}, each built by `build`."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to be a {list_key[:-1]} file") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InputError(f"{path}: unreadable JSON: {' '.join(str(exc).split())[:200]}") from None
    records = doc.get(list_key) if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a list of {list_key[:-1]} objects or {{\"{list_key}\": [...]}}")

    def one(i: int, rec: object) -> T:
        if not isinstance(rec, dict):
            raise InputError(f"{path}: {list_key}[{i}] is not an object")
        return build(rec, f"{path}: {list_key}[{i}]")

    return collect(partial(one, i, rec) for i, rec in enumerate(records))


def read_score_file(path: str | Path) -> ParsedScores:
    """Read a .csv (header row) or .json (list of objects, or {"scores": [...]}) score file, with notices."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".json"):
        if not os.path.lexists(path):
            raise InputError(f"{path}: file not found")
        raise InputError(f"{path}: unsupported score file type {suffix or '(none)'!r}; use .csv or .json")
    text, encoding, notices = decode(read_capped(path), path)
    items = (csv_records(text, path, FIELDS, REQUIRED, _from_mapping) if suffix == ".csv"
             else json_records(text, path, "scores", _from_mapping))
    if not items:
        raise InputError(f"{path}: contains no scores")
    return ParsedScores(items=items, notices=notices, encoding=encoding)


def parse_file(path: str | Path) -> list[ScoreInput]:
    """The scores of a .csv or .json score file, for callers that have no use for `read_score_file`'s notices."""
    return read_score_file(path).items
