"""Signed checkpoints anchor the audit log outside the database.

Whoever can write the database can edit a row, edit the entry that recorded it and recompute every hash after it:
plain `simsa audit verify` then passes (shown below — that is the weakness checkpoints close). A checkpoint
published before the re-write makes `verify --checkpoint` fail, naming the checkpoint, while legitimate later
writes pass. Runs the real CLI entry point (in process, and a few times as a subprocess), on SQLite and PostgreSQL
where the database is involved.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import bindparam, text
from typer.testing import CliRunner

from helpers import EXAMPLE, write_bench_scores
from simsa.audit import log as audit_log
from simsa.audit.chain import GENESIS, Entry, canonical, entry_hash
from simsa.audit.checkpoint import Checkpoint, check_checkpoint, make_checkpoint, parse_checkpoint
from simsa.audit.keys import generate_key, public_key_of
from simsa.audit.merkle import entries_root, merkle_root
from simsa.audit.trail import summarise
from simsa.cli.context import STATE
from simsa.cli.main import main
from simsa.demo import write_example_scores
from simsa.errors import InputError
from simsa.store.db import Store

TEAMS = ("baekdu", "halla", "jiri", "seorak", "taebaek")


@dataclasses.dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def simsa(*args: str, db: str | None = None, key: Path | None = None, actor: str = "cli-test") -> Ran:
    """The `simsa` entry point run in this process (as the console script runs it: argv, exit code, stdout and
    stderr), which spares the interpreter start-up of a subprocess per command."""
    env = {"NO_COLOR": "1", "COLUMNS": "400", "SIMSA_ACTOR": actor, "SIMSA_DATABASE_URL": None,
           "SIMSA_AUDIT_KEY": str(key) if key is not None else None}
    argv = ["simsa", *(["--db", db] if db else []), *args]
    with CliRunner().isolation(env=env) as (out, err, _), mock.patch.object(sys, "argv", argv):
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            STATE._store = None  # main() disposed it; the next command opens its own database
        return Ran(code, out.getvalue().decode(), err.getvalue().decode())


def simsa_process(*args: str, db: str | None = None) -> Ran:
    """A real subprocess, for the checks that the output people read is right end to end."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "400", "SIMSA_ACTOR": "cli-test"}
    env.pop("SIMSA_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "simsa.cli.main", *(["--db", db] if db else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    return Ran(done.returncode, done.stdout, done.stderr)


def ok_json(result: Ran) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def failed(result: Ran, code: int = 1) -> str:
    """The single error line of a failed command (no traceback)."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def populate(db: str, workdir: Path, seed: int = 2026) -> int:
    """Load the example programme and import its panel scores through the CLI; returns the log's size."""
    scores = workdir / f"scores-{seed}.csv"
    write_example_scores(scores, seed=seed)
    ok_json(simsa("program", "load", str(EXAMPLE), "--json", db=db))
    ok_json(simsa("score", "import", str(EXAMPLE), str(scores), "--json", db=db))
    return ok_json(simsa("audit", "verify", "--json", db=db))["entries"]


def keypair(workdir: Path, name: str) -> tuple[Path, Path]:
    private, public = workdir / f"{name}.pem", workdir / f"{name}.pub"
    ok_json(simsa("audit", "keygen", "-o", str(private), "--public-out", str(public), "--json"))
    return private, public


def load_entries(db: str) -> list[Entry]:
    store = Store(db)
    try:
        with store.session() as s:
            return audit_log.load_entries(s)
    finally:
        store.dispose()


def rechain(entries: list[Entry], start: int) -> list[Entry]:
    """What an attacker with write access does: recompute every hash from index `start` on, so the chain is valid."""
    out = list(entries[:start])
    prev = out[-1].hash if out else GENESIS
    for e in entries[start:]:
        digest = entry_hash(prev, e.seq, e.at, e.actor, e.action, e.entity, e.entity_id, e.payload)
        out.append(dataclasses.replace(e, prev_hash=prev, hash=digest))
        prev = digest
    return out


def write_chain(db: str, entries: list[Entry], start: int) -> None:
    """Store re-computed entries with raw SQL, bypassing simsa."""
    store = Store(db)
    try:
        with store.engine.begin() as conn:
            for e in entries[start:]:
                conn.execute(text("UPDATE audit_log SET actor = :actor, payload = :payload, prev_hash = :prev, "
                                  "hash = :hash WHERE seq = :seq"),
                             {"actor": e.actor, "payload": e.payload, "prev": e.prev_hash, "hash": e.hash,
                              "seq": e.seq})
    finally:
        store.dispose()


# --------------------------------------------------------------------------- keys


def test_keygen_writes_a_private_key_0600_and_never_overwrites(tmp_path: Path) -> None:
    private, public = tmp_path / "signing.pem", tmp_path / "signing.pub"
    made = ok_json(simsa("audit", "keygen", "-o", str(private), "--public-out", str(public), "--json"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    raw = base64.b64decode(made["public_key"])
    assert len(raw) == 32 and made["public_key_hex"] == raw.hex()
    assert made["fingerprint"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    before = private.read_bytes()
    message = failed(simsa("audit", "keygen", "-o", str(private)), code=2)
    assert "already exists; refusing to overwrite" in message
    assert private.read_bytes() == before
    other = tmp_path / "other.pem"
    assert "already exists" in failed(simsa("audit", "keygen", "-o", str(other), "--public-out", str(public)), 2)
    assert not other.exists(), "a refused keygen must not leave a private key behind"
    # The public key alone, from the key file (option or environment), as text, JSON and a PEM file to pin.
    shown = ok_json(simsa("audit", "pubkey", "--json", key=private))
    assert shown["fingerprint"] == made["fingerprint"]
    text_out = simsa("audit", "pubkey", "--key", str(private))
    assert text_out.returncode == 0 and made["public_key"] in text_out.stdout and made["fingerprint"] in text_out.stdout
    pinned = tmp_path / "pinned.pub"
    ok_json(simsa("audit", "pubkey", "--key", str(private), "-o", str(pinned), "--json"))
    assert pinned.read_bytes() == public.read_bytes()
    assert "no signing key" in failed(simsa("audit", "pubkey"), 2)
    assert "not a PEM private key" in failed(simsa("audit", "pubkey", "--key", str(public)), 2)


# --------------------------------------------------------------------------- the database


def test_later_writes_extend_the_checkpoint_and_keys_are_pinned(db_url: str, tmp_path: Path) -> None:
    size = populate(db_url, tmp_path)
    key, pub = keypair(tmp_path, "judges")
    other_key, _ = keypair(tmp_path, "someone-else")
    head = ok_json(simsa("audit", "verify", "--json", db=db_url))["head"]
    cp1 = tmp_path / "cp1.json"
    written = ok_json(simsa("audit", "checkpoint", "-o", str(cp1), "--json", db=db_url, key=key))
    doc = json.loads(cp1.read_text())
    assert doc["schema"] == "simsa.audit-checkpoint/1" and written["written"] == str(cp1)
    assert doc["size"] == size and doc["head"] == head
    assert doc["time"].endswith("Z")
    assert dt.datetime.fromisoformat(doc["time"].replace("Z", "+00:00")) <= dt.datetime.now(dt.UTC)
    assert doc["merkle_root"] == entries_root([e.hash for e in load_entries(db_url)])
    assert "already exists" in failed(simsa("audit", "checkpoint", "-o", str(cp1), db=db_url, key=key), 2)

    # Legitimate writes after the checkpoint: the log grows and still extends it.
    ok_json(simsa("score", "add", str(EXAMPLE), "--stage", "stage-1", "--team", "halla", "--source",
                  "panel:expert", "--rater", "expert-01", "--value", "88", "--json", db=db_url))
    ok_json(simsa("gate", "record", "k-ai-2026", "--stage", "stage-1", "--team", "halla", "--gate", "originality",
                  "--pass", "--evidence", "lineage check", "--json", db=db_url))
    result = ok_json(simsa("audit", "verify", "--checkpoint", str(cp1), "--trusted-key", str(pub), "--json",
                           db=db_url))
    assert result["ok"] and result["entries"] == size + 2
    [check] = result["checkpoints"]
    assert check["ok"] and check["pinned"] is True and check["size"] == size
    plain = simsa("audit", "verify", "--checkpoint", str(cp1), db=db_url)
    assert plain.returncode == 0 and "extends checkpoint" in plain.stdout
    assert doc["public_key"] == ok_json(simsa("audit", "pubkey", "--json", key=key))["public_key"]

    # A second checkpoint by another key: unpinned it verifies (and shows the fingerprint to compare) …
    cp2 = tmp_path / "cp2.json"
    ok_json(simsa("audit", "checkpoint", "-o", str(cp2), "--key", str(other_key), "--json", db=db_url))
    unpinned = simsa_process("audit", "verify", "--checkpoint", str(cp1), "--checkpoint", str(cp2), db=db_url)
    other_fp = ok_json(simsa("audit", "pubkey", "--json", key=other_key))["fingerprint"]
    assert unpinned.returncode == 0 and other_fp in unpinned.stdout and "not pinned" in unpinned.stdout
    # … but not when the verifier pins the programme's key.
    message = failed(simsa("audit", "verify", "--checkpoint", str(cp1), "--checkpoint", str(cp2), "--trusted-key",
                           str(pub), db=db_url))
    assert f"checkpoint {cp2}" in message and f"signed by key {other_fp}, which is not a trusted key" in message
    # Pins by fingerprint and by base64 key work too.
    fp = ok_json(simsa("audit", "pubkey", "--json", key=key))
    for pin in (fp["fingerprint"], fp["public_key"], fp["public_key_hex"]):
        assert ok_json(simsa("audit", "verify", "--checkpoint", str(cp1), "--trusted-key", pin, "--json",
                             db=db_url))["checkpoints"][0]["pinned"] is True
    assert "--trusted-key needs --checkpoint" in failed(simsa("audit", "verify", "--trusted-key", str(pub),
                                                              db=db_url), 2)
    assert "neither a readable key file" in failed(simsa("audit", "verify", "--checkpoint", str(cp1),
                                                         "--trusted-key", "nonsense", db=db_url), 2)


def test_rechained_decision_passes_plain_verify_but_fails_the_checkpoint(db_url: str, tmp_path: Path) -> None:
    """The attack: a database writer changes who advanced and recomputes the hash chain after it."""
    populate(db_url, tmp_path)
    bench = tmp_path / "bench.json"
    write_bench_scores(bench)
    ok_json(simsa("score", "import", str(EXAMPLE), str(bench), "--json", db=db_url))
    for team in TEAMS:
        ok_json(simsa("gate", "record", "k-ai-2026", "--stage", "stage-1", "--team", team, "--gate", "originality",
                      "--fail" if team == "jiri" else "--pass", "--evidence", "lineage check", "--json", db=db_url))
    decided = ok_json(simsa("stage", "decide", "k-ai-2026", "stage-1", "--at", "2026-01-15T09:00:00Z", "--json",
                            db=db_url))
    assert "jiri" in decided["eliminated"]
    key, pub = keypair(tmp_path, "judges")
    checkpoint = tmp_path / "published-checkpoint.json"
    ok_json(simsa("audit", "checkpoint", "-o", str(checkpoint), "--json", db=db_url, key=key))
    ok_json(simsa("stage", "appeal", "file", "k-ai-2026", "stage-1", "--team", "jiri", "--grounds",
                  "the lineage check compared the wrong checkpoint", "--at", "2026-01-20", "--json", db=db_url))
    assert ok_json(simsa("audit", "verify", "--checkpoint", str(checkpoint), "--json", db=db_url))["ok"]

    # Forge the decision: jiri advanced. Row and audit payload both changed, then every later hash recomputed.
    entries = load_entries(db_url)
    index = next(i for i, e in enumerate(entries) if e.action == "decision.record")
    payload = json.loads(entries[index].payload)
    body = json.loads(payload["row"]["body"])
    body["advanced"].append("jiri")
    body["eliminated"].remove("jiri")
    payload["row"]["body"] = canonical(body)
    payload["advanced"], payload["eliminated"] = body["advanced"], body["eliminated"]
    entries[index] = dataclasses.replace(entries[index], payload=canonical(payload))
    forged = rechain(entries, index)
    store = Store(db_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE decisions SET body = :b WHERE id = :i"),
                         {"b": payload["row"]["body"], "i": decided["decision_id"]})
    finally:
        store.dispose()
    write_chain(db_url, forged, index)
    assert "jiri" in ok_json(simsa("stage", "show", "k-ai-2026", "stage-1", "--json", db=db_url))["advanced"]

    # The weakness: the re-written log is a valid chain that matches the database.
    plain = ok_json(simsa("audit", "verify", "--json", db=db_url))
    assert plain["ok"] and plain["entries"] == len(entries)
    # The published checkpoint catches it, naming the checkpoint and what differs.
    result = simsa_process("audit", "verify", "--checkpoint", str(checkpoint), "--trusted-key", str(pub), db=db_url)
    message = failed(result)
    size = json.loads(checkpoint.read_text())["size"]
    assert f"checkpoint {checkpoint}" in message and f"entry {size} has hash" in message
    assert "re-written after the checkpoint" in message
    as_json = simsa("audit", "verify", "--checkpoint", str(checkpoint), "--json", db=db_url)
    assert as_json.returncode == 1
    report, _ = json.JSONDecoder().raw_decode(as_json.stdout)  # the report, then the error object
    assert not report["ok"] and [p["kind"] for p in report["problems"]] == ["checkpoint_rewritten"]


def test_truncated_log_fails_the_checkpoint(db_url: str, tmp_path: Path) -> None:
    size = populate(db_url, tmp_path)
    key, _ = keypair(tmp_path, "judges")
    checkpoint = tmp_path / "cp.json"
    ok_json(simsa("audit", "checkpoint", "-o", str(checkpoint), "--json", db=db_url, key=key))
    # Remove the last three entries together with the scores they recorded: still a consistent, valid log.
    store = Store(db_url)
    try:
        with store.engine.begin() as conn:
            ids = conn.execute(text("SELECT entity_id FROM audit_log WHERE seq > :n"), {"n": size - 3}).scalars().all()
            conn.execute(text("DELETE FROM audit_log WHERE seq > :n"), {"n": size - 3})
            conn.execute(text("DELETE FROM scores WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)),
                         {"ids": list(ids)})
    finally:
        store.dispose()
    assert ok_json(simsa("audit", "verify", "--json", db=db_url))["ok"]
    message = failed(simsa("audit", "verify", "--checkpoint", str(checkpoint), db=db_url))
    assert f"checkpoint {checkpoint}: the log has {size - 3} entries but the checkpoint" in message
    assert f"covers {size}" in message and "removed" in message


def test_checkpoint_refuses_a_log_that_does_not_verify(db_url: str, tmp_path: Path) -> None:
    populate(db_url, tmp_path)
    key, _ = keypair(tmp_path, "judges")
    store = Store(db_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE scores SET value = value + 1 WHERE id = 3"))
    finally:
        store.dispose()
    out = tmp_path / "cp.json"
    message = failed(simsa("audit", "checkpoint", "-o", str(out), db=db_url, key=key))
    assert "refusing to sign a log that does not verify" in message and "scores row 3" in message
    assert not out.exists()
    assert "no signing key" in failed(simsa("audit", "checkpoint", "-o", str(out), db=db_url), 2)


# --------------------------------------------------------------------------- published files


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A log with its published checkpoint and export."""
    work = tmp_path_factory.mktemp("published")
    db = f"sqlite:///{work / 'judging.db'}"
    populate(db, work)
    key, pub = keypair(work, "judges")
    out = {"db": db, "key": key, "pub": pub, "checkpoint": work / "checkpoint.json", "export": work / "audit.json"}
    ok_json(simsa("audit", "checkpoint", "-o", str(out["checkpoint"]), "--json", db=db, key=key))
    ok_json(simsa("audit", "export", "-o", str(out["export"]), "--json", db=db))
    return out


def test_published_export_extends_its_checkpoint(published: dict) -> None:
    result = ok_json(simsa("audit", "verify", "--file", str(published["export"]), "--checkpoint",
                           str(published["checkpoint"]), "--trusted-key", str(published["pub"]), "--json"))
    assert result["ok"] and result["checkpoints"][0]["pinned"] is True


def test_rechained_export_fails_against_the_checkpoint(published: dict, tmp_path: Path) -> None:
    doc = json.loads(published["export"].read_text())
    doc["entries"][40]["payload"]["row"]["value"] = 100.0
    entries = rechain(audit_log.entries_from_export(doc), 40)
    doc["entries"] = [e.to_dict() for e in entries]
    doc["head"] = entries[-1].hash
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc), encoding="utf-8")
    assert ok_json(simsa("audit", "verify", "--file", str(forged), "--json"))["ok"]  # the weakness
    message = failed(simsa("audit", "verify", "--file", str(forged), "--checkpoint", str(published["checkpoint"])))
    assert f"checkpoint {published['checkpoint']}" in message and "re-written after the checkpoint" in message
    # A truncated export fails as well (its own head moved with it).
    doc["entries"] = doc["entries"][:-5]
    doc["head"] = doc["entries"][-1]["hash"]
    forged.write_text(json.dumps(doc), encoding="utf-8")
    assert "entries were removed" in failed(simsa("audit", "verify", "--file", str(forged), "--checkpoint",
                                                  str(published["checkpoint"])))


def test_substituted_history_of_the_same_length_fails(published: dict, db_url: str, tmp_path: Path) -> None:
    """Another database, built by the same commands with other score values: a valid log of the same length."""
    size = json.loads(published["checkpoint"].read_text())["size"]
    assert populate(db_url, tmp_path, seed=2027) == size
    export = tmp_path / "substitute.json"
    ok_json(simsa("audit", "export", "-o", str(export), "--json", db=db_url))
    for args, db in ((["--file", str(export)], None), ([], db_url)):
        message = failed(simsa("audit", "verify", *args, "--checkpoint", str(published["checkpoint"]), db=db))
        assert f"entry {size} has hash" in message and "re-written" in message


@pytest.mark.parametrize("field", ["size", "head", "time", "merkle_root", "signature", "public_key"])
def test_tampered_checkpoint_fails_its_signature(published: dict, tmp_path: Path, field: str) -> None:
    doc = json.loads(published["checkpoint"].read_text())
    if field == "size":
        doc["size"] -= 1
    elif field == "time":
        doc["time"] = "2020-01-01T00:00:00Z"
    elif field in ("head", "merkle_root"):
        doc[field] = ("0" if doc[field][0] != "0" else "1") + doc[field][1:]
    elif field == "signature":
        sig = bytearray(base64.b64decode(doc["signature"]))
        sig[5] ^= 1
        doc["signature"] = base64.b64encode(bytes(sig)).decode()
    else:  # a valid key that did not sign it
        doc["public_key"] = public_key_of(generate_key()).base64
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc), encoding="utf-8")
    message = failed(simsa("audit", "verify", "--file", str(published["export"]), "--checkpoint", str(tampered)))
    assert f"checkpoint {tampered}: the signature does not verify" in message


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not JSON"),
    ('["a list"]', "not a JSON object"),
    ('{"schema": "simsa.audit/1"}', "schema 'simsa.audit/1'"),
    (None, "missing"),
    ("size", "size 'ten' is not a positive integer"),
    ("extra", "unknown fields note"),
    ("huge", "larger than"),
    ("absent", "cannot read checkpoint file"),
])
def test_unreadable_checkpoint_is_an_input_error(published: dict, tmp_path: Path, content: str | None,
                                                 message: str) -> None:
    path = tmp_path / "cp.json"
    doc = json.loads(published["checkpoint"].read_text())
    if content is None:
        del doc["head"]
        path.write_text(json.dumps(doc))
    elif content == "size":
        path.write_text(json.dumps({**doc, "size": "ten"}))
    elif content == "extra":
        path.write_text(json.dumps({**doc, "note": "unsigned"}))
    elif content == "huge":
        path.write_text(" " * 70_000 + json.dumps(doc))
    elif content != "absent":
        path.write_text(content)
    line = failed(simsa("audit", "verify", "--file", str(published["export"]), "--checkpoint", str(path)), 2)
    assert str(path) in line and message in line


# --------------------------------------------------------------------------- the pure logic


def _chain(n: int) -> list[Entry]:
    entries = [Entry(seq=i, at=f"2026-01-{i:02d}T00:00:00.000000Z", actor="a", action="score.add", entity="scores",
                     entity_id=i, payload=canonical({"row": {"id": i, "value": i}}), prev_hash="", hash="")
               for i in range(1, n + 1)]
    return rechain(entries, 0)


def test_merkle_root_follows_rfc_9162() -> None:
    def h(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    d = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon"]
    leaf = [h(b"\x00" + x) for x in d]
    assert merkle_root([]) == h(b"")
    assert merkle_root(d[:1]) == leaf[0]
    assert merkle_root(d[:2]) == h(b"\x01" + leaf[0] + leaf[1])
    # n = 3: k = 2, so the left subtree holds two leaves and the right one.
    assert merkle_root(d[:3]) == h(b"\x01" + h(b"\x01" + leaf[0] + leaf[1]) + leaf[2])
    # n = 5: k = 4, a full tree of four on the left, the fifth leaf alone on the right.
    four = h(b"\x01" + h(b"\x01" + leaf[0] + leaf[1]) + h(b"\x01" + leaf[2] + leaf[3]))
    assert merkle_root(d) == h(b"\x01" + four + leaf[4])
    # The reference tree heads of the Certificate Transparency test data, for 1 to 8 leaves.
    data = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
    roots = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
             "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
             "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
             "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
             "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
             "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
    for n, root in enumerate(roots, start=1):
        assert merkle_root([bytes.fromhex(x) for x in data[:n]]).hex() == root
    entries = _chain(3)
    assert entries_root([e.hash for e in entries]) == merkle_root([bytes.fromhex(e.hash) for e in entries]).hex()


def test_checkpoint_round_trip_and_each_kind_of_failure() -> None:
    key = generate_key()
    entries = _chain(6)
    cp = make_checkpoint(entries[:4], key, dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))
    assert cp.time == "2026-03-01T12:00:00Z" and cp.size == 4 and cp.head == entries[3].hash
    again = parse_checkpoint(cp.to_json().encode(), "cp")
    assert again == cp and again.signature_valid()
    assert check_checkpoint(cp, entries, "cp").ok  # a longer log extends it
    assert check_checkpoint(cp, entries[:4], "cp", {cp.key_fingerprint}).pinned is True
    # Entry content edited but stored hashes kept: the prefix is no longer a valid chain.
    edited = list(entries)
    edited[1] = dataclasses.replace(edited[1], actor="mallory")
    [problem] = check_checkpoint(cp, edited, "cp").problems
    assert problem.kind == "checkpoint_chain" and "entry 2" in problem.message
    # A correctly signed checkpoint whose Merkle root does not match the log.
    wrong = Checkpoint(size=cp.size, head=cp.head, merkle_root="ab" * 32, time=cp.time, public_key=cp.public_key,
                       signature=b"")
    wrong = dataclasses.replace(wrong, signature=key.sign(wrong.message()))
    assert wrong.signature_valid()
    [problem] = check_checkpoint(wrong, entries, "cp").problems
    assert problem.kind == "checkpoint_merkle"
    with pytest.raises(InputError, match="empty"):
        make_checkpoint([], key, dt.datetime.now(dt.UTC))


def test_summaries_of_corrections_imports_and_odd_payloads() -> None:
    def entry(action: str, entity: str, payload: object, entity_id: int | None = 7) -> Entry:
        body = payload if isinstance(payload, str) else canonical(payload)
        return Entry(seq=1, at="2026-01-01T00:00:00.000000Z", actor="a", action=action, entity=entity,
                     entity_id=entity_id, payload=body, prev_hash=GENESIS, hash="")

    void = {"row": {"id": 7, "stage_id": "s1", "team_id": "t1", "source": "panel:user", "rater": "u1",
                    "value": None, "voided": True, "reason": "entered twice", "supersedes_id": 3}}
    assert summarise(entry("score.void", "scores", void)) == "void of score 3 (s1 t1 panel:user rater u1): " \
                                                             "entered twice"
    batch = {"batch_id": "b-1", "file": "scores.csv", "rows": 12, "replaces": None, "voided": 0}
    assert summarise(entry("score.import", "batch", batch, None)) == "import batch b-1 from scores.csv: 12 scores"
    imported = {"file": "stage-1.json", "row": {"id": 2, "stage_id": "s1", "supersedes_id": None,
                                                "body": canonical({"advanced": ["t1"], "eliminated": ["t2"]})}}
    assert summarise(entry("decision.import", "decisions", imported)) == \
        "decision 2 of s1: advanced t1; eliminated t2; imported from stage-1.json"
    assert summarise(entry("decision.record", "decisions", {"row": {"id": 1, "body": "[]"}})) == \
        "decision 1 of None: advanced none; eliminated none"
    assert summarise(entry("x.y", "things", {"n": 1})) == "things 7: n=1"
    assert summarise(entry("x.y", "things", "not json")) == "(payload is not JSON)"
    assert summarise(entry("decision.record", "decisions", {"advanced": 5, "row": {"id": 1}})) == \
        "decisions 7: advanced=5"  # a payload no summary understands gets the generic line, not a crash


def test_the_package_surface_and_cheap_import() -> None:
    import simsa.audit as audit

    for name in audit.__all__:
        assert getattr(audit, name) is not None
    probe = ("import sys, simsa.audit.log, simsa.cli.audit_cmd; "
             "print('cryptography' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "writing to the log must not import the cryptography package"


# --------------------------------------------------------------------------- the readable trail


def test_audit_log_lists_and_filters_the_trail(db_url: str, tmp_path: Path) -> None:
    ok_json(simsa("program", "load", str(EXAMPLE), "--json", db=db_url, actor="secretariat"))
    for i, team in enumerate(("baekdu", "halla")):
        ok_json(simsa("score", "add", str(EXAMPLE), "--stage", "stage-1", "--team", team, "--source", "panel:expert",
                      "--rater", "expert-01", "--value", str(70 + i), "--json", db=db_url, actor="panel-chair"))
    ok_json(simsa("gate", "record", "k-ai-2026", "--stage", "stage-1", "--team", "halla", "--gate", "originality",
                  "--fail", "--evidence", "weights match a public model", "--json", db=db_url, actor="lineage-team"))
    full = ok_json(simsa("audit", "log", "--json", db=db_url))
    assert [e["seq"] for e in full["entries"]] == [1, 2, 3, 4] and full["tz"] == "UTC"
    assert [e["actor"] for e in full["entries"]] == ["secretariat", "panel-chair", "panel-chair", "lineage-team"]
    summaries = [e["summary"] for e in full["entries"]]
    assert summaries[0].startswith("program k-ai-2026 version sha256 ")
    assert summaries[1] == "score stage-1 baekdu panel:expert rater expert-01 = 70"
    assert summaries[3].startswith("gate originality stage-1 halla: fail — weights match a public model")
    assert all(e["time"].endswith("Z") and len(e["time"]) == 20 for e in full["entries"])

    # --since with a +09:00 offset is the same instant in UTC: from entry 3's time on.
    third = dt.datetime.fromisoformat(full["entries"][2]["at"].replace("Z", "+00:00"))
    seoul = third.astimezone(dt.timezone(dt.timedelta(hours=9))).isoformat()
    assert seoul.endswith("+09:00")
    since = ok_json(simsa("audit", "log", "--since", seoul, "--json", db=db_url))
    assert [e["seq"] for e in since["entries"]] == [3, 4]
    until = ok_json(simsa("audit", "log", "--until", seoul, "--json", db=db_url))
    assert [e["seq"] for e in until["entries"]] == [1, 2]
    tomorrow = (third + dt.timedelta(days=1)).date().isoformat()  # a bare date: midnight UTC
    assert ok_json(simsa("audit", "log", "--since", tomorrow, "--json", db=db_url))["entries"] == []
    assert len(ok_json(simsa("audit", "log", "--until", tomorrow, "--json", db=db_url))["entries"]) == 4

    chair = ok_json(simsa("audit", "log", "--actor", "panel-chair", "--json", db=db_url))
    assert [e["seq"] for e in chair["entries"]] == [2, 3]
    gates = ok_json(simsa("audit", "log", "--action", "gate", "--json", db=db_url))
    assert [e["action"] for e in gates["entries"]] == ["gate.record"]
    newest = ok_json(simsa("audit", "log", "--action", "score.", "--limit", "1", "--json", db=db_url))
    assert [e["seq"] for e in newest["entries"]] == [3] and newest["matched"] == 2
    local = ok_json(simsa("audit", "log", "--tz", "Asia/Seoul", "--limit", "1", "--json", db=db_url))
    assert local["entries"][0]["time"].endswith("+09:00") and local["tz"] == "Asia/Seoul"

    shown = simsa("audit", "log", "--actor", "panel-chair", db=db_url)
    assert shown.returncode == 0
    lines = shown.stdout.splitlines()
    assert len(lines) == 2 and "scores#1" in lines[0] and "halla panel:expert rater expert-01 = 71" in lines[1]
    assert "not an ISO 8601" in failed(simsa("audit", "log", "--since", "last tuesday", db=db_url), 2)
    assert "unknown time zone" in failed(simsa("audit", "log", "--tz", "Mars/Olympus", db=db_url), 2)
    assert "--limit" in failed(simsa("audit", "log", "--limit", "0", db=db_url), 2)
