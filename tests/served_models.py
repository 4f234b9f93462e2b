"""Model servers for tests: `simsa serve-model` (or a variant of it) in a process of its own on loopback, its
address read from the JSON line it prints, and stopped with SIGTERM; torch kept on one thread while tests build or
run tiny models (OpenMP threads spinning on a small shared machine make torch many times slower)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

START_TIMEOUT_S = 120.0


@contextmanager
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def serve_command(model_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "simsa.cli.main", "serve-model", str(model_dir), *extra]


def launch(command: list[str], *, api_key: str | None = None,
           stderr: IO[str] | int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """A server process with one OpenMP thread and the given API key (none: the variable unset)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SIMSA_SERVE_API_KEY", None)
    if api_key is not None:
        env["SIMSA_SERVE_API_KEY"] = api_key
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


def first_line(proc: subprocess.Popen[str], timeout: float = START_TIMEOUT_S) -> str:
    """The process's first line of output, or "" when none comes within `timeout` seconds."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline() if proc.stdout else ""), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def address(proc: subprocess.Popen[str], what: str = "serve-model", log: Path | None = None) -> dict[str, Any]:
    """The JSON the server prints once it listens (url, model, sha256); fails the test when it prints nothing."""
    import pytest

    line = first_line(proc)
    if not line:
        tail = f"; stderr:\n{log.read_text()[-3000:]}" if log is not None and log.exists() else ""
        pytest.fail(f"{what} printed no address{tail}")
    return json.loads(line)


def stop(*procs: subprocess.Popen[str]) -> list[int]:
    """SIGTERM every process, then wait (killing one that does not stop); their exit codes."""
    for proc in procs:
        proc.terminate()
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=20))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait(timeout=10))
    return codes
