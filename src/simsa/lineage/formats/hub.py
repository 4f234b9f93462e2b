"""Models named by a hub reference (``org/name[@revision]``), opened without downloading their weights.

`open_model` is the one entry point: a local path that exists is opened as before; anything else must be a hub
reference. Resolution goes through ``huggingface_hub`` so its cache, ``HF_HUB_OFFLINE``, tokens (``HF_TOKEN``, the
stored login, or ``token=``) and ``HF_ENDPOINT`` all apply. The revision is resolved to a commit sha once and every
request names that sha, so a branch that moves mid-read cannot mix two versions.

Small files (config, tokenizer, shard index) are downloaded into the hub cache as usual. Safetensors files are not:
their headers and the byte ranges reads ask for are fetched with HTTP range requests (``simsa.lineage.formats.remote``),
unless the hub cache already holds the whole file, which is then read locally. Offline, only cached files can be
opened, and a missing one is a one-line error that says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from huggingface_hub import HfApi, constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    RevisionResolutionError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import build_hf_headers

from simsa.errors import CheckpointError
from simsa.lineage.formats.checkpoint import TOKENIZER_FILE_NAMES, Checkpoint
from simsa.lineage.formats.gguf import GGUFCheckpoint
from simsa.lineage.formats.remote import RemoteSource, TransportError
from simsa.lineage.formats.safetensors import DEFAULT_MAX_HEADER_BYTES, SafetensorsFile

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REF = re.compile(rf"(?P<repo>{_NAME}/{_NAME})(?:@(?P<revision>[A-Za-z0-9._+-]+(?:/[A-Za-z0-9._+-]+)*))?")
SMALL_FILES = frozenset({"config.json", "generation_config.json", *TOKENIZER_FILE_NAMES})
SMALL_FILE_LIMIT = 256 * 2**20  # a "config.json" bigger than this is not a config; don't download it
_OFFLINE_HINT = "HF_HUB_OFFLINE is set"


@dataclass(frozen=True)
class ModelRef:
    """A model repository on the hub and an optional revision (branch, tag or commit sha; None means main)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_model_ref(spec: str | os.PathLike[str]) -> ModelRef | None:
    """``org/name`` or ``org/name@revision`` as a `ModelRef`; None for anything else (it may be a local path)."""
    match = _REF.fullmatch(os.fspath(spec))
    if match is None:
        return None
    repo, revision = match.group("repo"), match.group("revision")
    if "--" in repo or ".." in repo or repo.endswith(".git") or (revision is not None and ".." in revision):
        return None
    return ModelRef(repo, revision)


