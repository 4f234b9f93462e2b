"""What model a run talks to, pinned: a content hash of a local directory, a commit of a hub repository.

The item cache and the manifest key everything on this identity, so a model that changed behind the same name or
path can never be served answers computed for the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsa.errors import InputError

# Files whose content decides a model's answers: weights, configuration, tokenizer, chat template.
_CONTENT_SUFFIXES = (".safetensors", ".json", ".jinja", ".model", ".txt", ".tiktoken", ".py")
_HUB_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+(@[\w.\-/]+)?$")
_HASH_CHUNK = 8 << 20


@dataclass
class ModelIdentity:
    """A model reference resolved to something that cannot silently change."""

    ref: str
    kind: str  # "local" | "hub" | "server"
    sha256: str | None = None
    revision: str | None = None
    path: Path | None = None
    chat_template: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The part of every cache key that names the model."""
        return f"{self.kind}:{self.sha256 or ''}:{self.revision or ''}:{self.ref if self.kind == 'server' else ''}"

    def to_dict(self) -> dict[str, Any]:
        template_hash = (hashlib.sha256(self.chat_template.encode("utf-8")).hexdigest()
                         if self.chat_template else None)
        return {"ref": self.ref, "kind": self.kind, "sha256": self.sha256, "revision": self.revision,
                "path": str(self.path) if self.path else None, "chat_template_sha256": template_hash,
                "chat_template": self.chat_template, **self.details}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def weights_digest(files: Sequence[Path]) -> str:
    """One digest over weight files: sha256 of `NAME SHA256(FILE)` lines in name order.

    What `simsa serve-model` publishes and what in-process clients compute, so the same checkpoint gets the same
    cache keys whether it is asked over HTTP or in process; renaming the directory does not change it.
    """
    total = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        total.update(f"{path.name} {_file_sha256(path)}\n".encode())
    return total.hexdigest()


def weights_sha256(model_dir: Path) -> str | None:
    """`weights_digest` of a directory's *.safetensors files (None when it has none)."""
    files = [p for p in Path(model_dir).glob("*.safetensors") if p.is_file()]
    return weights_digest(files) if files else None


def directory_sha256(root: Path, memo: Path | None = None) -> tuple[str, dict[str, str]]:
    """A content hash of a model directory (its weight, config and tokenizer files), with per-file hashes.

    Hashing a 15 GB checkpoint takes seconds to a minute, so per-file hashes are remembered in `memo` by
    (path, size, mtime) and only changed files are read again.
    """
    if any(root.glob("*.bin")) and not any(root.glob("*.safetensors")):
        raise InputError(f"{root}: only pickle weights (*.bin); simsa reads safetensors checkpoints only")
    remembered: dict[str, Any] = {}
    if memo is not None and memo.exists():
        try:
            remembered = json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            remembered = {}
    files: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _CONTENT_SUFFIXES):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        stat = path.stat()
        stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        hit = remembered.get(stamp)
        files[rel] = hit if isinstance(hit, str) else _file_sha256(path)
        remembered[stamp] = files[rel]
    if not any(name.endswith(".safetensors") for name in files):
        raise InputError(f"{root}: no *.safetensors weights found (is this a Hugging Face model directory?)")
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            memo.write_text(json.dumps(remembered, indent=0), encoding="utf-8")
        except OSError:
            pass
    total = hashlib.sha256("\n".join(f"{k} {v}" for k, v in files.items()).encode("utf-8")).hexdigest()
    return total, files


def read_chat_template(root: Path) -> str | None:
    """The chat template a directory's tokenizer applies (chat_template.jinja or tokenizer_config.json)."""
    jinja = root / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    config = root / "tokenizer_config.json"
    if config.exists():
        try:
            value = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        except ValueError:
            return None
        return value if isinstance(value, str) else None
    return None


def resolve_local_or_hub(ref: str, memo: Path | None = None, offline: bool | None = None) -> ModelIdentity:
    """A directory is hashed; `org/name[@revision]` is pinned to a commit and fetched (or found in the cache)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        sha, files = directory_sha256(path, memo)
        return ModelIdentity(ref=ref, kind="local", sha256=sha, path=path.resolve(),
                             chat_template=read_chat_template(path), details={"files": files})
    if path.exists():
        raise InputError(f"{ref}: a model must be a Hugging Face model directory, not a file")
    if not _HUB_RE.match(ref):
        raise InputError(f"{ref}: no such model directory, and not a hub reference of the form org/name[@revision]")
    return _resolve_hub(ref, memo, offline)


def _resolve_hub(ref: str, memo: Path | None, offline: bool | None) -> ModelIdentity:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo, _, revision = ref.partition("@")
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    try:
        local = snapshot_download(repo, revision=revision or None, local_files_only=offline,
                                  allow_patterns=["*.safetensors", "*.json", "*.jinja", "*.model", "*.txt",
                                                  "*.tiktoken"])
    except LocalEntryNotFoundError as exc:
        raise InputError(f"{ref}: not in the local Hugging Face cache and the run is offline "
                         "(run once online, or pass a local directory)") from exc
    except HfHubHTTPError as exc:
        raise InputError(f"{ref}: the hub refused it ({exc})") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:  # network failures and malformed hub answers
        raise InputError(f"{ref}: could not fetch from the hub ({exc.__class__.__name__}: {exc})") from exc
    snapshot = Path(local)
    sha, files = directory_sha256(snapshot, memo)
    return ModelIdentity(ref=ref, kind="hub", sha256=sha, revision=snapshot.name, path=snapshot,
                         chat_template=read_chat_template(snapshot), details={"repo": repo, "files": files})
