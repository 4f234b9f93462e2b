"""A small Hugging Face hub on loopback, for testing remote reads against real HTTP.

It serves what ``huggingface_hub`` and ``simsa.lineage.formats.remote`` ask for:

* ``GET /api/models/{org}/{name}[/revision/{rev}]``: model info with ``sha`` and ``siblings`` (sizes with
  ``?blobs=true``); ``GET /api/models/{org}/{name}/tree/{rev}``: the file listing; 401/404 with the
  ``X-Error-Code`` headers ``hf_raise_for_status`` maps to its errors;
* ``GET|HEAD /{org}/{name}/resolve/{rev}/{file}``: the file, with ``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``,
  ``X-Linked-Size``, ``Accept-Ranges`` and byte ranges; ``.safetensors`` files (LFS on the real hub) are answered with
  a 302 to a second server, the "CDN", on another origin, as the hub does;
* ``GET|HEAD /cdn/{sha256}?sig=N`` on the CDN: the blob, with byte ranges; signatures of an older generation are
  refused with 403 (an expired signed URL).

Ecosystem signals (``FakeHub.model`` sets them):

* ``GET /api/models/{org}/{name}?expand=…``: only the asked-for properties (``downloads``, ``downloadsAllTime``,
  ``likes``, ``trendingScore``, ``lastModified``, ``sha``, ``cardData`` with ``base_model``), as the hub answers;
* ``GET /api/models?filter=base_model:KIND:ORG/NAME&limit=N``: the repos declaring that base with that relation, N a
  page, further pages linked by a ``Link: <…>; rel="next"`` header.

Every request is logged (server, method, path, Range, Authorization, status, body bytes sent) and switches make the
data responses misbehave: ignore Range, truncate bodies, fail with 503, lie in Content-Range or change the ETag;
``rate_limit_next`` answers that many API requests with 429 and ``Retry-After: retry_after``; ``stall`` delays the
API answers about a repo by some seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class Logged:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None
    authorization: str | None
    status: int = 0
    sent: int = 0  # body bytes written


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> file name -> content
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> sha
    token: str | None = None  # private: only this bearer token may read it
    stats: dict[str, Any] = field(default_factory=dict)  # expand properties: downloads, likes, trendingScore, …
    bases: list[tuple[str, str]] = field(default_factory=list)  # (kind, base repo) this repo declares


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(name: str) -> bool:
    return name.endswith(".safetensors")


class FakeHub:
    """The hub and its CDN, each a threaded HTTP server on 127.0.0.1 (different ports: different origins)."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content
        self.log: list[Logged] = []
        self.lock = threading.Lock()
        self.redirect_lfs = True
        self.ignore_range = False
        self.truncate = False
        self.fail_next = 0  # answer this many data requests with 503
        self.shift_content_range = False
        self.etag_suffix = ""
        self.cdn_generation = 0
        self.rate_limit_next = 0  # answer this many API requests with 429
        self.retry_after = "1"  # ...with this Retry-After
        self.stall: dict[str, float] = {}  # repo id -> seconds its API answers wait
        self._commits = 0
        self.hub = _serve(self, "hub")
        self.cdn = _serve(self, "cdn")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.hub.server_address[1]}"

    @property
    def cdn_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def push(self, repo_id: str, files: dict[str, bytes], *, branch: str = "main", token: str | None = None) -> str:
        """Commit `files` (the whole tree) to `branch` of `repo_id`; returns the commit sha."""
        with self.lock:
            repo = self.repos.setdefault(repo_id, Repo())
            if token is not None:
                repo.token = token
            self._commits += 1
            digest = hashlib.sha1(f"{repo_id}:{self._commits}".encode())
            for name in sorted(files):
                digest.update(name.encode() + hashlib.sha256(files[name]).digest())
                if _is_lfs(name):
                    self.blobs[hashlib.sha256(files[name]).hexdigest()] = files[name]
            sha = digest.hexdigest()
            repo.commits[sha] = dict(files)
            repo.refs[branch] = sha
            return sha

    def model(self, repo_id: str, *, downloads: int = 0, downloads_all_time: int = 0, likes: int = 0,
              trending_score: float = 0.0, last_modified: str = "2026-01-10T09:30:00.000Z",
              bases: list[tuple[str, str]] | None = None, card_data: dict[str, Any] | None = None) -> None:
        """Give `repo_id` (created with a README if new) hub statistics and the base models it declares."""
        if repo_id not in self.repos:
            self.push(repo_id, {"README.md": f"# {repo_id}\n".encode()})
        with self.lock:
            repo = self.repos[repo_id]
            repo.bases = list(bases or [])
            card = dict(card_data) if card_data is not None else {}
            if repo.bases and "base_model" not in card:
                card["base_model"] = [b for _, b in repo.bases]
            repo.stats = {"downloads": downloads, "downloadsAllTime": downloads_all_time, "likes": likes,
                          "trendingScore": trending_score, "lastModified": last_modified, "cardData": card}

    def requests(self, server: str | None = None, path_part: str = "") -> list[Logged]:
        with self.lock:
            return [e for e in self.log if (server is None or e.server == server) and path_part in e.path]

    def close(self) -> None:
        for srv in (self.hub, self.cdn):
            srv.shutdown()
            srv.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client dropping a connection mid-body is what some tests do on purpose


