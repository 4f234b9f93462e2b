"""Reading a small input file safely: regular files only, and never more than a fixed number of bytes.

A path may name a device (`/dev/zero` never ends), a FIFO (opening it blocks until a writer comes) or a file that
grows while it is read, so the type is checked before opening, checked again on the opened descriptor (the path
may have been swapped in between), and the read stops one byte past the limit whatever `stat` said the size was.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class FileReadError(Exception):
    """Why a file could not be read, as one line without the path (the caller names the file)."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_limited(path: str | Path, limit: int, what: str = "files") -> bytes:
    """The bytes of the regular file at `path`; FileReadError when it is something else or over `limit` bytes."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise FileReadError("file not found") from None
    except OSError as exc:
        raise FileReadError(f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(before.st_mode):
        raise FileReadError("is a directory")
    if not stat.S_ISREG(before.st_mode):
        raise FileReadError(f"is {_kind(before.st_mode)}, not a regular file")
    if before.st_size > limit:
        raise FileReadError(f"file is {before.st_size} bytes; {what} are limited to {limit} bytes")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileReadError(f"cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise FileReadError(f"is {_kind(mode)}, not a regular file")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise FileReadError(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise FileReadError(f"file is over {limit} bytes; {what} are limited to {limit} bytes")
    return data
