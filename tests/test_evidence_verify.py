"""`simsa evidence verify` on real training runs: an honest run from scratch passes; each forgery — continued
pre-training presented as from scratch, a swapped checkpoint, an edited log (re-hashed or not), a re-noised parent
as step 0 — fails with the failing check named; hostile manifests give one clear error; a package is checked
against the team's pre-registered commitments."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from evidence_runs import FORGERIES, Runs, build_runs, write_manifest
from helpers import EXAMPLE
from simsa.errors import InputError
from simsa.evidence import Spec, digest, parse_spec
from simsa.evidence.manifest import load_manifest
from simsa.evidence.verify import verify
from simsa.report.evidence_report import render_evidence_html
from simsa.services import commitments
from simsa.store.db import Store
from test_record_integrity import cli

# What each forgery must fail (it may fail more): the check a reviewer is pointed to.
MUST_FAIL = {
    "cpt": {"init", "first_loss", "independence"},
    "swapped": {"chain"},
    "edited-log": {"files"},
    "cpt-edited-log": {"init", "independence"},
    "renoised": {"init", "independence"},
}


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return build_runs(tmp_path_factory.getbasetemp() / "evidence-runs")


def _copy(runs: Runs, name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(runs.package(name), target)
    return target


def _cli(*args: str, db: str = "sqlite://") -> tuple[int, str]:
    """`simsa …` as a user runs it (an in-memory database unless one is given: most of these commands open none)."""
    return cli(db, *args)


def test_the_honest_run_passes_every_check(runs: Runs) -> None:
    v = verify(runs.package("honest"), parents=[runs.parent])
    status = {c.id: c.status for c in v.checks}
    assert v.ok and status == {"files": "passed", "init": "passed", "first_loss": "passed", "chain": "passed",
                               "distance": "passed", "tokens": "passed", "independence": "passed",
                               "commitments": "not applicable"}
    init = v.check("init").details
    assert len(init["tensors"]) >= 30 and all(t["passed"] for t in init["tensors"])
    norms = [t for t in init["tensors"] if t["kind"] == "norm"]
    assert norms and all(t["declared"] == "ones" and t["mismatched"] == 0 for t in norms)
    first = v.check("first_loss").details
    assert abs(first["first_loss"] - math.log(first["vocab_size"])) < 0.2  # a random init's loss, not just ≤ 1 nat
    links = v.check("chain").details["links"]
    assert [(r["from"], r["to"], r["verdict"]) for r in links] == [
        (0, 10, "derived"), (10, 40, "derived"), (40, 80, "derived"), (80, 120, "derived")]
    relative = [p["relative"] for p in v.check("distance").details["points"]]
    assert relative == sorted(relative) and relative[-1] > 0.1
    [test_0, test_10] = v.check("independence").details["tests"]
    assert (test_0["step"], test_0["verdict"], test_10["step"], test_10["verdict"]) == (
        0, "independent", 10, "independent")


@pytest.mark.parametrize("forgery", FORGERIES)
def test_each_forgery_fails_with_the_check_named(runs: Runs, forgery: str) -> None:
    v = verify(runs.package(forgery), parents=[runs.parent])
    failed = {c.id for c in v.failed_checks()}
    assert not v.ok and MUST_FAIL[forgery] <= failed, (forgery, failed)
    if forgery == "cpt-edited-log":  # the edit did its job: only the weights give it away
        assert v.check("first_loss").status == "passed" and "files" not in failed
    if forgery == "swapped":
        bad = [r for r in v.check("chain").details["links"] if r["problem"]]
        assert {(r["from"], r["to"]) for r in bad} == {(40, 80), (80, 120)}
    if forgery == "edited-log":
        assert "logs/train.csv (log): sha256 differs" in v.check("files").summary
    if forgery in ("cpt", "renoised"):
        step0 = v.check("independence").details["tests"][0]
        assert step0["step"] == 0 and step0["verdict"] in ("identical", "derived") and step0["log10_p"] < -6


def test_the_command_line_exits_1_names_the_check_and_writes_the_report(runs: Runs, tmp_path: Path) -> None:
    code, out = _cli("evidence", "verify", str(runs.package("honest")), "--parent", str(runs.parent), "--json",
                     "--report", str(tmp_path / "honest.html"))
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["schema"] == "simsa.evidence.verify/1" and doc["failed"] == []
    page = (tmp_path / "honest.html").read_text(encoding="utf-8")
    assert "Training evidence: jiri-tiny" in page and page.count("<svg") == 2  # the loss curve and the distances
    code, out = _cli("evidence", "verify", str(runs.package("swapped")), "--report", str(tmp_path / "s.html"))
    assert code == 1 and "evidence failed: chain" in " ".join(out.split())
    assert "Each checkpoint descends from the one before" in (tmp_path / "s.html").read_text(encoding="utf-8")


def test_html_in_the_package_is_escaped_in_the_report(runs: Runs, tmp_path: Path) -> None:
    pkg = _copy(runs, "honest", tmp_path)
    manifest = (pkg / "evidence.toml").read_text(encoding="utf-8")
    (pkg / "evidence.toml").write_text(manifest.replace('model = "jiri-tiny"', 'model = "<script>alert(1)</script>"'),
                                       encoding="utf-8")
    page = render_evidence_html(verify(pkg).to_dict())
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --------------------------------------------------------------------------- hostile packages
def _manifest_with(runs: Runs, tmp_path: Path, old: str, new: str) -> Path:
    pkg = _copy(runs, "honest", tmp_path)
    text = (pkg / "evidence.toml").read_text(encoding="utf-8")
    assert old in text, old
    (pkg / "evidence.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return pkg


@pytest.mark.parametrize(("old", "new", "message"), [
    ('path = "logs/train.csv"', 'path = "../../etc/passwd"', "must be relative to the package and stay inside it"),
    ('path = "logs/train.csv"', 'path = "/etc/passwd"', "must be relative to the package and stay inside it"),
    ('schema = "simsa.evidence/1"', 'schema = "simsa.evidence/9"', "schema"),
    ("step = 0\n", "step = 5\n", "the first checkpoint must be step 0"),
    ("step = 80\n", "step = 20\n", "checkpoint steps must increase"),
    ('format = "csv"', 'format = "xlsx"', "log.format"),
    ("global_batch_size = 16", "global_batch_size = -16", "training.global_batch_size"),
    ('[init.mlp]\ndistribution = "normal"', '[init.mlp]\ndistribution = "cauchy"', "init.mlp.distribution"),
    ('[init.mlp]\ndistribution = "normal"\nstd = 0.02', '[init.mlp]\ndistribution = "normal"\nstd = nan',
     "init.mlp.std"),
    ('[init.mlp]\ndistribution = "normal"\nstd = 0.02', '[init.mlp]\ndistribution = "normal"', "needs std"),
    ('model = "jiri-tiny"', 'model = "jiri-tiny"\nextra = 1', "extra"),
    ('sha256 = "', 'sha256 = "xyz', "sha256"),
    ('schema = "simsa.evidence/1"', 'schema = "simsa.evidence/1', "not valid TOML"),
])
def test_hostile_manifests_give_one_clear_error(runs: Runs, tmp_path: Path, old: str, new: str,
                                                message: str) -> None:
    pkg = _manifest_with(runs, tmp_path, old, new)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")) as err:
        verify(pkg)
    assert "\n" not in str(err.value)
    code, out = _cli("evidence", "verify", str(pkg))
    assert code == 2 and "Traceback" not in out


def test_missing_and_oversized_manifests_and_links_out_of_the_package(runs: Runs, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no evidence\.toml"):
        verify(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        verify(tmp_path / "absent")
    big = tmp_path / "big"
    big.mkdir()
    (big / "evidence.toml").write_bytes(b"#" * (2 << 20))
    with pytest.raises(InputError, match="larger than"):
        verify(big)
    pkg = _copy(runs, "honest", tmp_path)
    outside = tmp_path / "outside.csv"
    shutil.copy(pkg / "logs" / "train.csv", outside)
    (pkg / "logs" / "train.csv").unlink()
    os.symlink(outside, pkg / "logs" / "train.csv")  # the sha256 matches: only the link gives it away
    v = verify(pkg)
    assert v.check("files").status == "failed" and "leads outside the evidence package" in v.check("files").summary
    assert v.check("first_loss").status == "not applicable"  # nothing is read through the link


def test_a_broken_checkpoint_fails_its_checks_and_the_rest_still_run(runs: Runs, tmp_path: Path) -> None:
    pkg = _copy(runs, "honest", tmp_path)
    weights = pkg / "checkpoints" / "step-0" / "model.safetensors"
    weights.write_bytes(b"\x00" * 64)  # not a safetensors file at all
    write_manifest(pkg, "jiri-tiny", [0, 10, 40, 80, 120])  # re-hashed: the files check cannot catch it
    v = verify(pkg, parents=[runs.parent])
    status = {c.id: c.status for c in v.checks}
    assert status["files"] == "passed" and status["init"] == "failed" and status["tokens"] == "passed"
    assert v.check("init").summary.startswith("could not be run: ")
    assert "model.safetensors" in v.check("init").summary


def test_a_wandb_history_export_is_read_as_the_log(runs: Runs, tmp_path: Path) -> None:
    pkg = _copy(runs, "honest", tmp_path)
    rows = (pkg / "logs" / "train.csv").read_text(encoding="utf-8").splitlines()[1:]
    history = [json.dumps({"_step": int(r.split(",")[0]), "train/loss": float(r.split(",")[1]), "_runtime": 1.5,
                           "trainer/tokens": int(r.split(",")[3])}) for r in rows]
    (pkg / "logs" / "history.jsonl").write_text("\n".join(history) + "\n", encoding="utf-8")
    text = (pkg / "evidence.toml").read_text(encoding="utf-8").replace('path = "logs/train.csv"\nformat = "csv"',
                                                                        'path = "logs/history.jsonl"\nformat = "wandb"')
    text = text.replace(digest(Spec("file", "x", pkg / "logs" / "train.csv")).sha256,
                        digest(parse_spec(f"file:h={pkg / 'logs' / 'history.jsonl'}")).sha256)
    (pkg / "evidence.toml").write_text(text, encoding="utf-8")
    assert load_manifest(pkg).log.format == "wandb"
    v = verify(pkg)
    assert v.check("first_loss").status == "passed" and v.check("tokens").status == "passed"
    assert v.check("tokens").details["points"][0]["source"] == "log"
    # One logged count off by 2 %: the check fails and says where.
    history[60] = history[60].replace(f'"trainer/tokens": {61 * 1024}', f'"trainer/tokens": {int(61 * 1024 * 1.02)}')
    (pkg / "logs" / "history.jsonl").write_text("\n".join(history) + "\n", encoding="utf-8")
    tokens = verify(pkg).check("tokens")
    assert tokens.status == "failed" and tokens.details["off"] == 1 and "at step 61 (log: 63,713 vs 62,464)" in (
        tokens.summary)


# --------------------------------------------------------------------------- commitments
def test_the_package_is_checked_against_the_teams_commitments(runs: Runs, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    store = Store(db)
    store.upgrade()
    honest = runs.package("honest")
    committed = [digest(parse_spec(f"step0={honest / 'checkpoints' / 'step-0'}")),
                 digest(parse_spec(f"tokenizer={honest / 'tokenizer' / 'tokenizer.json'}")),
                 digest(parse_spec(f"data-manifest={honest / 'data-manifest.jsonl'}"))]
    try:
        with store.session() as s:
            commitments.record(s, str(EXAMPLE), team="jiri", stage="stage-2", digests=committed, actor="team:jiri")
    finally:
        store.dispose()
    code, out = _cli("evidence", "verify", str(honest), "--program", str(EXAMPLE), "--team", "jiri", "--stage",
                     "stage-2", "--json", db=db)
    check = next(c for c in json.loads(out)["checks"] if c["id"] == "commitments")
    assert code == 0 and check["status"] == "passed" and len(check["details"]["commitments"]) == 3
    code, out = _cli("evidence", "verify", str(runs.package("cpt")), "--program", str(EXAMPLE), "--team", "jiri",
                     "--stage", "stage-2", "--json", db=db)
    check = next(c for c in json.loads(out)["checks"] if c["id"] == "commitments")
    assert code == 1 and check["status"] == "failed"
    assert "commitment step0 (#1, recorded" in check["summary"] and "DIFFERS" in check["summary"]
    code, out = _cli("evidence", "verify", str(honest), "--team", "jiri", db=db)
    assert code == 2 and "needs both --program and --team" in out


# --------------------------------------------------------------------------- the originality gate
def test_the_originality_gate_reads_the_verified_package(runs: Runs, tmp_path: Path) -> None:
    from simsa.lineage.compare.result import compare_paths

    db = f"sqlite:///{tmp_path / 'g.db'}"
    result = compare_paths(runs.package("honest") / "checkpoints" / "step-120", runs.parent)
    assert result["verdict"] == "independent"
    result["candidate"]["path"] = "baekdu/baekdu-32b"  # the team's declared model, as it would be published
    lineage = tmp_path / "lineage.json"
    lineage.write_text(json.dumps(result), encoding="utf-8")
    files = {}
    for name in ("honest", "cpt"):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(verify(runs.package(name), parents=[runs.parent]).to_dict()),
                               encoding="utf-8")
    gate = ["gate", "from-lineage", str(EXAMPLE), str(lineage), "--stage", "stage-1", "--team", "baekdu"]
    out = json.loads(cli(db, *gate, "--training-evidence", str(files["honest"]), "--json")[1])
    summary, recorded = out["summary"], out["recorded"]
    assert recorded["passed"] is True and summary["criteria"]["training_evidence"]["status"] == "pass"
    assert summary["training_evidence"]["ok"] and "Training evidence (sha256" in recorded["evidence"]
    # The forged package: the weights alone would pass, the training evidence sends the gate to review.
    code, text = cli(db, *gate, "--training-evidence", str(files["cpt"]))
    assert code == 2 and "needs review" in text and "the package fails init (statistical)" in text
    out = json.loads(cli(db, *gate, "--training-evidence", str(files["cpt"]), "--override", "fail", "--reason",
                         "step 0 is the parent's weights; the package fails init and independence", "--json")[1])
    assert out["recorded"]["passed"] is False and out["recorded"]["supersedes"] == recorded["id"]
    assert "FAILED init (statistical), first_loss (declared), independence (statistical)" in out["recorded"]["evidence"]
    # Another team's package, or something that is not a verification, is refused with the reason.
    code, text = cli(db, "gate", "from-lineage", str(EXAMPLE), str(lineage), "--stage", "stage-1", "--team",
                     "halla", "--training-evidence", str(files["honest"]), "--dry-run")
    assert code == 2 and "is team 'baekdu''s package, not team 'halla''s" in text
    code, text = cli(db, *gate, "--training-evidence", str(lineage), "--dry-run")
    assert code == 2 and "not a simsa.evidence.verify/1 result" in text


def test_a_registry_scan_and_the_early_checkpoints_marked_in_the_manifest(runs: Runs, tmp_path: Path) -> None:
    from simsa.lineage.compare.sides import open_side
    from simsa.lineage.fingerprints.build import build_fingerprint
    from simsa.lineage.fingerprints.registry import Registry

    registry = Registry.open(tmp_path / "registry", create=True)
    for name, path in (("parent", runs.parent), ("other-run", runs.package("other-run") / "checkpoints" / "step-40")):
        side = open_side(path)
        registry.add(build_fingerprint(side, name=name), name)
        side.ckpt.close()
    honest = verify(runs.package("honest"), registry=registry.root).check("independence")
    assert honest.status == "passed" and {t["reference"] for t in honest.details["tests"]} == {
        "registry:parent", "registry:other-run"}
    cpt = verify(runs.package("cpt"), registry=registry.root).check("independence")
    assert cpt.status == "failed" and "step 0 vs registry:parent: identical" in cpt.summary
    assert "registry:other-run" not in {t["reference"] for t in cpt.details["tests"] if t["problem"]}
    # A later checkpoint marked early is tested instead of the default (step 0 and the first after it).
    pkg = _copy(runs, "honest", tmp_path)
    text = (pkg / "evidence.toml").read_text(encoding="utf-8")
    (pkg / "evidence.toml").write_text(text.replace('path = "checkpoints/step-40"\n',
                                                    'path = "checkpoints/step-40"\nearly = true\n'), encoding="utf-8")
    marked = verify(pkg, parents=[runs.parent]).check("independence")
    assert marked.details["early_steps"] == [40] and marked.status == "passed"


def test_a_tensorboard_log_directory_is_read(runs: Runs, tmp_path: Path) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    pkg = _copy(runs, "honest", tmp_path)
    rows = (pkg / "logs" / "train.csv").read_text(encoding="utf-8").splitlines()[1:]
    writer = EventFileWriter(str(pkg / "logs" / "tb"))
    for row in rows:
        step, loss, _lr, tokens = row.split(",")
        writer.add_event(Event(step=int(step), wall_time=1.0e9 + int(step), summary=Summary(value=[
            Summary.Value(tag="train/loss", simple_value=float(loss)),
            Summary.Value(tag="train/tokens", simple_value=float(tokens))])))
    writer.close()
    text = (pkg / "evidence.toml").read_text(encoding="utf-8")
    text = text.replace(digest(Spec("file", "x", pkg / "logs" / "train.csv")).sha256,
                        digest(Spec("file", "x", pkg / "logs" / "tb")).sha256)
    text = text.replace('path = "logs/train.csv"\nformat = "csv"', 'path = "logs/tb"\nformat = "tensorboard"')
    (pkg / "evidence.toml").write_text(text, encoding="utf-8")
    v = verify(pkg)
    assert v.check("files").status == "passed" and v.check("first_loss").status == "passed"
    tokens = v.check("tokens").details
    assert v.check("tokens").status == "passed" and tokens["checked"] == len(rows) + 1 and tokens["off"] == 0
    (pkg / "logs" / "tb" / "events.out.tfevents.2.second").write_bytes(b"")  # two event files: which one?
    v = verify(pkg)
    assert v.check("first_loss").status == "not applicable" and "must hold one events file" in (
        v.check("first_loss").summary)
