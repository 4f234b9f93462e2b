"""Reading a small input file safely: regular files only, and never more than a fixed number of bytes.

A path may name a device (`/dev/zero` never ends), a FIFO (opening it blocks until a writer comes) or a file that
grows while it is read, so the type is checked before opening, checked again on the opened descriptor (the path
may have been swapped in between), and the read stops one byte past the limit whatever `stat` said the size was.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))

Problem = Literal["missing", "unreadable", "not_regular", "too_large"]


class FileReadError(Exception):
    """Why a file could not be read, as one line without the path (the caller names the file).

    `problem` says which kind of failure it is, and `kind` what the path is when it is not a regular file
    ("a FIFO", "a directory"…), so callers can word their own message without parsing this one.
    """

    def __init__(self, message: str, problem: Problem, kind: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.kind = kind


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _not_regular(mode: int) -> FileReadError:
    kind = _kind(mode)
    if stat.S_ISDIR(mode):
        return FileReadError("is a directory", "not_regular", kind)
    shown = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else kind
    return FileReadError(f"is {shown}, not a regular file", "not_regular", kind)


def read_limited(path: str | Path, limit: int, what: str = "files") -> bytes:
    """The bytes of the regular file at `path`; FileReadError when it is something else or over `limit` bytes."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise FileReadError("file not found", "missing") from None
    except OSError as exc:
        raise FileReadError(f"cannot read: {exc.strerror or exc}", "unreadable") from None
    if not stat.S_ISREG(before.st_mode):
        raise _not_regular(before.st_mode)
    if before.st_size > limit:
        raise FileReadError(f"file is {before.st_size} bytes; {what} are limited to {limit} bytes", "too_large")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileReadError(f"cannot read: {exc.strerror or exc}", "unreadable") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(mode)
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise FileReadError(f"cannot read: {exc.strerror or exc}", "unreadable") from None
    if len(data) > limit:
        raise FileReadError(f"file is over {limit} bytes; {what} are limited to {limit} bytes", "too_large")
    return data
