"""`simsa bench run --model org/name[@rev]` against a real hub on loopback (tests/hub_server.py): the model is pinned
to a commit, fetched once, scored like the local directory, and found in the cache offline."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_server import FakeHub
from simsa.bench.tinymodels import TinySpec, build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("bench-hub") / "tiny", TinySpec(steps=20, seed=5))


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub()
    try:
        yield server
    finally:
        server.close()


def simsa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simsa.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_hub_model_is_pinned_fetched_and_scored_like_the_local_copy(tiny: Path, hub: FakeHub,
                                                                   tmp_path: Path) -> None:
    files = {p.name: p.read_bytes() for p in tiny.iterdir() if p.is_file()}
    commit = hub.push("team-a/tiny-ko", files)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env = {**base, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1"}
    args = ["bench", "run", "--tasks", "simsa_kobest_copa", "--limit", "10", "--json"]
    online = simsa(env, *args, "--model", "team-a/tiny-ko", "--runs-dir", str(tmp_path / "a"))
    assert online.returncode == 0, online.stderr[-3000:]
    run = json.loads(online.stdout)
    model = run["manifest"]["model"]
    assert model["kind"] == "hub" and model["revision"] == commit
    command = shlex.split(run["manifest"]["lm_eval_command"])
    assert f"pretrained=team-a/tiny-ko,dtype=float32,revision={commit}" in command
    local = json.loads(simsa(env, *args, "--model", str(tiny), "--runs-dir", str(tmp_path / "b")).stdout)
    assert run["results"] == local["results"]
    assert model["sha256"] == local["manifest"]["model"]["sha256"]  # same files, same content hash

    served = len(hub.requests())
    offline = simsa({**env, "HF_HUB_OFFLINE": "1"}, *args, "--model", f"team-a/tiny-ko@{commit}",
                    "--runs-dir", str(tmp_path / "a"))
    assert offline.returncode == 0, offline.stderr[-3000:]
    again = json.loads(offline.stdout)
    assert again["items_computed"] == 0 and again["results"] == run["results"] and len(hub.requests()) == served

    missing = simsa({**env, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty")}, *args,
                    "--model", "team-a/tiny-ko", "--runs-dir", str(tmp_path / "c"))
    assert missing.returncode == 2 and "not in the local Hugging Face cache and the run is offline" in missing.stderr
    unknown = simsa(env, *args, "--model", "team-a/nothing-here", "--runs-dir", str(tmp_path / "d"))
    assert unknown.returncode == 2 and "team-a/nothing-here" in unknown.stderr and "Traceback" not in unknown.stderr


WORKER = """
import json, sys
from simsa.bench.shard_unit import located_identity
from simsa.errors import InputError
try:
    found = located_identity(json.loads(sys.argv[1]))
except InputError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({"path": str(found.path), "sha256": found.sha256, "revision": found.revision}))
"""


def test_a_shard_on_a_node_without_the_snapshot_fetches_it_at_the_pinned_commit(tiny: Path, hub: FakeHub,
                                                                                tmp_path: Path) -> None:
    """A benchmark shard names a hub model by the driver's pinned identity; a worker whose node lacks the snapshot
    fetches that commit into its own cache and checks it against the driver's content hash."""
    files = {p.name: p.read_bytes() for p in tiny.iterdir() if p.is_file()}
    commit = hub.push("team-a/tiny-ko", files)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    driver = {**base, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "driver-hf")}
    pinned = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys\nfrom simsa.bench.identity import resolve_local_or_hub\n"
         "from simsa.bench.shard_unit import identity_args\n"
         "print(json.dumps(identity_args(resolve_local_or_hub(sys.argv[1]))))", "team-a/tiny-ko"],
        capture_output=True, text=True, env=driver, timeout=300, check=True).stdout)
    assert pinned["revision"] == commit and str(tmp_path / "driver-hf") in pinned["path"]
    node = {**base, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "node-hf")}  # another node's cache

    def on_node(identity: dict) -> dict:
        done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(identity)], capture_output=True, text=True,
                              env=node, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    moved = {**pinned, "path": str(tmp_path / "driver-only" / "snapshot")}  # not on this node
    found = on_node(moved)
    assert found["sha256"] == pinned["sha256"] and found["revision"] == commit
    assert found["path"].startswith(str(tmp_path / "node-hf"))
    forged = on_node({**moved, "sha256": "0" * 64})
    assert forged["error"] == (f"team-a/tiny-ko: the snapshot fetched on this node hashes to {pinned['sha256']}, "
                               f"not the driver's {'0' * 64}")
    local = on_node({**moved, "kind": "local", "ref": "/models/team-a"})
    assert local["error"].startswith("/models/team-a: the model directory ") and "is not on this node" in \
        local["error"]
