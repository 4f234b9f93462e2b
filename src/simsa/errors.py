"""Errors that the shells turn into one-line messages and exit codes instead of tracebacks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
MAX_LISTED_PROBLEMS = 20


class SimsaError(Exception):
    """A user-facing failure: bad input, missing data, a refused operation.

    `exit_code` follows the CLI convention: 2 for invalid input, 1 for a failed check.
    """

    exit_code = 2


class ProgramFileError(SimsaError):
    """The program file is unreadable or does not satisfy the schema."""

    def __init__(self, path: str, line: int | None, key: str | None, message: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        where = f"{path}:{line}" if line else path
        what = f" {key}:" if key else ""
        super().__init__(f"{where}:{what} {message}")


class InputError(SimsaError):
    """A command argument or an imported file is invalid."""


class NotFound(InputError):
    """A programme, stage, team, record or document named by a caller that does not exist (the web answers 404)."""

    not_found = True


class DataMissingError(SimsaError):
    """A decision cannot be made because required scores or gate results are missing."""


class CheckFailed(SimsaError):
    """A verification ran and found a problem (audit tampering, invalid state)."""

    exit_code = 1


class CheckpointError(SimsaError):
    """A model checkpoint is missing, malformed, hostile or in a format we refuse to read (pickles)."""


def collect(builders: Iterable[Callable[[], T]], limit: int = MAX_LISTED_PROBLEMS,
            what: str = "invalid rows") -> list[T]:
    """Run every builder, gathering the InputErrors of all of them into one error that names them (up to `limit`),
    so that a file with several bad rows is fixed in one pass rather than one row per attempt."""
    items: list[T] = []
    problems: list[str] = []
    count = 0
    for build in builders:
        try:
            items.append(build())
        except InputError as exc:
            count += 1
            if len(problems) < limit:
                problems.append(str(exc))
    if count == 1:
        raise InputError(problems[0])
    if count:
        more = f"; and {count - len(problems)} more" if count > len(problems) else ""
        raise InputError(f"{count} {what}: " + "; ".join(problems) + more)
    return items
