"""Lineage at realistic scale: fingerprint, pair test, registry scan and remote compare of a 7B and a 30B MoE.

    .venv/bin/python benchmarks/lineage_scale.py [--cache DIR] [--steps build,fingerprint,pair,scan,remote]
                                            [--skip-moe] [--keep] [--blas-threads N] [--json]

Builds once (cached under DIR, default ``simsa-lineage-scale`` in the system temp directory; reused while its manifest
has the same recipe version) two synthetic checkpoints in Hugging Face layout: a llama-shaped 7B in bf16 (≈13.5 GB)
and a Qwen3-30B-A3B-shaped MoE stored like the public FP8 releases (F8_E4M3 with 128x128 block ``weight_scale_inv``,
≈31 GB); see ``benchmarks/scale_models.py``. Then, each measurement in a fresh child process (peak RSS is the
child's own VmHWM):

* ``fingerprint``: raw sequential read of every shard (16 MiB chunks; run before and after, the faster counts)
  against ``build_fingerprint`` + ``save`` of the same model, all cold: each file is fsynced and dropped from the
  page cache with ``posix_fadvise(POSIX_FADV_DONTNEED)`` first;
* ``pair``: ``compare`` of the 7B against its own fingerprint and against the fingerprint of an independent 7B-shaped
  model (a virtual checkpoint: values computed on demand, no disk), cold then warm, split into read+decode time (time
  inside the candidate checkpoint's read calls) and compute; the MoE against its own fingerprint;
* ``scan``: ``scan`` of the 7B over a registry of 150 fingerprints (148 virtual models of public shapes, the 7B's and
  the MoE's own);
* ``remote``: the 7B served over HTTP on loopback with the hub's URL layout (a streaming server: files are read from
  disk per range), compared in a child with ``HF_ENDPOINT`` pointing at it, ``views="input"``, 128 units.

Prints a table of measure / value / goal / met (``--json``: the figures as JSON). ``--keep`` deletes nothing. Without
it the run removes its scratch files (the child's hub cache), cached builds of other recipe versions under DIR, and
the MoE checkpoint once its measurements are done (before the registry is built): the 7B, the MoE and the registry's
≈8.5 GB of fingerprints together would need ≈53 GB. The MoE is rebuilt (a few minutes) by a later run that needs it.
``--blas-threads`` sets OMP/OPENBLAS/MKL_NUM_THREADS for the measured children (default: inherited). Children that
only build fixtures (the 148 virtual fingerprints) use one BLAS thread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

STEPS = ("build", "fingerprint", "pair", "scan", "remote")
SEED_7B, SEED_MOE, SEED_INDEPENDENT = 1, 2, 7
READ_CHUNK = 16 * 2**20
GOAL_SPEED = 0.8  # fingerprint speed / raw sequential read speed
GOAL_RSS_MIB = 2048.0
GOAL_RSS_FLAT = 1.25  # MoE peak RSS / 7B peak RSS
GOAL_COMPUTE_S = 60.0
GOAL_SCAN_S = 5.0
GOAL_REMOTE_FRACTION = 0.02
REMOTE_REPO = "scale-org/llama-7b"
NAME_7B, NAME_MOE = "scale-llama-7b", "scale-qwen3-moe-30b"
PROGRESS_MARK = "\x1esimsa-progress "
REGISTRY_MANIFEST = "scale-registry.json"
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ================================================================================================ helpers


def vm_hwm_mib() -> float:
    """This process's peak resident set (VmHWM), MiB."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024.0


def page_cache_bytes() -> int:
    with open("/proc/meminfo") as fh:
        line = next(line for line in fh if line.startswith("Cached:"))
    return int(line.split()[1]) * 1024


def drop_cache(paths: list[Path]) -> dict:
    """fsync each file (dirty pages cannot be dropped) and drop it from the page cache (POSIX_FADV_DONTNEED)."""
    before = page_cache_bytes()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return {"page_cache_freed_bytes": max(0, before - page_cache_bytes())}


def model_paths(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file())