def open_model(
    spec: str | os.PathLike[str],
    *,
    token: str | None = None,
    revision: str | None = None,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> Checkpoint | GGUFCheckpoint:
    """Open a checkpoint: a local file or directory if `spec` exists, else a hub reference ``org/name[@revision]``.

    `revision` is the hub revision when `spec` does not name one; `token` overrides ``HF_TOKEN`` and the stored login.
    Only headers are read; see `Checkpoint.io_stats` for what later reads cost.
    """
    path = Path(spec)
    if path.exists():
        if revision is not None:
            raise CheckpointError(f"{spec}: is a local path; a revision ({revision}) applies to hub models only")
        return Checkpoint.open(path, max_header_bytes=max_header_bytes)
    ref = parse_model_ref(spec)
    if ref is None:
        raise CheckpointError(f"{spec}: no such file or directory, and not a hub reference org/name[@revision]")
    if revision is not None:
        if ref.revision is not None and ref.revision != revision:
            raise CheckpointError(f"{spec}: names revision {ref.revision}, but revision {revision} was also given")
        ref = ModelRef(ref.repo_id, revision)
    return open_hub_model(ref, token=token, max_header_bytes=max_header_bytes)


@contextlib.contextmanager
def _hub_errors(ref: ModelRef, endpoint: str) -> Iterator[None]:
    """huggingface_hub's exceptions (multi-line, some with tracebacks of their own) as one-line CheckpointErrors."""
    try:
        yield
    except CheckpointError:
        raise
    except GatedRepoError:
        raise CheckpointError(
            f"{ref}: gated repository; accept its conditions on the hub and pass a token that has access "
            "(token=, HF_TOKEN or `hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise CheckpointError(
            f"{ref}: no such file or directory, and no hub repository {ref.repo_id} at {endpoint} (if it is private "
            "or gated, pass a token that has access: token=, HF_TOKEN or `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise CheckpointError(f"{ref}: revision {ref.revision} not found in hub repository {ref.repo_id}") from None
    except (RevisionResolutionError, OfflineModeIsEnabled):
        raise CheckpointError(
            f"{ref}: {_OFFLINE_HINT} and the local hub cache ({constants.HF_HUB_CACHE}) has no copy of revision "
            f"{ref.revision or constants.DEFAULT_REVISION}; unset HF_HUB_OFFLINE to read it from the hub"
        ) from None
    except EntryNotFoundError as exc:  # remote 404 or, offline, not in the cache
        offline = f"{_OFFLINE_HINT} and " if constants.is_offline_mode() else ""
        raise CheckpointError(f"{ref}: {offline}a file was not found: {_first_line(exc)}") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise CheckpointError(f"{ref}: hub request failed (HTTP {status}): {_first_line(exc)}") from None
    except TransportError as exc:
        raise CheckpointError(
            f"{ref}: cannot reach the hub at {endpoint} ({type(exc).__name__}: {_first_line(exc)}); "
            "set HF_HUB_OFFLINE=1 to use only the local cache"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _is_small(name: str) -> bool:
    return name in SMALL_FILES or name.endswith(".safetensors.index.json")


def _cached_listing(ref: ModelRef, sha: str, cache_dir: str) -> dict[str, int | None]:
    """Offline: the files the cache holds for this commit, plus the shards its cached index names."""
    snapshot = Path(cache_dir) / repo_folder_name(repo_id=ref.repo_id, repo_type="model") / "snapshots" / sha
    if not snapshot.is_dir():
        raise CheckpointError(
            f"{ref}: {_OFFLINE_HINT} and the local hub cache ({cache_dir}) holds no files of commit {sha}"
        )
    listing: dict[str, int | None] = {p.name: None for p in snapshot.iterdir() if p.is_file()}
    for index in [n for n in listing if n.endswith(".safetensors.index.json")]:
        with contextlib.suppress(OSError, ValueError):  # Checkpoint validates the index strictly later
            weight_map = json.loads((snapshot / index).read_bytes()).get("weight_map", {})
            for shard in weight_map.values() if isinstance(weight_map, dict) else ():
                if isinstance(shard, str) and shard.endswith(".safetensors") and "/" not in shard:
                    listing.setdefault(shard, None)
    return listing


def open_hub_model(
    ref: ModelRef, *, token: str | None = None, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> Checkpoint | GGUFCheckpoint:
    """Open a hub model at one commit: small files through the hub cache, safetensors files by range requests.

    The checkpoint's path is ``org/name@<commit sha>``, and its files are labelled below it.
    """
    endpoint = constants.ENDPOINT.rstrip("/")  # HF_ENDPOINT as the process saw it
    cache_dir = constants.HF_HUB_CACHE
    offline = constants.is_offline_mode()
    api = HfApi(endpoint=endpoint, token=token, library_name="simsa")
    with _hub_errors(ref, endpoint):
        sha = api.resolve_revision(
            ref.repo_id, revision=ref.revision, cache_dir=cache_dir, local_files_only=offline, token=token
        ).resolved
        if offline:
            listing = _cached_listing(ref, sha, cache_dir)
        else:
            info = api.model_info(ref.repo_id, revision=sha, files_metadata=True, token=token)
            listing = {s.rfilename: s.size for s in info.siblings or []}
        label = Path(f"{ref.repo_id}@{sha}")
        top: dict[str, Path] = {}
        for name, size in sorted(listing.items()):
            if "/" in name:
                continue  # top level only, as for a directory
            if _is_small(name):
                if size is not None and size > SMALL_FILE_LIMIT:
                    raise CheckpointError(f"{label}/{name}: is {size} bytes; refusing to download it")
                top[name] = Path(hf_hub_download(
                    ref.repo_id, name, revision=sha, cache_dir=cache_dir, token=token, endpoint=endpoint,
                    local_files_only=offline, library_name="simsa",
                ))
            else:
                top[name] = label / name

    headers = build_hf_headers(token=token, library_name="simsa")

    def open_file(path: Path, max_header: int) -> SafetensorsFile:
        name, size = path.name, listing.get(path.name)
        cached = try_to_load_from_cache(ref.repo_id, name, cache_dir=cache_dir, revision=sha)
        if isinstance(cached, str) and (size is None or os.path.getsize(cached) == size):
            return SafetensorsFile(cached, max_header)  # a complete copy is already on disk
        if offline:
            raise CheckpointError(
                f"{label}/{name}: {_OFFLINE_HINT} and this file is not in the local hub cache ({cache_dir}); "
                f"safetensors files are read remotely, never cached, so download it first (hf download "
                f"{ref.repo_id} {name} --revision {sha}) or unset HF_HUB_OFFLINE"
            )
        url = f"{endpoint}/{ref.repo_id}/resolve/{sha}/{quote(name)}"
        source = RemoteSource(url, label=f"{label}/{name}", headers=headers, expected_size=size)
        return SafetensorsFile(source, max_header)

    with _hub_errors(ref, endpoint):
        return Checkpoint.from_listing(label, top, max_header_bytes=max_header_bytes, open_file=open_file)
