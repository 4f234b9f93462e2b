"""Pre-registered commitments: digests of real files and directories, the record in the audit chain (SQLite and
PostgreSQL, through the command line as a user runs it), amendments only with a reason, checks that name the
commitment a changed byte breaks, and the arena refusing to freeze an entrant that serves other weights."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sqlalchemy import func, select

from arena_support import PROGRAM as ARENA_PROGRAM
from arena_support import STAGE as ARENA_STAGE
from arena_support import scripted_factory, write_arena_program
from simsa.audit import log as audit_log
from simsa.bench.identity import weights_sha256
from simsa.errors import InputError
from simsa.evidence import KINDS, Committed, check, digest, parse_spec, tree_sha256
from simsa.services import arena, commitments, programs
from simsa.services.arena_answers import Entrants
from simsa.store.db import Store
from simsa.store.models import AuditEntry, Commitment
from test_record_integrity import _ready, cli


def _weights(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save_file({"embed.weight": rng.standard_normal((16, 8)).astype(np.float32),
               "lm_head.weight": rng.standard_normal((16, 8)).astype(np.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    return folder


def _package(root: Path) -> dict[str, Path]:
    """What a team commits to: a seed, a data manifest, a tokenizer, step-0 weights in a directory."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "seed.txt").write_text("20260116\n", encoding="utf-8")
    (root / "data.jsonl").write_text("".join(json.dumps({"source": f"corpus-{i}", "sha256": f"{i:064x}"}) + "\n"
                                             for i in range(5)), encoding="utf-8")
    (root / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}}', encoding="utf-8")
    step0 = _weights(root / "step0", 0)
    (step0 / ".cache").mkdir()
    (step0 / ".cache" / "lock").write_text("not content", encoding="utf-8")  # hidden: not part of the commitment
    return {"seed": root / "seed.txt", "data-manifest": root / "data.jsonl", "tokenizer": root / "tokenizer.json",
            "step0": step0}


def _items(files: dict[str, Path]) -> list[str]:
    return [f"{kind}={path}" for kind, path in files.items()]


def _json(code_out: tuple[int, str]) -> dict:
    code, out = code_out
    assert code == 0, out
    return json.loads(out)


# --------------------------------------------------------------------------- digests (pure)
def test_specs_name_a_kind_and_a_label() -> None:
    assert parse_spec("seed=run/seed.txt") == parse_spec("seed:seed=run/seed.txt")
    spec = parse_spec("file:eval-plan=plans/Plan v2.pdf")
    assert (spec.kind, spec.label, spec.path) == ("file", "eval-plan", Path("plans/Plan v2.pdf"))
    bare = parse_spec("notes/report.pdf")
    assert (bare.kind, bare.label) == ("file", "report.pdf")
    assert parse_spec("file:notes=a=b.txt").path == Path("a=b.txt")  # a path with "=" after an explicit kind
    assert set(KINDS) == {"seed", "data-manifest", "tokenizer", "step0", "entrant", "file"}


@pytest.mark.parametrize(("text", "message"), [
    ("weights=model.safetensors", "unknown commitment kind 'weights'"),
    ("seed=", "names no file"),
    ("file:<b>x</b>=a.txt", "commitment label"),
    ("file:../../etc=a.txt", "commitment label"),
    ("plans/Plan v2.pdf", "commitment label 'plan v2.pdf'"),
    ("file:" + "x" * 65 + "=a.txt", "commitment label"),
])
def test_bad_specs_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_spec(text)


def test_digests_of_a_file_a_directory_and_served_weights(tmp_path: Path) -> None:
    files = _package(tmp_path / "pkg")
    seed = digest(parse_spec(f"seed={files['seed']}"))
    assert seed.sha256 == hashlib.sha256(b"20260116\n").hexdigest() and seed.method == "file" and seed.files == ()
    tree = digest(parse_spec(f"step0={files['step0']}"))
    assert tree.method == "tree" and [f.path for f in tree.files] == ["config.json", "model.safetensors"]
    assert tree.sha256 == tree_sha256(tree.files) and tree.bytes == sum(f.bytes for f in tree.files)
    # The entrant digest is the one the arena gets from the endpoint (`simsa serve-model`, in-process clients).
    served = digest(parse_spec(f"entrant={files['step0']}"))
    assert served.method == "weights" and served.sha256 == weights_sha256(files["step0"])
    assert [f.path for f in served.files] == ["model.safetensors"]