def instrument(ckpt: Any) -> list[float]:
    """Accumulate the seconds spent inside the checkpoint's read calls (I/O + decode + dequantise + digest)."""
    spent = [0.0]
    for method in ("read", "read_index", "digest"):
        inner = getattr(ckpt, method)

        def timed(*args: Any, _inner: Callable = inner, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0

        setattr(ckpt, method, timed)
    return spent


def fingerprint_key() -> str:
    """What makes stored fingerprints comparable with new ones: the schema and the default sampling sizes."""
    from simsa.lineage.formats.fingerprint import SCHEMA, FingerprintSettings

    return f"{SCHEMA} {json.dumps(asdict(FingerprintSettings()), sort_keys=True)}"


def fingerprint_is_current(path: Path) -> bool:
    """Whether a stored fingerprint has today's schema and sampling sizes (reads its header only)."""
    from simsa.errors import CheckpointError
    from simsa.lineage.formats.safetensors import SafetensorsFile

    try:
        with SafetensorsFile(path) as f:
            meta = json.loads(f.metadata.get("simsa", "{}"))
    except (CheckpointError, ValueError, OSError):
        return False
    return f"{meta.get('schema')} {json.dumps(meta.get('settings'), sort_keys=True)}" == fingerprint_key()


def library_state() -> dict[str, str]:
    """sha256 (12 hex) of each lineage module at the start of the run: the library changes, the figures date."""
    lineage = ROOT / "src" / "simsa" / "lineage"
    return {str(p.relative_to(lineage)): hashlib.sha256(p.read_bytes()).hexdigest()[:12]
            for p in sorted(lineage.rglob("*.py"))}


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def secs(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} s"


# ================================================================================================ children


class _Emitter:
    """Progress events for the parent's bars, on stderr, at most a few per second."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, stage: str, i: int, n: int) -> None:
        now = time.perf_counter()
        if i >= n or now - self.last > 0.3:
            self.last = now
            print(PROGRESS_MARK + json.dumps({"stage": stage, "i": i, "n": n}), file=sys.stderr, flush=True)


def child_raw(p: dict) -> dict:
    files = [Path(f) for f in p["files"]]
    dropped = drop_cache(files)
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    total = 0
    emit = _Emitter()
    size = sum(f.stat().st_size for f in files)
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while n := fh.readinto(view):
                total += n
                emit("read", total, size)
    return {"seconds": time.perf_counter() - t0, "bytes": total, **dropped}


def child_fingerprint(p: dict) -> dict:
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.build import build_fingerprint

    root = Path(p["model"])
    dropped = drop_cache(model_paths(root))
    t0 = time.perf_counter()
    side = open_side(root)
    opened = time.perf_counter() - t0
    spent = instrument(side.ckpt)
    fp = build_fingerprint(side, name=p["name"], progress=_Emitter())
    built = time.perf_counter() - t0
    size = fp.save(p["out"])
    seconds = time.perf_counter() - t0
    io = side.ckpt.io_stats().to_dict()
    side.ckpt.close()
    return {"seconds": seconds, "open_seconds": opened, "build_seconds": built, "read_seconds": spent[0],
            "bytes": size, "parameters": side.ckpt.total_parameters(), "io": io, "rss_mib": vm_hwm_mib(), **dropped}


def _compare_summary(result: dict) -> dict:
    return {"verdict": result["verdict"], "log10_p": result["log10_p"], "seconds": result["seconds"],
            "components": [[c["name"], c["verdict"], c["log10_p"]] for c in result["components"]]}


def child_pair(p: dict) -> dict:
    from simsa.lineage.compare.result import compare
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.stats.correspondence import SamplingSettings

    root = Path(p["model"])
    settings = SamplingSettings(**p.get("settings", {}))
    cand = open_side(root)
    spent = instrument(cand.ckpt)
    out: dict = {}
    emit = _Emitter()
    for label, ref_path in p["refs"]:
        ref = open_side(ref_path)
        runs = {}
        for mode in ("cold", "warm"):
            dropped = drop_cache(model_paths(root)) if mode == "cold" else {}
            spent[0] = 0.0
            io0 = cand.ckpt.io_stats()
            t0 = time.perf_counter()
            result = compare(cand, ref, settings, progress=lambda s, i, n, m=mode, lb=label: emit(f"{lb} {m}: {s}",
                                                                                                    i, n))
            wall = time.perf_counter() - t0
            io1 = cand.ckpt.io_stats()
            runs[mode] = {"wall_seconds": wall, "read_seconds": spent[0], "compute_seconds": wall - spent[0],
                          "bytes_read": io1.bytes_read - io0.bytes_read, "bytes_total": io1.bytes_total,
                          **_compare_summary(result), **dropped}
        ref.ckpt.close()
        out[label] = runs
    return {"pairs": out, "rss_mib": vm_hwm_mib()}


def child_virtual_fingerprint(p: dict) -> dict:
    from benchmarks.scale_models import ModelSpec, VirtualCheckpoint, virtual_side

    from simsa.lineage.fingerprints.build import build_fingerprint

    t0 = time.perf_counter()
    ckpt = VirtualCheckpoint(ModelSpec(**p["spec"]), p["seed"], {"tokenizer.json": Path(p["tokenizer"])})
    fp = build_fingerprint(virtual_side(ckpt), name=p["name"], progress=_Emitter())
    size = fp.save(p["out"])
    return {"seconds": time.perf_counter() - t0, "bytes": size}


def child_registry(p: dict) -> dict:
    from benchmarks.scale_models import VirtualCheckpoint, registry_models, virtual_side

    from simsa.lineage.fingerprints.build import build_fingerprint
    from simsa.lineage.fingerprints.registry import Registry

    reg = Registry.open(p["registry"], create=True)
    tokenizers = {k: Path(v) for k, v in p["tokenizers"].items()}
    models = list(registry_models(p["toy"]))
    emit = _Emitter()
    t0 = time.perf_counter()
    built = 0
    for i, (name, spec, seed) in enumerate(models):
        if name not in reg.entries or p["rebuild"]:
            ckpt = VirtualCheckpoint(spec, seed, {"tokenizer.json": tokenizers[spec.tokenizer]})
            fp = build_fingerprint(virtual_side(ckpt, f"virtual:{name}"), name=name)
            reg.add(fp, name)
            built += 1
        emit("virtual fingerprints", i + 1, len(models))
    return {"seconds": time.perf_counter() - t0, "built": built, "count": len(models)}


def child_scan(p: dict) -> dict:
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.registry import Registry
    from simsa.lineage.fingerprints.scan import scan

    root = Path(p["model"])
    reg = Registry.open(p["registry"])
    cand = open_side(root)
    spent = instrument(cand.ckpt)
    emit = _Emitter()
    runs = {}
    for mode in ("cold", "warm"):
        dropped = drop_cache(model_paths(root)) if mode == "cold" else {}
        spent[0] = 0.0
        t0 = time.perf_counter()
        result = scan(cand, reg, progress=lambda s, i, n, m=mode: emit(f"{m}: {s}", i, n))
        wall = time.perf_counter() - t0
        matches = result["matches"]
        expect = p["expect"]
        others = [m for m in matches if m["reference"] != expect]
        runs[mode] = {"wall_seconds": wall, "read_seconds": spent[0], "seconds": result["seconds"],
                      "references": result["references"], "tested": result["tested"], "skipped": result["skipped"],
                      "first": {k: matches[0].get(k) for k in ("reference", "verdict", "adjusted_log10_p")}
                      if matches else None,
                      "expected_rank": next((i + 1 for i, m in enumerate(matches) if m["reference"] == expect), None),
                      "expected_verdict": next((m["verdict"] for m in matches if m["reference"] == expect), None),
                      "others_not_independent": [[m["reference"], m["verdict"], m["adjusted_log10_p"]]
                                                 for m in others if m["verdict"] != "independent"],
                      "others_min_adjusted_log10_p": min((m["adjusted_log10_p"] for m in others), default=None),
                      **dropped}
    return {"runs": runs, "rss_mib": vm_hwm_mib()}


def child_remote(p: dict) -> dict:
    from simsa.lineage.compare.result import compare
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.stats.correspondence import SamplingSettings

    t0 = time.perf_counter()
    cand = open_side(p["repo"])
    opened = time.perf_counter() - t0
    ref = open_side(p["fingerprint"])
    result = compare(cand, ref, SamplingSettings(views="input", units=128), progress=_Emitter())
    wall = time.perf_counter() - t0
    return {"wall_seconds": wall, "open_seconds": opened, "io": result["io"]["candidate"],
            "path": result["candidate"]["path"], "rss_mib": vm_hwm_mib(), **_compare_summary(result)}


CHILDREN: dict[str, Callable[[dict], dict]] = {
    "raw": child_raw, "fingerprint": child_fingerprint, "pair": child_pair,
    "virtual-fingerprint": child_virtual_fingerprint, "registry": child_registry, "scan": child_scan,
    "remote": child_remote,
}


def child_main(task: str, payload: str) -> None:
    result = CHILDREN[task](json.loads(payload))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# ================================================================================================ parent side


class ChildFailed(Exception):
    """A child exited with an error (or was killed): the step is reported as failed and the run goes on."""

    def __init__(self, message: str, tail: str) -> None:
        super().__init__(message)
        self.tail = tail


class Runner:
    """Starts children, turns their progress events into Rich bars, and collects their JSON results."""

    def __init__(self, progress: Progress, blas_threads: int | None) -> None:
        self.progress = progress
        self.blas_threads = blas_threads
        self.log: list[dict] = []

    def env(self, *, blas_threads: int | None = None, extra: dict[str, str] | None = None,
            drop_prefixes: tuple[str, ...] = ()) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not (drop_prefixes and k.startswith(drop_prefixes))}
        threads = blas_threads if blas_threads is not None else self.blas_threads
        if threads is not None:
            env.update(dict.fromkeys(BLAS_VARS, str(threads)))
        env.update(extra or {})
        return env

    def run(self, task: str, payload: dict, description: str, *, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> dict:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", task, json.dumps(payload)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env or self.env(), cwd=cwd)
        assert proc.stdout is not None and proc.stderr is not None
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        tail: deque[str] = deque(maxlen=60)
        bar = self.progress.add_task(description, total=None)
        started = time.perf_counter()
        load = os.getloadavg()[0]
        for line in proc.stderr:
            if line.startswith(PROGRESS_MARK):
                ev = json.loads(line[len(PROGRESS_MARK):])
                self.progress.update(bar, description=f"{description} · {ev['stage']}", completed=ev["i"],
                                     total=max(1, ev["n"]))
            else:
                tail.append(line)
        proc.wait()
        reader.join()
        self.progress.remove_task(bar)
        if proc.returncode != 0:
            raise ChildFailed(f"{description}: child '{task}' failed (exit {proc.returncode})", "".join(tail))
        lines = "".join(chunks).strip().splitlines()
        result = json.loads(lines[-1])
        result["child_wall_seconds"] = round(time.perf_counter() - started, 2)
        result["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]  # 1-min load before, after
        self.log.append({"task": task, "what": description, "wall_seconds": result["child_wall_seconds"],
                         "cpu_seconds": round(result["cpu_seconds"], 1), "load_average": result["load_average"]})
        return result


# --------------------------------------------------------------------------------------------- streaming hub


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class StreamingHub:
    """One model directory served on loopback with the hub's URL layout, read from disk per range request.

    ``tests/hub_server.py`` keeps every file in memory (fine for the tests' small models, not for 13 GB), so this
    variant streams: ``GET /api/models/{repo}[/revision/{rev}]`` (model info with sizes), ``GET|HEAD
    /{repo}/resolve/{rev}/{file}`` (small files directly, ``.safetensors`` answered with a 302 to ``/cdn/...`` as the
    hub redirects LFS files), and ``/cdn/{file}`` with byte ranges. Counts requests and body bytes sent.
    """

    def __init__(self, repo_id: str, root: Path) -> None:
        self.repo_id = repo_id
        self.files = {p.name: p for p in model_paths(root)}
        stamp = hashlib.sha1()
        for name, path in sorted(self.files.items()):
            st = path.stat()
            stamp.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        self.sha = stamp.hexdigest()
        self.small = {n: p.read_bytes() for n, p in self.files.items() if not n.endswith(".safetensors")}
        self.lock = threading.Lock()
        self.requests = 0
        self.data_requests = 0
        self.sent = 0
        handler = type("Handler", (_HubHandler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def lfs_sha256(self, name: str) -> str:
        st = self.files[name].stat()
        return hashlib.sha256(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: StreamingHub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        with self.hub.lock:
            self.hub.requests += 1
        try:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            if path.startswith("/api/models/"):
                self._api(path[len("/api/models/"):], query)
            elif path.startswith("/cdn/"):
                self._data(path[len("/cdn/"):], {"ETag": f'"{self.hub.lfs_sha256(path[len("/cdn/"):])}"'})
            else:
                self._resolve(path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        self._reply(status, json.dumps({"error": message}).encode(),
                    {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message})

    def _api(self, rest: str, query: dict[str, list[str]]) -> None:
        parts = rest.split("/")
        hub = self.hub
        if "/".join(parts[:2]) != hub.repo_id:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        revision = "/".join(parts[3:]) if len(parts) > 3 and parts[2] == "revision" else "main"
        if revision not in ("main", hub.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for name, path in sorted(hub.files.items()):
            sibling: dict[str, Any] = {"rfilename": name}
            if blobs:
                size = path.stat().st_size
                sibling["size"] = size
                if name in hub.small:
                    sibling["blobId"] = _git_sha1(hub.small[name])
                else:
                    sibling["blobId"] = hub.lfs_sha256(name)[:40]
                    sibling["lfs"] = {"size": size, "sha256": hub.lfs_sha256(name), "pointerSize": 134}
            siblings.append(sibling)
        info = {"_id": hub.sha[:24], "id": hub.repo_id, "modelId": hub.repo_id, "sha": hub.sha, "private": False,
                "siblings": siblings, "tags": [], "downloads": 0, "likes": 0}
        self._reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"})

    def _resolve(self, path: str) -> None:
        hub = self.hub
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/(.+?)/([^/]+)", path)
        if match is None or match.group(1) != hub.repo_id:
            self._error(404, "RepoNotFound", "Repository not found")
            return
        if match.group(2) not in ("main", hub.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {match.group(2)}")
            return
        name = match.group(3)
        if name not in hub.files:
            self._error(404, "EntryNotFound", "Entry not found")
            return
        headers = {"X-Repo-Commit": hub.sha}
        if name not in hub.small:
            size = hub.files[name].stat().st_size
            headers |= {"X-Linked-Etag": f'"{hub.lfs_sha256(name)}"', "X-Linked-Size": str(size),
                        "Location": f"{hub.endpoint}/cdn/{quote(name)}"}
            self._reply(302, b"", headers)
            return
        data = hub.small[name]
        headers |= {"ETag": f'"{_git_sha1(data)}"', "Accept-Ranges": "bytes",
                    "Content-Type": "application/octet-stream"}
        self._reply(200, data, headers)

    def _data(self, name: str, headers: dict[str, str]) -> None:
        hub = self.hub
        path = hub.files.get(name)
        if path is None or name in hub.small:
            self._error(404, "EntryNotFound", "NoSuchKey")
            return
        size = path.stat().st_size
        headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        wanted = self.headers.get("Range")
        match = _RANGE.fullmatch(wanted.strip()) if wanted else None
        if match is None:
            start, stop, status = 0, size, 200
        else:
            first, last = match.group(1), match.group(2)
            if first == "":
                start, stop = max(0, size - int(last)), size
            else:
                start, stop = int(first), min(size, int(last) + 1 if last else size)
            if start >= size or start >= stop:
                self._reply(416, b"", {"Content-Range": f"bytes */{size}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        with hub.lock:
            hub.data_requests += 1
        fd = os.open(path, os.O_RDONLY)
        try:
            pos = start
            while pos < stop:
                chunk = os.pread(fd, min(1 << 20, stop - pos), pos)
                if not chunk:
                    break
                self.wfile.write(chunk)
                pos += len(chunk)
                with hub.lock:
                    hub.sent += len(chunk)
        finally:
            os.close(fd)


# ================================================================================================ the run


class Bench:
    SECTIONS = ("build", "fingerprint", "pair", "scan", "remote")

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        from benchmarks import scale_models as sm

        self.sm = sm
        self.args = args
        self.console = console
        self.cache: Path = args.cache
        self.work = self.cache / (f"recipe-{sm.RECIPE}" + ("-smoke" if args.smoke else ""))
        self.scratch = self.cache / "scratch"
        self.fps = self.work / "fingerprints"
        self.registry_dir = self.work / "registry"
        self.specs = {"7b": sm.LLAMA_7B, "moe": sm.QWEN3_MOE_30B}
        if args.smoke:
            self.specs = {k: sm.smoke(v) for k, v in self.specs.items()}
        self.seeds = {"7b": SEED_7B, "moe": SEED_MOE}
        self.dirs = {k: self.work / v.name for k, v in self.specs.items()}
        self.fp_paths = {"7b": self.fps / f"{NAME_7B}.simsa-fp", "moe": self.fps / f"{NAME_MOE}.simsa-fp",
                         "independent": self.fps / "independent-llama-7b.simsa-fp"}
        self.models = ["7b"] if args.skip_moe else ["7b", "moe"]
        self.figures: dict[str, Any] = {"cache": str(self.cache), "recipe": sm.RECIPE,
                                        "blas_threads": args.blas_threads or os.environ.get("OMP_NUM_THREADS"),
                                        "cpus": os.cpu_count(), "page_cache_drop": "fsync + posix_fadvise("
                                        "POSIX_FADV_DONTNEED) on every file of the model before the cold runs",
                                        "library": library_state()}
        self.rows: dict[str, list[tuple[str, str, str, bool | None]]] = {s: [] for s in self.SECTIONS}
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
        self.runner = Runner(self.progress, args.blas_threads)

    def log(self, message: str) -> None:
        self.console.print(f"[dim]{message}[/]")

    def row(self, section: str, measure: str, value: str, goal: str = "—", met: bool | None = None) -> None:
        self.rows[section].append((measure, value, goal, met))

    def all_rows(self) -> list[tuple[str, str, str, bool | None]]:
        return [r for s in self.SECTIONS for r in self.rows[s]]

    # ------------------------------------------------------------------ disk

    def tidy(self) -> None:
        """Remove cached builds of other recipe versions and old scratch files (never with --keep)."""
        if self.args.keep or not self.cache.exists():
            return
        for p in self.cache.iterdir():
            if p.is_dir() and re.fullmatch(r"recipe-\d+(-smoke)?", p.name) and p != self.work:
                self.log(f"removing the build of another recipe version: {p}")
                shutil.rmtree(p)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def check_disk(self, models: list[str]) -> None:
        """Refuse early when the checkpoints still to build do not fit (one at a time unless --keep)."""
        missing = {m: self.sm.planned_bytes(self.specs[m]) - sum(
            p.stat().st_size for p in self.dirs[m].glob("model-*.safetensors")) if self.dirs[m].exists() else
            self.sm.planned_bytes(self.specs[m]) for m in models if self.sm.read_manifest(self.dirs[m]) is None}
        if not missing:
            return
        # Without --keep the 7B is set aside while the MoE is on disk, so the largest one must fit.
        need = sum(missing.values()) if self.args.keep else max(missing.values())
        if not self.args.keep and "moe" in missing and self.dirs["7b"].exists():
            need -= sum(p.stat().st_size for p in self.dirs["7b"].glob("model-*.safetensors"))
        self.cache.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.cache).free
        if free < need + 2e9:
            raise SystemExit(f"{self.cache}: {gb(free)} free, the checkpoints to build need {gb(need)} more (plus "
                             "2 GB margin); free space, pass --cache on another disk, or --skip-moe")

    def drop_checkpoint(self, m: str, why: str) -> None:
        """Delete a checkpoint (rebuilt bit for bit when a later step needs it); never with --keep."""
        root = self.dirs[m]
        if self.args.keep or not root.exists():
            return
        shutil.rmtree(root)
        self.figures.setdefault("deleted_checkpoints", []).append({"model": m, "why": why})
        self.log(f"deleted {root} ({why}; --keep keeps it)")

    def tokenizers(self) -> dict[str, Path]:
        return {f: self.sm.write_tokenizer(self.cache / "tokenizers" / f"{f}.json", f) for f in self.sm.TOKENIZERS}

    # ------------------------------------------------------------------ build

    def ensure_model(self, m: str) -> None:
        """Build checkpoint ``m`` unless a complete build (same recipe) is cached; one table row either way."""
        if self.figures.get("build", {}).get(m) is not None and self.sm.read_manifest(self.dirs[m]) is not None:
            return
        if m == "moe":
            self.drop_checkpoint("7b", "set aside while the MoE is on disk, so the cache needs ≈40 GB, not ≈53 GB")
        spec, root = self.specs[m], self.dirs[m]
        manifest = self.sm.read_manifest(root)
        fresh = manifest is None
        if fresh:
            toks = self.tokenizers()
            bar = self.progress.add_task(f"build {spec.name}", total=self.sm.planned_bytes(spec))
            t0 = time.perf_counter()
            manifest = self.sm.build_model(root, spec, self.seeds[m], toks[spec.tokenizer],
                                           progress=lambda n: self.progress.advance(bar, n), log=self.log,
                                           shard_bytes=20_000_000 if self.args.smoke else self.sm.SHARD_BYTES)
            self.progress.remove_task(bar)
            seconds = time.perf_counter() - t0
            self.log(f"built {spec.name} in {seconds:.0f} s ({gb(manifest['bytes'])})")
        else:
            seconds = manifest["build_seconds"]
        if m in self.figures.get("build", {}):
            return  # rebuilt after being set aside: the first row stands
        self.figures.setdefault("build", {})[m] = {
            "seconds": round(seconds, 1), "cached": not fresh, "bytes": manifest["bytes"],
            "shards": len(manifest["shards"]), "parameters": manifest["parameters"], "path": str(root)}
        kind = "bf16" if not spec.fp8 else "F8_E4M3 + 128x128 block scales"
        value = f"{seconds:.0f} s" + (" (cached; time of the original build)" if not fresh else "")
        self.row("build", f"build {spec.name} ({manifest['parameters'] / 1e9:.2f} B params, {kind}, "
                 f"{len(manifest['shards'])} shards, {gb(manifest['bytes'])})", value)

    # ------------------------------------------------------------------ fingerprint vs raw read

    def fingerprint(self, m: str) -> None:
        self.ensure_model(m)
        self.fps.mkdir(parents=True, exist_ok=True)
        root, spec = self.dirs[m], self.specs[m]
        files = [str(p) for p in self.sm.model_files(root)]
        # The disk's speed drifts (a shared host): the raw read runs before and after the fingerprint, and the
        # faster of the two is the yardstick, which can only make the ratio smaller.
        before = self.runner.run("raw", {"files": files}, f"{spec.name}: raw sequential read (cold)")
        fp = self.runner.run("fingerprint", {"model": str(root), "out": str(self.fp_paths[m]),
                                             "name": NAME_7B if m == "7b" else NAME_MOE},
                             f"{spec.name}: fingerprint (cold)")
        after = self.runner.run("raw", {"files": files}, f"{spec.name}: raw sequential read again (cold)")
        raw = min(before, after, key=lambda r: r["seconds"])
        ratio = raw["seconds"] / fp["seconds"]
        per_b = fp["bytes"] / (fp["parameters"] / 1e9)
        f = {"raw_read_seconds": round(raw["seconds"], 2), "raw_read_bytes": raw["bytes"],
             "raw_read_runs_seconds": [round(before["seconds"], 2), round(after["seconds"], 2)],
             "raw_read_gb_per_s": round(raw["bytes"] / raw["seconds"] / 1e9, 3),
             "raw_page_cache_freed_bytes": raw["page_cache_freed_bytes"], "raw_load_average": raw["load_average"],
             "fingerprint_seconds": round(fp["seconds"], 2), "open_seconds": round(fp["open_seconds"], 2),
             "read_decode_seconds": round(fp["read_seconds"], 2),
             # Reads run on the read-ahead and digest threads, overlapping the computing: what is left of the wall
             # time once the summed read time is taken off is no measure of the computing (it can be negative).
             "wall_minus_read_seconds": round(fp["build_seconds"] - fp["open_seconds"] - fp["read_seconds"], 2),
             "save_seconds": round(fp["seconds"] - fp["build_seconds"], 2),
             "cpu_seconds": round(fp["cpu_seconds"], 1), "load_average": fp["load_average"],
             "bytes_read": fp["io"]["bytes_read"], "bytes_total": fp["io"]["bytes_total"],
             "fp_page_cache_freed_bytes": fp["page_cache_freed_bytes"],
             "speed_vs_raw": round(ratio, 3), "peak_rss_mib": round(fp["rss_mib"], 1),
             "fingerprint_bytes": fp["bytes"], "bytes_per_billion_parameters": round(per_b),
             "parameters": fp["parameters"]}
        self.figures.setdefault("fingerprint", {})[m] = f
        self.row("fingerprint", f"{spec.name}: raw sequential read, cold (faster of the runs before and after)",
                 f"{secs(raw['seconds'])} ({f['raw_read_gb_per_s']:.2f} GB/s over {gb(raw['bytes'])}; runs "
                 f"{secs(before['seconds'])}, {secs(after['seconds'])})")
        self.row("fingerprint", f"{spec.name}: fingerprint + save, cold",
                 f"{secs(fp['seconds'])} wall (open {secs(fp['open_seconds'])}); reading on other threads overlaps "
                 f"the computing: {secs(fp['read_seconds'])} inside read calls, summed over threads; read "
                 f"{gb(fp['io']['bytes_read'])} of {gb(fp['io']['bytes_total'])}; CPU {fp['cpu_seconds']:.0f} s; "
                 f"load {fp['load_average'][0]}")
        self.row("fingerprint", f"{spec.name}: fingerprint speed / raw read speed", f"{ratio:.2f}×",
                 f"≥ {GOAL_SPEED}×", ratio >= GOAL_SPEED)
        self.row("fingerprint", f"{spec.name}: fingerprint peak RSS", f"{fp['rss_mib']:.0f} MiB",
                 f"≤ {GOAL_RSS_MIB:.0f} MiB", fp["rss_mib"] <= GOAL_RSS_MIB)
        self.row("fingerprint", f"{spec.name}: fingerprint size",
                 f"{fp['bytes'] / 1e6:.1f} MB ({per_b / 1e6:.2f} MB per billion parameters)")

    def rss_flat(self) -> None:
        fpf = self.figures.get("fingerprint", {})
        if "7b" in fpf and "moe" in fpf:
            flat = fpf["moe"]["peak_rss_mib"] / fpf["7b"]["peak_rss_mib"]
            fpf["rss_moe_over_7b"] = round(flat, 3)
            self.row("fingerprint", "fingerprint peak RSS flat in model size (MoE / 7B)", f"{flat:.2f}×",
                     f"≤ {GOAL_RSS_FLAT}×", flat <= GOAL_RSS_FLAT)

    def ensure_fingerprint(self, m: str) -> Path:
        path = self.fp_paths[m]
        if not fingerprint_is_current(path):
            self.log(f"no fingerprint of {self.specs[m].name} yet: building it (not timed here)")
            self.ensure_model(m)
            self.fps.mkdir(parents=True, exist_ok=True)
            self.runner.run("fingerprint", {"model": str(self.dirs[m]), "out": str(path),
                                            "name": NAME_7B if m == "7b" else NAME_MOE},
                            f"{self.specs[m].name}: fingerprint")
        return path

    def ensure_independent(self) -> Path:
        path = self.fp_paths["independent"]
        if not fingerprint_is_current(path):
            self.fps.mkdir(parents=True, exist_ok=True)
            r = self.runner.run("virtual-fingerprint", {"seed": SEED_INDEPENDENT, "name": "independent-llama-7b",
                                                        "spec": asdict(self.specs["7b"]),
                                                        "tokenizer": str(self.tokenizers()["llama2"]),
                                                        "out": str(path)},
                                "independent 7B (virtual): fingerprint", env=self.runner.env(blas_threads=1))
            self.log(f"independent 7B fingerprint built from a virtual checkpoint in {r['seconds']:.0f} s")
        return path

    # ------------------------------------------------------------------ pair test

    def pair(self, m: str) -> None:
        if m == "7b":
            refs = [["self", str(self.ensure_fingerprint("7b"))], ["independent", str(self.ensure_independent())]]
        else:
            refs = [["self", str(self.ensure_fingerprint("moe"))]]
        self.ensure_model(m)
        name = self.specs[m].name
        r = self.runner.run("pair", {"model": str(self.dirs[m]), "refs": refs}, f"{name}: pair tests")
        self.figures.setdefault("pair", {})[m] = r
        note = "" if m == "7b" else " (the 7B's goal)"
        self._pair_rows(name, "own fingerprint", r["pairs"]["self"], ("identical", "derived"), note)
        if m == "7b":
            self._pair_rows(name, "independent 7B's fingerprint", r["pairs"]["independent"], ("independent",))
        self.row("pair", f"{name}: pair-test child", f"peak RSS {r['rss_mib']:.0f} MiB; CPU {r['cpu_seconds']:.0f} s;"
                 f" load {r['load_average'][0]} → {r['load_average'][1]}")

    def _pair_rows(self, model: str, what: str, runs: dict, verdicts: tuple[str, ...], goal_note: str = "") -> None:
        cold, warm = runs["cold"], runs["warm"]
        self.row("pair", f"{model} vs {what}: verdict", f"{warm['verdict']} (log10 p {warm['log10_p']})",
                 " or ".join(verdicts), warm["verdict"] in verdicts and cold["verdict"] == warm["verdict"])
        self.row("pair", f"{model} vs {what}: compare, cold", f"{secs(cold['wall_seconds'])} = read+decode "
                 f"{secs(cold['read_seconds'])} + compute {secs(cold['compute_seconds'])} (read "
                 f"{gb(cold['bytes_read'])})")
        self.row("pair", f"{model} vs {what}: compare, warm: compute part",
                 f"{secs(warm['compute_seconds'])} (wall {secs(warm['wall_seconds'])}, read+decode "
                 f"{secs(warm['read_seconds'])})", f"≤ {GOAL_COMPUTE_S:.0f} s{goal_note}",
                 warm["compute_seconds"] <= GOAL_COMPUTE_S)

    # ------------------------------------------------------------------ registry scan

    def ensure_registry(self) -> dict:
        from simsa.lineage.fingerprints.registry import Registry, registry_bytes
        from simsa.lineage.formats.fingerprint import Fingerprint

        real = []
        for name, m in ((NAME_7B, "7b"), (NAME_MOE, "moe")):
            if m in self.models or self.fp_paths[m].exists():
                real.append((name, self.ensure_fingerprint(m)))
        self.drop_checkpoint("moe", "its fingerprint is all the registry needs")
        manifest_path = self.registry_dir / REGISTRY_MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = None
        key = fingerprint_key()
        if manifest is None or manifest.get("recipe") != self.sm.RECIPE or manifest.get("fingerprints") != key:
            toks = {k: str(v) for k, v in self.tokenizers().items()}
            count = len(list(self.sm.registry_models(self.args.smoke)))
            stale = manifest is not None
            r = self.runner.run("registry", {"registry": str(self.registry_dir), "tokenizers": toks,
                                             "toy": self.args.smoke, "rebuild": stale},
                                f"registry: {count} virtual fingerprints", env=self.runner.env(blas_threads=1))
            manifest = {"recipe": self.sm.RECIPE, "fingerprints": key, "virtual": r["count"],
                        "seconds": round(r["seconds"], 1), "built_this_session": r["built"]}
            manifest_path.write_text(json.dumps(manifest))
            cached = False
        else:
            cached = True
        reg = Registry.open(self.registry_dir)
        for name, path in real:
            fp = Fingerprint.load(path)
            current = reg.entries.get(name)
            if current is None or current.get("created") != fp.meta.get("created"):
                reg.add(fp, name)
        reg = Registry.open(self.registry_dir)
        return {"entries": len(reg.entries), "bytes": registry_bytes(reg), "virtual": manifest["virtual"],
                "build_seconds": manifest["seconds"], "cached": cached,
                "resumed": manifest.get("built_this_session", manifest["virtual"]) < manifest["virtual"]}

    def scan(self) -> None:
        reg = self.ensure_registry()
        self.ensure_model("7b")
        self.row("scan", f"registry: {reg['entries']} fingerprints ({reg['virtual']} virtual + the real models')",
                 f"built in {reg['build_seconds']:.0f} s" + (" (cached)" if reg["cached"] else "")
                 + (" (resumed build: time of the last session only)" if reg["resumed"] else "")
                 + f"; {reg['bytes'] / 1e6:.0f} MB on disk ({reg['bytes'] / reg['entries'] / 1e6:.1f} MB each)")
        r = self.runner.run("scan", {"model": str(self.dirs["7b"]), "registry": str(self.registry_dir),
                                     "expect": NAME_7B}, f"scan of the 7B over {reg['entries']} fingerprints")
        self.figures["scan"] = {"registry": reg, **r}
        for mode in ("cold", "warm"):
            run = r["runs"][mode]
            self.row("scan", f"scan ({mode}): screen of {run['tested']} references", secs(run["seconds"]["screen"]),
                     f"≤ {GOAL_SCAN_S:.0f} s", run["seconds"]["screen"] <= GOAL_SCAN_S)
            self.row("scan", f"scan ({mode}): total (screen + full compare of the top matches)",
                     f"{secs(run['seconds']['total'])} (wall {secs(run['wall_seconds'])}, candidate read+decode "
                     f"{secs(run['read_seconds'])}; includes a full 7B pair test of the best match)", "—", None)
        run = r["runs"]["warm"]
        bad = run["others_not_independent"]
        ok = run["expected_rank"] == 1 and run["expected_verdict"] in ("identical", "derived") and not bad
        self.row("scan", "scan: ranking", f"{NAME_7B} ranked {run['expected_rank']} ({run['expected_verdict']}); "
                 f"{run['tested'] - 1 - len(bad)} of {run['tested'] - 1} others independent"
                 + (f" (not: {', '.join(f'{n} {v} {p}' for n, v, p in bad[:4])})" if bad else "")
                 + (f"; {len(run['skipped'])} skipped" if run["skipped"] else ""),
                 "right reference first, others independent", ok)
        self.row("scan", "scan child", f"peak RSS {r['rss_mib']:.0f} MiB; CPU {r['cpu_seconds']:.0f} s; load "
                 f"{r['load_average'][0]} → {r['load_average'][1]}")

    # ------------------------------------------------------------------ remote

    def remote(self) -> None:
        fp = self.ensure_fingerprint("7b")
        self.ensure_model("7b")
        root = self.dirs["7b"]
        home = self.scratch / "hf-home"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        hub = StreamingHub(REMOTE_REPO, root)
        try:
            dropped = drop_cache(model_paths(root))
            env = self.runner.env(drop_prefixes=("HF_", "HUGGING"), extra={
                "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
            r = self.runner.run("remote", {"repo": REMOTE_REPO, "fingerprint": str(fp)},
                                "remote compare over loopback HTTP", env=env, cwd=home)
        finally:
            hub.close()
        io = r["io"]
        fraction = io["bytes_read"] / io["bytes_total"]
        r |= {"server_requests": hub.requests, "server_data_requests": hub.data_requests,
              "server_body_bytes": hub.sent, "fraction": fraction, **dropped}
        self.figures["remote"] = r
        self.row("remote", "remote compare (views=input, 128 units): bytes read",
                 f"{io['bytes_read'] / 1e6:.1f} MB of {gb(io['bytes_total'])} = {100 * fraction:.2f} %",
                 f"≤ {100 * GOAL_REMOTE_FRACTION:.0f} %", fraction <= GOAL_REMOTE_FRACTION)
        self.row("remote", "remote compare: requests and time",
                 f"{io['requests']} range requests (server: {hub.requests} requests, {hub.sent / 1e6:.1f} MB of "
                 f"bodies); {secs(r['wall_seconds'])} wall (open {secs(r['open_seconds'])}); CPU "
                 f"{r['cpu_seconds']:.0f} s; peak RSS {r['rss_mib']:.0f} MiB")
        self.row("remote", "remote compare: verdict", f"{r['verdict']} (log10 p {r['log10_p']})",
                 "identical or derived", r["verdict"] in ("identical", "derived"))

    # ------------------------------------------------------------------ the whole run

    def run(self, steps: list[str]) -> None:
        """MoE first (built, measured, deleted unless --keep), then the 7B: at most one checkpoint on disk."""
        if "moe" in self.models and {"build", "fingerprint", "pair"} & set(steps):
            if "build" in steps:
                self.ensure_model("moe")
            for step in ("fingerprint", "pair"):
                if step in steps:
                    self.step(step, "moe")
            if steps != ["build"]:
                self.step("fingerprint", "moe", ensure=True)  # for the registry
                self.drop_checkpoint("moe", "its measurements are done")
        if "build" in steps:
            self.ensure_model("7b")
        for step in ("fingerprint", "pair"):
            if step in steps:
                self.step(step, "7b")
        self.rss_flat()
        for step in ("scan", "remote"):
            if step in steps:
                self.step(step)

    def step(self, name: str, model: str | None = None, *, ensure: bool = False) -> None:
        """Run one step; a failed child becomes a failed row (with its last output in --json), not a lost run."""
        try:
            if ensure:
                self.ensure_fingerprint(model or "7b")
            elif model is None:
                getattr(self, name)()
            else:
                getattr(self, name)(model)
        except ChildFailed as exc:
            self.figures.setdefault("failures", []).append({"step": name, "model": model, "error": str(exc),
                                                            "output": exc.tail[-4000:]})
            self.row(name if name in self.rows else "build", f"{name} {model or ''}: FAILED".replace("  ", " "),
                     f"{exc} — {exc.tail.strip().splitlines()[-1] if exc.tail.strip() else 'no output'}", "ran",
                     False)
            self.log(f"{exc}:\n{exc.tail[-2000:]}")
        self.save_figures()

    def save_figures(self) -> None:
        """The figures so far, in DIR/last-run.json (a run cut short still leaves what it measured)."""
        data = {**self.figures, "children": self.runner.log,
                "table": [{"measure": m, "value": v, "goal": g, "met": ok} for m, v, g, ok in self.all_rows()]}
        self.cache.mkdir(parents=True, exist_ok=True)
        (self.cache / "last-run.json").write_text(json.dumps(data, indent=1))

    def table(self) -> Table:
        table = Table("measure", "value", "goal", "met", title="Lineage at scale", show_lines=False)
        for measure, value, goal, met in self.all_rows():
            mark = "" if met is None else ("[green]yes[/]" if met else "[red]no[/]")
            table.add_row(measure, value, goal, mark)
        return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "simsa-lineage-scale",
                        help="where the models, fingerprints and registry are built and kept")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"comma-separated steps to run, from {', '.join(STEPS)} (default: all)")
    parser.add_argument("--skip-moe", action="store_true", help="only the 7B (quicker; no 31 GB MoE build)")
    parser.add_argument("--keep", action="store_true",
                        help="delete nothing (scratch files, other recipe builds, checkpoints between steps)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="OMP/OPENBLAS/MKL_NUM_THREADS for the measured children (default: inherited)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes of the same architectures: checks the bench itself; figures meaningless")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "PAYLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(*args.child)
        return
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    args.cache = args.cache.resolve()
    console = Console(stderr=args.json, width=200)
    bench = Bench(args, console)
    started = time.perf_counter()
    bench.cache.mkdir(parents=True, exist_ok=True)
    bench.tidy()
    bench.check_disk(["7b"] + (["moe"] if "moe" in bench.models and {"build", "fingerprint", "pair"} & set(steps)
                               else []))
    with bench.progress:
        bench.run(steps)
    if not args.keep:
        shutil.rmtree(bench.scratch, ignore_errors=True)
    total = time.perf_counter() - started
    bench.figures["steps"] = steps
    bench.figures["total_seconds"] = round(total, 1)
    bench.figures["children"] = bench.runner.log
    bench.figures["table"] = [{"measure": m, "value": v, "goal": g, "met": ok} for m, v, g, ok in bench.all_rows()]
    bench.save_figures()
    if args.json:
        print(json.dumps(bench.figures, indent=2))
        return
    console.print(bench.table())
    console.print(f"Cold runs: every file of the model was fsynced and dropped from the page cache with "
                  f"posix_fadvise(POSIX_FADV_DONTNEED) first. BLAS threads: {bench.figures['blas_threads']}; "
                  f"CPUs: {os.cpu_count()}; 1-min load average before/after each child is in --json. "
                  f"Total run time {total:.0f} s.")


if __name__ == "__main__":
    main()
