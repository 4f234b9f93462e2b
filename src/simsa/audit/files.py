"""Reading and writing the small files around the audit log (keys, checkpoints, exports) with care:
a size cap on everything read, and no silent overwrite of what was written before."""

from __future__ import annotations

import os
from pathlib import Path

from simsa.errors import InputError


def read_capped(path: str | Path, limit: int, what: str) -> bytes:
    """The file's bytes, refusing files over `limit` bytes so a hostile or mistaken path cannot exhaust memory."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit} bytes; not a {what}")
    return data


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
