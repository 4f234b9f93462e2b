"""Reading and writing the small files around the audit log (keys, checkpoints, exports) with care:
a size cap on everything read, and no silent overwrite of what was written before."""

from __future__ import annotations

import os
from pathlib import Path

from simsa.errors import InputError
from simsa.files import FileReadError, read_limited


def read_capped(path: str | Path, limit: int, what: str) -> bytes:
    """The file's bytes, refusing anything but a regular file of at most `limit` bytes (`simsa.files`), so a hostile
    or mistaken path can neither exhaust memory nor block (a FIFO)."""
    try:
        return read_limited(path, limit, f"{what}s")
    except FileReadError as exc:
        if exc.problem == "not_regular":
            raise InputError(f"{path}: is {exc.kind}, not a {what}") from None
        if exc.problem == "too_large":
            raise InputError(f"{path}: larger than {limit} bytes; not a {what}") from None
        raise InputError(f"{path}: cannot read {what} ({exc})") from None


def write_new(path: str | Path, data: bytes, mode: int = 0o644, what: str = "file", overwrite: bool = False) -> None:
    """Create `path` with exactly `mode`, failing if it exists unless `overwrite` (then replaced atomically):
    keys and checkpoints are never overwritten by accident."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp") if overwrite else target
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise InputError(f"{path} already exists; refusing to overwrite a {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot create {what} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)  # the umask may have narrowed it; make it exactly `mode`
            fh.write(data)
        if overwrite:
            os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write {what} ({exc.strerror or exc})") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