def test_a_changed_byte_renamed_file_or_new_file_is_named(tmp_path: Path) -> None:
    files = _package(tmp_path / "pkg")
    before = digest(parse_spec(f"step0={files['step0']}"))
    committed = Committed(before.kind, before.label, before.sha256, before.bytes, before.method, before.files,
                          "2026-01-10T00:00:00Z", 7)
    weights = files["step0"] / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    (files["step0"] / "extra.bin").write_bytes(b"x")
    (files["step0"] / "config.json").rename(files["step0"] / "config2.json")
    [line] = check([committed], [digest(parse_spec(f"step0={files['step0']}"))])
    assert line.failed and line.status == "differs"
    assert (line.changed, line.added, line.missing) == (("model.safetensors",), ("config2.json", "extra.bin"),
                                                         ("config.json",))
    assert "commitment step0 (#7, recorded 2026-01-10T00:00:00Z): DIFFERS" in line.message()


def test_unreadable_and_empty_inputs_give_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        digest(parse_spec(f"seed={tmp_path / 'absent.txt'}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty directory"):
        digest(parse_spec(f"step0={tmp_path / 'empty'}"))
    (tmp_path / "only-config").mkdir()
    (tmp_path / "only-config" / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(InputError, match=r"no \*\.safetensors weights"):
        digest(parse_spec(f"entrant={tmp_path / 'only-config'}"))


# --------------------------------------------------------------------------- the record, as a user makes it
def _rows(db: str) -> list[Commitment]:
    store = Store(db)
    try:
        with store.session(readonly=True) as s:
            assert audit_log.verify(s).ok
            return list(s.execute(select(Commitment).order_by(Commitment.id)).scalars())
    finally:
        store.dispose()


def _audit_count(db: str) -> int:
    store = Store(db)
    try:
        with store.session(readonly=True) as s:
            return s.execute(select(func.count(AuditEntry.seq))).scalar_one()
    finally:
        store.dispose()


def test_commit_records_digests_in_the_chain_and_a_changed_byte_fails_the_check(db_url: str, tmp_path: Path) -> None:
    prog = str(_ready(db_url, tmp_path))
    files = _package(tmp_path / "pkg")
    out = _json(cli(db_url, "commit", prog, "--team", "a", "--stage", "s1", *_items(files), "--json"))
    assert [(c["kind"], c["status"]) for c in out["commitments"]] == [
        ("seed", "recorded"), ("data-manifest", "recorded"), ("tokenizer", "recorded"), ("step0", "recorded")]
    rows = _rows(db_url)
    assert [r.sha256 for r in rows] == [c["sha256"] for c in out["commitments"]]
    assert rows[0].sha256 == hashlib.sha256(files["seed"].read_bytes()).hexdigest()
    entries = _audit_count(db_url)
    # The same files again: nothing written, nothing added to the chain.
    again = _json(cli(db_url, "commit", prog, "--team", "a", "--stage", "s1", *_items(files), "--json"))
    assert {c["status"] for c in again["commitments"]} == {"unchanged"} and _audit_count(db_url) == entries
    # The team's files as submitted later: all match.
    ok = _json(cli(db_url, "commitments", "check", prog, "--team", "a", "--stage", "s1", *_items(files), "--json"))
    assert ok["ok"] and {c["status"] for c in ok["checks"]} == {"matches"}
    # One byte of the data manifest changes: the check fails, exit 1, naming the commitment.
    text = files["data-manifest"].read_bytes()
    files["data-manifest"].write_bytes(text[:-2] + bytes([text[-2] ^ 1]) + text[-1:])
    code, out_text = cli(db_url, "commitments", "check", prog, "--team", "a", "--stage", "s1", *_items(files))
    assert code == 1
    assert f"commitment data-manifest (#{rows[1].id}, recorded" in out_text and "DIFFERS" in out_text
    code, out_text = cli(db_url, "commitments", "check", prog, "--team", "a", "--stage", "s1", *_items(files),
                         "--json")
    report = json.loads(out_text)
    assert code == 1 and not report["ok"]
    assert [c["label"] for c in report["checks"] if c["failed"]] == ["data-manifest"]
    # Another team's commitments are not this team's: b committed nothing.
    code, out_text = cli(db_url, "commitments", "check", prog, "--team", "b", "--stage", "s1", *_items(files))
    assert code == 2 and "team 'b' has no commitment for stage 's1'" in out_text


def test_changing_a_commitment_needs_a_reason_and_keeps_the_original(db_url: str, tmp_path: Path) -> None:
    prog = str(_ready(db_url, tmp_path))
    files = _package(tmp_path / "pkg")
    first = _json(cli(db_url, "commit", prog, "--team", "a", "--stage", "s1", f"seed={files['seed']}", "--json"))
    files["seed"].write_text("7\n", encoding="utf-8")
    code, out = cli(db_url, "commit", prog, "--team", "a", "--stage", "s1", f"seed={files['seed']}")
    original = first["commitments"][0]
    assert code == 2 and f"already committed seed:seed (#{original['id']}" in out and "--reason" in out
    assert len(_rows(db_url)) == 1
    amended = _json(cli(db_url, "commit", prog, "--team", "a", "--stage", "s1", f"seed={files['seed']}",
                        "--reason", "the first seed diverged at step 40; restarted before any report", "--json"))
    [item] = amended["commitments"]
    assert item["status"] == "amended" and item["supersedes"] == original["id"]
    rows = _rows(db_url)
    assert [r.sha256 for r in rows] == [original["sha256"], hashlib.sha256(b"7\n").hexdigest()]
    assert rows[1].supersedes_id == rows[0].id and rows[1].reason.startswith("the first seed diverged")
    listed = _json(cli(db_url, "commitments", "list", prog, "--stage", "s1", "--json"))
    [current] = listed["commitments"]
    assert current["id"] == rows[1].id and current["supersedes"] == rows[0].id
    assert current["recorded_at"].endswith("Z") and current["recorded_at_local"]
    # The chain holds both, each as a row snapshot with its digest.
    store = Store(db_url)
    try:
        with store.session(readonly=True) as s:
            actions = [e.action for e in audit_log.load_entries(s) if e.entity == "commitments"]
            payloads = [json.loads(e.payload)["row"]["sha256"] for e in audit_log.load_entries(s)
                        if e.entity == "commitments"]
    finally:
        store.dispose()
    assert actions == ["commitment.record", "commitment.amend"] and payloads == [r.sha256 for r in rows]


def test_commitments_are_refused_for_unknown_teams_stages_and_decided_stages(db_url: str, tmp_path: Path) -> None:
    prog = str(_ready(db_url, tmp_path))
    files = _package(tmp_path / "pkg")
    code, out = cli(db_url, "commit", prog, "--team", "zz", "--stage", "s1", f"seed={files['seed']}")
    assert code == 2 and "unknown team 'zz'" in out
    code, out = cli(db_url, "commit", prog, "--team", "a", "--stage", "s9", f"seed={files['seed']}")
    assert code == 2 and "unknown stage 's9'" in out
    code, out = cli(db_url, "commit", prog, "--team", "a", "--stage", "s1", f"seed={files['seed']}",
                    f"seed={files['data-manifest']}")
    assert code == 2 and "seed:seed is given twice" in out
    assert cli(db_url, "stage", "decide", prog, "s1")[0] == 0
    code, out = cli(db_url, "commit", prog, "--team", "a", "--stage", "s1", f"seed={files['seed']}")
    assert code == 2 and "stage 's1' is already decided" in out
    assert _rows(db_url) == []


def test_the_stage_defaults_to_the_one_running_in_the_programmes_time_zone(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    store.upgrade()
    prog = write_arena_program(tmp_path, dt.datetime(2025, 8, 1, tzinfo=dt.UTC), dt.datetime(2025, 8, 5,
                                                                                               tzinfo=dt.UTC))
    files = _package(tmp_path / "pkg")
    seed = digest(parse_spec(f"seed={files['seed']}"))
    try:
        with store.session() as s:
            loaded = programs.resolve(s, str(prog))
            stage_two = loaded.program.stage("stage-2")
            # 23:30 UTC on the day before stage 2 starts is already its first day in Seoul (UTC+9).
            eve = dt.datetime.combine(stage_two.start, dt.time(0, 0), tzinfo=dt.UTC) - dt.timedelta(minutes=30)
            out = commitments.record(s, str(prog), team="jiri", digests=[seed], actor="team:jiri", now=eve)
        assert out.stage == "stage-2" and out.items[0].before_stage_start is False
        with store.session() as s:  # three days earlier stage 1 is still running: it is the default
            running = commitments.record(s, str(prog), team="halla", digests=[seed], actor="team:halla",
                                         now=eve - dt.timedelta(days=3))
            early = commitments.record(s, str(prog), team="halla", digests=[seed], actor="team:halla",
                                       stage="stage-2", now=eve - dt.timedelta(days=3))
        assert running.stage == "stage-1" and running.items[0].before_stage_start is False
        assert early.stage == "stage-2" and early.items[0].before_stage_start is True
    finally:
        store.dispose()


# --------------------------------------------------------------------------- the arena checks entrants
def test_the_arena_freezes_only_the_weights_a_team_committed_to(tmp_path: Path) -> None:
    now = dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC)
    store = Store(f"sqlite:///{tmp_path / 'arena.db'}")
    store.upgrade()
    prog = write_arena_program(tmp_path, now - dt.timedelta(days=2), now + dt.timedelta(days=3))
    committed_dir = _weights(tmp_path / "halla-entrant", 1)
    with store.session() as s:
        programs.for_writing(s, str(prog), "admin:test")
        commitments.record(s, str(prog), team="halla", stage=ARENA_STAGE, actor="team:halla",
                           digests=[digest(parse_spec(f"entrant={committed_dir}"))], now=now - dt.timedelta(days=30))
    with store.session(readonly=True) as s:
        ctx = arena.context(s, ARENA_PROGRAM, ARENA_STAGE)
    entrants = Entrants(ctx.arena, scripted_factory())
    identities = arena.read_identities(ctx, entrants)

    def attempt(served: str | None) -> None:
        ident = {team: dict(v) for team, v in identities.items()}
        ident["halla"]["sha256"] = served
        with store.session() as s:
            arena.freeze(s, arena.context(s, ARENA_PROGRAM, ARENA_STAGE), ident, "admin:test")

    other = tmp_path / "halla-other"
    _weights(other, 1)
    data = bytearray((other / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (other / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"entrant 'halla' serves weights sha256 \w+, not the \w+ of commitment "
                                         r"entrant:entrant \(#1, recorded 2025-12-06"):
        attempt(weights_sha256(other))
    with pytest.raises(InputError, match="does not publish the sha256 of the weights it serves"):
        attempt(None)
    with store.session(readonly=True) as s:
        assert arena.current_segment(s, arena.context(s, ARENA_PROGRAM, ARENA_STAGE)) is None  # nothing frozen
    attempt(weights_sha256(committed_dir))  # the committed weights freeze
    with store.session(readonly=True) as s:
        segment = arena.current_segment(s, arena.context(s, ARENA_PROGRAM, ARENA_STAGE))
        assert audit_log.verify(s).ok
    assert segment is not None and segment.number == 1
    frozen = {e["team"]: e["identity"]["sha256"] for e in segment.manifest["entrants"]}
    assert frozen["halla"] == weights_sha256(committed_dir) and frozen["jiri"] == identities["jiri"]["sha256"]