def _serve(hub: FakeHub, name: str) -> ThreadingHTTPServer:
    handler = type(f"{name.title()}Handler", (_Handler,), {"hub": hub, "server_name": name})
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub
    server_name: str

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the hub keeps its own log

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    # ------------------------------------------------------------------ plumbing

    def _handle(self) -> None:
        entry = Logged(self.server_name, self.command, self.path, self.headers.get("Range"),
                       self.headers.get("Authorization"))
        with self.hub.lock:
            self.hub.log.append(entry)
        self._entry = entry
        try:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            if self.server_name == "cdn":
                self._cdn(path, query)
            elif path.startswith("/api/") and self._rate_limited():
                return
            elif path == "/api/models":
                self._list(query)
            elif path.startswith("/api/models/"):
                self._api(path[len("/api/models/"):], query)
            else:
                self._resolve(path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               length: int | None = None) -> None:
        self._entry.status = status
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD" and body:
            # Logged before writing: a client may read the log as soon as it has the body, before this thread resumes.
            self._entry.sent = len(body)
            try:
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self._entry.sent = 0
                raise

    def _error(self, status: int, code: str | None = None, message: str = "", commit: str | None = None) -> None:
        headers = {"Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        if message:
            headers["X-Error-Message"] = message
        if commit:
            headers["X-Repo-Commit"] = commit
        self._reply(status, json.dumps({"error": message or code or str(status)}).encode(), headers)

    def _rate_limited(self) -> bool:
        with self.hub.lock:
            limited = self.hub.rate_limit_next > 0
            self.hub.rate_limit_next -= int(limited)
        if limited:
            self._entry.status = 429
            body = b'{"error":"You have exceeded our hourly quotas for action: api. Retry later."}'
            self._reply(429, body, {"Content-Type": "application/json", "Retry-After": self.hub.retry_after})
        return limited

    def _stall(self, repo_id: str) -> None:
        seconds = self.hub.stall.get(repo_id, 0.0)
        if seconds:
            time.sleep(seconds)

    def _repo(self, repo_id: str) -> Repo | None:
        """The repo if it exists and the request may see it, else None after answering the error."""
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if repo.token is not None and self.headers.get("Authorization") != f"Bearer {repo.token}":
            self._error(401, "RepoNotFound", "Invalid username or password.")
            return None
        return repo

    def _commit(self, repo: Repo, revision: str) -> str | None:
        sha = repo.refs.get(revision, revision if revision in repo.commits else None)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return sha

    # ------------------------------------------------------------------ routes

    def _api(self, rest: str, query: dict[str, list[str]]) -> None:
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        if len(parts) > 3 and parts[2] == "tree":
            self._tree(repo_id, "/".join(parts[3:]))
            return
        revision = "/".join(parts[3:]) if len(parts) > 3 and parts[2] == "revision" else "main"
        self._stall(repo_id)
        repo = self._repo(repo_id)
        if repo is None:
            return
        sha = self._commit(repo, revision)
        if sha is None:
            return
        if "expand" in query:
            self._expanded(repo_id, repo, sha, query["expand"])
            return
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for name, data in sorted(repo.commits[sha].items()):
            sibling: dict[str, Any] = {"rfilename": name}
            if blobs:
                sibling.update(size=len(data), blobId=_git_sha1(data))
                if _is_lfs(name):
                    sibling["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                      "pointerSize": 134}
            siblings.append(sibling)
        info = {"_id": sha[:24], "id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.token is not None,
                "siblings": siblings, "tags": [], "downloads": 0, "likes": 0}
        self._reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"})

    def _expanded(self, repo_id: str, repo: Repo, sha: str, expand: list[str]) -> None:
        """`model_info(expand=[…])`: the hub answers only `_id`, `id` and the asked-for properties."""
        known = {"sha": sha, "downloads": 0, "downloadsAllTime": 0, "likes": 0, "trendingScore": 0,
                 "lastModified": "2026-01-01T00:00:00.000Z", "cardData": {}, **repo.stats,
                 "tags": [f"base_model:{k}:{b}" for k, b in repo.bases] + [f"base_model:{b}" for _, b in repo.bases]}
        info = {"_id": sha[:24], "id": repo_id, **{k: known[k] for k in expand if k in known}}
        self._reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"})

    def _list(self, query: dict[str, list[str]]) -> None:
        """`list_models(filter=…)`: repos carrying every filter tag, a page of `limit` at a time from `cursor`."""
        wanted = query.get("filter", [])
        for tag in wanted:
            self._stall(tag.rpartition(":")[2])
        with self.hub.lock:
            found = []
            for repo_id, repo in sorted(self.hub.repos.items()):
                tags = {f"base_model:{k}:{b}" for k, b in repo.bases} | {f"base_model:{b}" for _, b in repo.bases}
                if repo.token is None and all(t in tags for t in wanted):
                    found.append({"_id": repo.refs["main"][:24], "id": repo_id, "modelId": repo_id,
                                  "likes": repo.stats.get("likes", 0), "downloads": repo.stats.get("downloads", 0),
                                  "tags": sorted(tags)})
        limit = int(query.get("limit", ["1000"])[0])
        start = int(query.get("cursor", ["0"])[0])
        headers = {"Content-Type": "application/json"}
        if start + limit < len(found):
            params = "&".join(f"filter={quote(t, safe='')}" for t in wanted)
            headers["Link"] = f'<{self.hub.endpoint}/api/models?{params}&limit={limit}&cursor={start + limit}>; ' \
                              'rel="next"'
        self._reply(200, json.dumps(found[start:start + limit]).encode(), headers)

    def _tree(self, repo_id: str, revision: str) -> None:
        """`GET /api/models/{repo}/tree/{rev}`: the file listing `snapshot_download` asks for (flat repos only)."""
        repo = self._repo(repo_id)
        if repo is None:
            return
        sha = self._commit(repo, unquote(revision))
        if sha is None:
            return
        entries = []
        for name, data in sorted(repo.commits[sha].items()):
            entry: dict[str, Any] = {"type": "file", "path": name, "size": len(data), "oid": _git_sha1(data)}
            if _is_lfs(name):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        self._reply(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})

    def _resolve(self, path: str) -> None:
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/(.+?)/([^/]+)", path)
        if match is None:
            self._error(404, message="no such route")
            return
        repo = self._repo(match.group(1))
        if repo is None:
            return
        sha = self._commit(repo, match.group(2))
        if sha is None:
            return
        name = match.group(3)
        data = repo.commits[sha].get(name)
        if data is None:
            self._error(404, "EntryNotFound", "Entry not found", commit=sha)
            return
        headers = {"X-Repo-Commit": sha}
        if _is_lfs(name):
            digest = hashlib.sha256(data).hexdigest()
            headers.update({"X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(data))})
            if self.hub.redirect_lfs:
                headers["Location"] = f"{self.hub.cdn_endpoint}/cdn/{digest}?sig={self.hub.cdn_generation}"
                self._reply(302, b"", headers)
                return
            headers["ETag"] = f'"{digest}{self.hub.etag_suffix}"'
        else:
            headers["ETag"] = f'"{_git_sha1(data)}"'
        self._data(data, headers)

    def _cdn(self, path: str, query: dict[str, list[str]]) -> None:
        digest = path.removeprefix("/cdn/")
        data = self.hub.blobs.get(digest)
        if data is None:
            self._error(404, message="NoSuchKey")
            return
        if query.get("sig", [""])[0] != str(self.hub.cdn_generation):
            self._error(403, message="Request has expired")
            return
        self._data(data, {"ETag": f'"{digest[:32]}{self.hub.etag_suffix}"'})

    def _data(self, data: bytes, headers: dict[str, str]) -> None:
        """The file, or the asked-for range of it, misbehaving as the hub's switches say."""
        hub = self.hub
        with hub.lock:
            failing = hub.fail_next > 0
            hub.fail_next -= int(failing)
        if failing:
            self._error(503, message="Service Unavailable")
            return
        headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        wanted = self.headers.get("Range")
        match = _RANGE.fullmatch(wanted.strip()) if wanted else None
        if match is None or hub.ignore_range:
            self._reply(200, data, headers)
            return
        size = len(data)
        first, last = match.group(1), match.group(2)
        if first == "":
            start, stop = max(0, size - int(last)), size
        else:
            start, stop = int(first), min(size, int(last) + 1 if last else size)
        if start >= size or start >= stop:
            self._reply(416, b"", {"Content-Range": f"bytes */{size}"})
            return
        shown = start + 1 if hub.shift_content_range else start
        headers["Content-Range"] = f"bytes {shown}-{stop - 1}/{size}"
        body = data[start:stop]
        if hub.truncate:
            self._reply(206, body[: len(body) // 2], headers, length=len(body))
            self.close_connection = True
            return
        self._reply(206, body, headers)
