"""Read and validate a program file, turning every failure into one `file:line: key: message` error."""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from simsa.errors import ProgramFileError
from simsa.program.locate import dotted, index_lines, line_of
from simsa.program.schema import Program

MAX_PROGRAM_BYTES = 1_000_000


@dataclass(frozen=True)
class LoadedProgram:
    """A validated program together with the exact text it came from (hashed for the audit log)."""

    program: Program
    text: str
    sha256: str
    path: str


def _describe(err: dict) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        return "unknown key (check its spelling; see docs/program-file.md)"
    if kind == "missing":
        return "required key is missing"
    msg = re.sub(r"^Value error, ", "", msg)
    value = err.get("input")
    if kind not in ("value_error", "missing") and isinstance(value, str | int | float | bool) and len(repr(value)) < 60:
        msg += f" (got {value!r})"
    return msg


def parse_program(text: str, path: str = "<program>") -> LoadedProgram:
    """Validate program text; raises ProgramFileError naming file, line and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
        raise ProgramFileError(path, line, None, f"TOML syntax error: {message}") from None
    try:
        program = Program.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        loc = tuple(first.get("loc", ()))
        positions = index_lines(text)
        line = line_of(positions, loc)
        extra = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ProgramFileError(path, line, dotted(loc) or None, _describe(first) + extra) from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedProgram(program=program, text=text, sha256=digest, path=path)


def load_program(path: str | Path) -> LoadedProgram:
    """Read a program file from disk (size-limited, UTF-8) and validate it."""
    p = Path(path)
    shown = str(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ProgramFileError(shown, None, None, "file not found") from None
    except OSError as exc:
        raise ProgramFileError(shown, None, None, f"cannot read: {exc.strerror}") from None
    if p.is_dir():
        raise ProgramFileError(shown, None, None, "is a directory, expected a .toml program file")
    if size > MAX_PROGRAM_BYTES:
        raise ProgramFileError(shown, None, None, f"file is {size} bytes; program files are limited to "
                                                 f"{MAX_PROGRAM_BYTES} bytes")
    raw = p.read_bytes()
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
    return parse_program(text, shown)
