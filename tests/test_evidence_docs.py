"""Evidence documents: the lineage comparison an originality gate was decided from, kept in the store by the sha256 of
its bytes and linked from the gate result, through each way in — `simsa gate from-lineage` with a file (its exact
bytes), the API with data (canonical JSON) — and out (the API and the public download serve it byte for byte); a
voided or hand-recorded result has none; `audit verify` covers the documents, and a database from before they
existed upgrades and still verifies.

The lineage results are real `lineage compare` results of two tiny Llama checkpoints (one a fine-tune of the other),
built once for the module; `lineage_result` is shared with the web tests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from cli_inproc import run
from helpers import EXAMPLE
from simsa.audit.chain import canonical
from simsa.audit.log import Write, append_many, plain_values
from simsa.program.loader import load_program
from simsa.services import evidence_docs, programs
from simsa.store.db import Store, head_revision
from simsa.store.models import AuditEntry, EvidenceDocument, GateResult
from web_support import LiveSite

STAGE = "stage-1"
PROGRAM = "k-ai-2026"


def lineage_result(root: Path, candidate_path: str | None = None) -> dict:
    """A real `lineage compare` result of two tiny Llama checkpoints written under `root` (the candidate a fine-tune
    of the reference: every team of the example programme fails originality on it, no review needed)."""
    from safetensors.numpy import save_file

    from simsa.lineage.compare.result import compare_paths  # scipy: loaded when a test asks, not on collection
    from simsa.lineage.stats.correspondence import SamplingSettings

    d, f, v, layers = 32, 64, 64, 2
    config = {"model_type": "llama", "hidden_size": d, "intermediate_size": f, "num_hidden_layers": layers,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": v, "rms_norm_eps": 1e-6,
              "architectures": ["LlamaForCausalLM"]}
    rng = np.random.default_rng(3)
    base = {"model.embed_tokens.weight": rng.normal(0, 0.02, (v, d)), "model.norm.weight": 1 + rng.normal(0, 0.05, d),
            "lm_head.weight": rng.normal(0, 0.02, (v, d))}
    for i in range(layers):
        p = f"model.layers.{i}"
        base |= {f"{p}.self_attn.{m}_proj.weight": rng.normal(0, 0.02, (d, d)) for m in "qkvo"}
        base |= {f"{p}.mlp.gate_proj.weight": rng.normal(0, 0.02, (f, d)),
                 f"{p}.mlp.up_proj.weight": rng.normal(0, 0.02, (f, d)),
                 f"{p}.mlp.down_proj.weight": rng.normal(0, 0.02, (d, f)),
                 f"{p}.input_layernorm.weight": 1 + rng.normal(0, 0.05, d),
                 f"{p}.post_attention_layernorm.weight": 1 + rng.normal(0, 0.05, d)}
    noise = np.random.default_rng(9)
    tuned = {k: w + noise.normal(0, 0.004, w.shape) for k, w in base.items()}
    paths = []
    for name, tensors in (("candidate", tuned), ("reference", base)):
        path = root / name
        path.mkdir()
        save_file({k: np.asarray(w, np.float32) for k, w in tensors.items()}, str(path / "model.safetensors"))
        (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
        paths.append(path)
    result = compare_paths(paths[0], paths[1], settings=SamplingSettings(draws=8))
    if candidate_path is not None:
        result["candidate"]["path"] = candidate_path
    return result


@pytest.fixture(scope="module")
def lineage(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return lineage_result(tmp_path_factory.mktemp("lineage"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def from_lineage(db: str, path: Path, team: str, *extra: str) -> dict:
    return run("gate", "from-lineage", str(EXAMPLE), str(path), "--team", team, "--stage", STAGE, "--json", *extra,
               db=db).json()


def documents(store: Store) -> list[tuple[int, str, str]]:
    with store.session(readonly=True) as s:
        return [(d.id, d.sha256, d.content) for d in s.execute(select(EvidenceDocument).order_by(EvidenceDocument.id))
                .scalars()]


def gate_documents(store: Store, team: str) -> list[int | None]:
    with store.session(readonly=True) as s:
        return list(s.execute(select(GateResult.document_id).where(GateResult.team_id == team)
                              .order_by(GateResult.id)).scalars())


def verified(db: str) -> dict:
    out = run("audit", "verify", "--json", db=db)
    return json.loads(out.stdout) if out.code in (0, 1) and out.stdout.strip() else {"ok": False, "out": out}


# --------------------------------------------------------------------------- the command line: a file's bytes


def test_cli_keeps_the_file_once_by_its_sha256(lineage: dict, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'simsa.db'}"
    path = tmp_path / "jiri.json"
    path.write_text(json.dumps(lineage, ensure_ascii=False, indent=2), encoding="utf-8")
    raw = path.read_bytes()
    first = from_lineage(db, path, "jiri")
    assert first["lineage_sha256"] == sha256(raw)
    assert first["recorded"]["passed"] is False and sha256(raw)[:16] in first["recorded"]["evidence"]
    again = from_lineage(db, path, "jiri")
    assert again["recorded"]["supersedes"] == first["recorded"]["id"]

    # the same comparison saved with a byte-order mark is other bytes: a second document, still readable
    bom = tmp_path / "halla.json"
    bom.write_bytes(b"\xef\xbb\xbf" + raw)
    halla = from_lineage(db, bom, "halla")
    assert halla["lineage_sha256"] == sha256(bom.read_bytes()) != first["lineage_sha256"]

    store = Store(db)
    try:
        docs = documents(store)
        assert [(sha, content.encode("utf-8")) for _, sha, content in docs] == [
            (sha256(raw), raw), (sha256(bom.read_bytes()), bom.read_bytes())]
        assert gate_documents(store, "jiri") == [docs[0][0], docs[0][0]]  # recorded twice, stored once
        assert gate_documents(store, "halla") == [docs[1][0]]
        with store.session(readonly=True) as s:
            assert evidence_docs.lineage_for_gate(s, PROGRAM, STAGE, "jiri", "originality") == lineage
            assert evidence_docs.lineage_for_gate(s, PROGRAM, STAGE, "halla", "originality") == lineage
            assert evidence_docs.lineage_for_gate(s, PROGRAM, STAGE, "baekdu", "originality") is None
            stored = s.execute(select(func.count()).select_from(AuditEntry)
                               .where(AuditEntry.action == "evidence.store")).scalar_one()
            assert stored == 2
    finally:
        store.dispose()
    assert verified(db)["ok"]


# --------------------------------------------------------------------------- the API: data as canonical JSON


@pytest.fixture
def api_site(sqlite_site: LiveSite) -> Iterator[tuple[LiveSite, dict[str, str]]]:
    assert sqlite_site.store is not None
    with sqlite_site.store.session() as s:
        programs.register(s, load_program(EXAMPLE), "test")
    sqlite_site.account("secretariat", "admin")
    yield sqlite_site, {"Authorization": f"Bearer {sqlite_site.api_token('secretariat')}"}


def test_api_keeps_canonical_json_and_serves_it_until_replaced(lineage: dict, api_site: tuple[LiveSite, dict],
                                                               tmp_path: Path) -> None:
    site, admin = api_site
    assert site.store is not None
    api = "/api/v1"
    on_stage = f"{api}/programs/{PROGRAM}/stages/{STAGE}"
    text_of = canonical(lineage).encode("utf-8")
    digest = sha256(text_of)
    with site.client() as c:
        def post_lineage(team: str) -> dict:
            response = c.post(f"{api}/programs/{PROGRAM}/gates/lineage", headers=admin,
                              json={"stage": STAGE, "team": team, "lineage": lineage})
            assert response.status_code == 201, response.text
            return response.json()

        recorded = post_lineage("jiri")
        assert recorded["lineage_sha256"] == digest and digest[:16] in recorded["recorded"]["evidence"]
        post_lineage("jiri")
        post_lineage("halla")
        assert [(sha, content.encode("utf-8")) for _, sha, content in documents(site.store)] == [(digest, text_of)]

        served = c.get(f"{on_stage}/lineage/jiri/originality")
        assert served.status_code == 200 and served.content == text_of
        assert served.headers["x-content-sha256"] == digest and served.json() == lineage
        public = c.get(f"/programs/{PROGRAM}/stages/{STAGE}/gates/jiri/originality/lineage.json")
        assert public.content == text_of and digest in public.headers["content-disposition"]
        assert c.get(f"{on_stage}/lineage/baekdu/originality").status_code == 404  # never recorded from lineage

        # a void leaves the gate without a result, and so without a comparison
        current = c.get(f"{on_stage}/gates", params={"team": "jiri"}).json()["results"][0]
        voided = c.post(f"{api}/gates/{current['record_id']}/void", headers=admin, json={"reason": "wrong file"})
        assert voided.status_code == 201, voided.text
        assert c.get(f"{on_stage}/lineage/jiri/originality").status_code == 404
        assert c.get(f"/programs/{PROGRAM}/stages/{STAGE}/gates/jiri/originality/lineage.json").status_code == 404
        # decided from the comparison again, then superseded by a result recorded by hand
        post_lineage("jiri")
        assert c.get(f"{on_stage}/lineage/jiri/originality").status_code == 200
        by_hand = c.post(f"{api}/programs/{PROGRAM}/gates", headers=admin, json={
            "stage": STAGE, "team": "jiri", "gate": "originality", "passed": True, "evidence": "checked by hand"})
        assert by_hand.status_code == 201, by_hand.text
        assert c.get(f"{on_stage}/lineage/jiri/originality").status_code == 404
        with site.store.session(readonly=True) as s:
            assert evidence_docs.lineage_for_gate(s, PROGRAM, STAGE, "jiri", "originality") is None
            assert evidence_docs.document_for_gate(s, PROGRAM, STAGE, "halla", "originality") is not None
        assert len(documents(site.store)) == 1  # the same data every time: one document

        assert verified(site.db_url)["ok"]
        doc_id = documents(site.store)[0][0]
        with site.store.engine.begin() as conn:  # an edit behind the log's back
            conn.execute(text("UPDATE evidence_documents SET content = '{not json' WHERE id = :i"), {"i": doc_id})
        result = verified(site.db_url)
        assert not result["ok"]
        assert any(p["table"] == "evidence_documents" and p["row_id"] == doc_id for p in result["problems"]), result
        broken = c.get(f"{on_stage}/lineage/halla/originality")
        assert broken.status_code == 400 and f"evidence document {doc_id} is not JSON" in broken.json()["error"]


# --------------------------------------------------------------------------- a database from before documents


def _schema_at(url: str, revision: str) -> Store:
    """A store migrated only as far as `revision`, as an older simsa left it."""
    from alembic import command

    from simsa.store.db import _alembic_config

    store = Store(url, migrate=False)
    with store.engine.begin() as conn:
        cfg = _alembic_config(store.engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return store


def test_gate_results_from_before_documents_verify_after_the_upgrade(db_url: str, lineage: dict,
                                                                     tmp_path: Path) -> None:
    """Gate results written (and audited) at schema 0003 have no document_id in their audit snapshots: after the
    upgrade they read as having none, the log verifies, and a comparison recorded now supersedes one of them."""
    import datetime as dt

    old = _schema_at(db_url, "0003")
    table = GateResult.__table__
    later = ("document_id", "grade", "override_reason")  # columns added after 0003
    columns = [c for c in table.c if c.name not in later]  # the table as 0003 had it
    try:
        with Session(old.engine) as s:
            writes = []
            for team, passed in (("jiri", False), ("baekdu", True)):
                values = {"program_key": PROGRAM, "stage_id": STAGE, "team_id": team, "gate_id": "originality",
                          "passed": passed, "evidence": f"{team} checked by hand", "link": None, "example": False,
                          "recorded_at": dt.datetime(2026, 1, 10, 9, 0, tzinfo=dt.UTC), "recorded_by": "old",
                          "supersedes_id": None, "voided": False, "batch_id": None}
                row_id = s.execute(insert(table).values(**values).returning(table.c.id)).scalar_one()
                row = s.execute(select(*columns).where(table.c.id == row_id)).one()
                writes.append(Write("gate.record", entity="gate_results", entity_id=row_id,
                                    snapshot=plain_values(dict(row._mapping))))
            append_many(s, actor="old", writes=writes)
            s.commit()
    finally:
        old.dispose()

    assert verified(db_url)["ok"]  # the command upgrades the database first
    store = Store(db_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()
        assert gate_documents(store, "jiri") == [None]
    finally:
        store.dispose()
    path = tmp_path / "jiri.json"
    path.write_text(json.dumps(lineage, indent=2), encoding="utf-8")
    recorded = from_lineage(db_url, path, "jiri")["recorded"]
    assert recorded["supersedes"] is not None
    store = Store(db_url)
    try:
        docs = documents(store)
        assert gate_documents(store, "jiri") == [None, docs[0][0]] and docs[0][1] == sha256(path.read_bytes())
    finally:
        store.dispose()
    assert verified(db_url)["ok"]
