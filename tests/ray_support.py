"""Ray helpers shared by the scale-out tests: find the worker processes busy with a unit, and kill one mid-task."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path


def busy_ray_workers() -> list[int]:
    """Pids of Ray worker processes running a unit now (Ray titles a busy worker after its task's function)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::_ray_task"):
            found.append(int(entry.name))
    return found


def kill_one_busy_worker(within: float = 60.0, after: float = 0.0) -> tuple[threading.Thread, list[int]]:
    """A started thread that SIGKILLs the first worker seen busy (after `after` seconds of being busy); the list
    it returns receives the pid killed."""
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not killed:
            busy = busy_ray_workers()
            if busy:
                time.sleep(after)
                if busy[0] in busy_ray_workers():
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread, killed
