"""Crash logs: an unexpected exception's traceback goes to a file, so the terminal gets one line, not a traceback.

The file lives in $SIMSA_CRASH_DIR, else the user's state directory ($XDG_STATE_HOME/simsa, by default
~/.local/state/simsa), else the temporary directory. It is readable by its owner only: tracebacks show paths and
values. Secrets on the command line (API keys, database passwords) are masked before the command is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

EX_SOFTWARE = 70  # sysexits.h: an internal software error
SECRET_OPTIONS = ("--api-key", "--key", "--token", "--password")
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^@/\s]*@")


def crash_dirs() -> list[Path]:
    """Where a crash log may go, in order of preference."""
    dirs = []
    if os.environ.get("SIMSA_CRASH_DIR"):
        dirs.append(Path(os.environ["SIMSA_CRASH_DIR"]))
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    dirs.append(Path(state) / "simsa")
    dirs.append(Path(tempfile.gettempdir()))
    return dirs


def mask_argv(argv: Sequence[str]) -> list[str]:
    """The command line with the values of secret options and URL passwords replaced by ***."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in SECRET_OPTIONS:
            if eq:
                out.append(f"{name}=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(_URL_PASSWORD.sub(r"\1***@", arg))
    return out


def write_crash_log(exc: BaseException, argv: Sequence[str], version: str) -> Path | None:
    """Write the traceback and context to a new file; None if no candidate directory was writable."""
    now = dt.datetime.now(dt.UTC)
    name = f"crash-{now:%Y%m%dT%H%M%SZ}-{os.getpid()}.log"
    body = "".join([
        f"simsa {version} crashed at {now.isoformat()}\n",
        f"command: {' '.join(mask_argv(argv))}\n",
        f"python {platform.python_version()} on {platform.platform()}\n\n",
        *traceback.format_exception(exc),
    ])
    for folder in crash_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = folder / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
                fh.write(body)
            return path
        except OSError:
            continue
    return None


def internal_error_message(exc: BaseException, log: Path | None) -> str:
    """One line naming the exception and where its details are."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    where = f"details in {log}" if log else "no crash log could be written; traceback follows"
    return f"internal error: {type(exc).__name__}: {text} ({where})"


def report_crash(exc: BaseException, version: str, as_json: bool) -> int:
    """Log the exception, print its one line (and JSON), and return the exit code."""
    from simsa.cli.output import emit_json, err_console

    log = write_crash_log(exc, sys.argv, version)
    message = internal_error_message(exc, log)
    if as_json:
        with contextlib.suppress(OSError):
            emit_json({"error": message, "exit_code": EX_SOFTWARE, "crash_log": str(log) if log else None})
    try:
        err_console.print(message, markup=False, highlight=False, soft_wrap=True)
        if log is None:
            sys.stderr.write("".join(traceback.format_exception(exc)))
    except OSError:
        pass
    return EX_SOFTWARE
