"""A stage decided with a real, closed expert panel, built through the services as the secretariat and the experts
would: expert accounts, declarations, balanced assignment, calibration on the anchors, round 1, a round-2
revision, closing, and the decision that records `panel:expert` from the panel.

`build_decided_panel` is shared by the report, CLI and web tests of the panel."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from helpers import write_bench_scores
from panel_support import PROGRAM, STAGE, csv_log, markdown_report, write_panel_program
from simsa import accounts
from simsa.program.loader import load_program
from simsa.services import decisions as decision_service
from simsa.services import gates as gate_service
from simsa.services import panel, panel_documents, panel_steps, programs, score_files
from simsa.services import scores as score_service
from simsa.store.db import Store

PASSWORD = "correct horse battery staple"
ADMIN = "panel-admin"
# Distinctive usernames, so a test can assert that none of them leaks into a public page or report.
EXPERTS = ("expert-ahn-seojin", "expert-baek-dohyun", "expert-choi-yuna", "expert-do-hana", "expert-eom-jiwoo")
SEVERITY = {"expert-ahn-seojin": 0, "expert-baek-dohyun": 1, "expert-choi-yuna": 0, "expert-do-hana": -1,
            "expert-eom-jiwoo": -2}  # level offset: lenient (+) or harsh (−)
QUALITY = {"baekdu": 4, "halla": 3, "jiri": 2, "seorak": 5, "taebaek": 3, "gaya": 3}
RECOGNISED = {("expert-ahn-seojin", "baekdu"), ("expert-choi-yuna", "baekdu"), ("expert-do-hana", "seorak")}
REVISED = ("expert-eom-jiwoo", "expert-do-hana")  # raise their round-1 levels by one in round 2
FAILING = "jiri"  # fails the originality gate


def _level(base: int, offset: int, crit_index: int, expert_index: int) -> int:
    wobble = 1 if (crit_index + 2 * expert_index) % 5 == 0 else 0
    return max(1, min(5, base + offset + wobble))


def _review(ctx: panel.PanelContext, levels: dict[str, int]) -> tuple[dict[str, int], dict[str, str]]:
    notes = {c.id: f"Level {levels[c.id]} for {c.name}: see the report's sections and the training log."
             for c in ctx.panel.criteria}
    return levels, notes


def _user_scores(path: Path, teams: list[str]) -> None:
    rows = [{"stage": STAGE, "team": team, "source": "panel:user", "value": 60 + 4 * i + 3 * j,
             "rater": f"user-{j + 1:02d}"} for i, team in enumerate(teams) for j in range(4)]
    path.write_text(json.dumps({"scores": rows}), encoding="utf-8")


def make_expert(store: Store, username: str) -> accounts.AccountView:
    """An active expert account, made as the secretariat would (invitation, then activation)."""
    with store.session() as s:
        _, token = accounts.invite(s, username=username, display_name=username.title(), role="expert", actor="test")
    with store.session() as s:
        return accounts.accept_invitation(s, token, PASSWORD)


def load_stage(store: Store, work: Path, deadline: dt.datetime) -> list[str]:
    """The example programme (stage 1's submission deadline at `deadline`) registered, with benchmark and user
    scores and originality gates recorded for every team the panel reviews; returns those teams."""
    path = write_panel_program(work, deadline)
    loaded = load_program(path)
    with store.session() as s:
        version, _ = programs.register(s, loaded, ADMIN)
        ctx = panel.context(s, PROGRAM, STAGE)
        teams = [t.id for t in ctx.teams]
        write_bench_scores(work / "bench.json", tuple(teams))
        _user_scores(work / "users.json", teams)
        for name in ("bench.json", "users.json"):
            score_service.add(s, version, loaded.program, score_files.parse_file(work / name), ADMIN)
        for team in teams:
            failed = team == FAILING
            gate_service.record(s, version, loaded.program, stage_id=STAGE, team_id=team, gate_id="originality",
                                passed=not failed, evidence="weights match a foreign base" if failed else
                                "independent of every registered reference", actor=ADMIN, link=None)
    return teams


def upload_anchors(store: Store) -> None:
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for anchor in ctx.anchors:
            panel_documents.upload(s, ctx, markdown_report(f"Anchor {anchor}", "an anonymous lab"), f"{anchor}.md",
                                   "report", ADMIN, anchor_id=anchor)


def upload_submissions(store: Store, when: dt.datetime) -> None:
    """Each team's report and training log, uploaded at `when` (before the deadline)."""
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for k, t in enumerate(ctx.teams):
            panel_documents.upload(s, ctx, markdown_report(t.name, t.members[0] if t.members else t.name),
                                   f"{t.id}-report.md", "report", f"team-{t.id}", team_id=t.id, now=when)
            panel_documents.upload(s, ctx, csv_log(first_loss=10.0 + k / 10), f"{t.id}-train.csv", "log",
                                   f"team-{t.id}", team_id=t.id, now=when)


def score_calibration(store: Store) -> None:
    """Every expert scores the anchors: the strong one high, the weak one low (they agree well)."""
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for j, name in enumerate(EXPERTS):
            for anchor in ctx.anchors:
                base = 5 if anchor.endswith("strong") else 1
                levels = {c.id: _level(base, 0, i, j) if base == 1 else base - ((i + j) % 7 == 0)
                          for i, c in enumerate(ctx.panel.criteria)}
                scores, notes = _review(ctx, levels)
                panel.submit_review(s, ctx, name, anchor, "calibration", scores, notes)


def score_round1(store: Store) -> None:
    """Every assigned expert locks a round-1 review: the team's quality shifted by the expert's severity."""
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for team, name in panel.assignments(s, ctx):
            j = EXPERTS.index(name)
            levels = {c.id: _level(QUALITY.get(team, 3), SEVERITY[name], i, j)
                      for i, c in enumerate(ctx.panel.criteria)}
            scores, notes = _review(ctx, levels)
            known = (name, team) in RECOGNISED
            panel.submit_review(s, ctx, name, team, "1", scores, notes,
                                identified="yes" if known else ("unsure" if j == 1 else "no"),
                                identified_as=ctx.team(team).name if known else None)


def score_round2(store: Store) -> None:
    """The two harshest experts revise their reviews of baekdu and halla upwards after the discussion."""
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for team, name in panel.assignments(s, ctx):
            if name not in REVISED or team not in ("baekdu", "halla"):
                continue
            first = panel.review_of(s, ctx, "1", team, name)
            assert first is not None
            levels = {k: min(5, v + 1) for k, v in first.review.scores.items()}
            scores, notes = _review(ctx, levels)
            panel.submit_review(s, ctx, name, team, "2", scores, notes, identified=first.review.identified,
                                identified_as=first.review.identified_as)


def _advance(store: Store, target: str) -> None:
    with store.session() as s:
        panel_steps.advance(s, panel.context(s, PROGRAM, STAGE), target, ADMIN)


def build_decided_panel(store: Store, work: Path, *, decide: bool = True) -> dict:
    """Stage 1 of the example programme with its panel run to the end (closed), and decided unless `decide` is
    False. Returns what tests need: program path and key, stage, expert usernames, teams, blind codes, the
    decision body (None when not decided) and the panel's admin preview (`result`, a dict)."""
    from simsa.services import panel_results

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    deadline = now - dt.timedelta(days=2)
    work.mkdir(parents=True, exist_ok=True)
    with store.session() as s:
        accounts.create_admin(s, ADMIN, PASSWORD, actor="test")
    for name in EXPERTS:
        make_expert(store, name)
    teams = load_stage(store, work, deadline)
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        for i, name in enumerate(EXPERTS):
            panel.declare(s, name, affiliations=[f"Example University {i + 1}"], relations=[], conflicts=[],
                          actor=name)
        panel.auto_assign(s, ctx, ADMIN)
    upload_anchors(store)
    upload_submissions(store, deadline - dt.timedelta(days=1))
    _advance(store, "calibration")
    score_calibration(store)
    _advance(store, "round1")
    score_round1(store)
    _advance(store, "round2")
    score_round2(store)
    _advance(store, "closed")
    with store.session() as s:
        ctx = panel.context(s, PROGRAM, STAGE)
        result = panel_results.compute(s, ctx).to_dict()
        codes = panel.codes(s, ctx)
    decision = None
    if decide:
        with store.session() as s:
            decision = decision_service.decide_and_store(s, programs.stored(s, PROGRAM), STAGE, ADMIN, at=now)
    return {"program": PROGRAM, "program_path": work / "k-ai-2026.toml", "stage": STAGE, "experts": list(EXPERTS),
            "teams": teams, "codes": codes, "admin": ADMIN, "password": PASSWORD, "decision": decision,
            "result": result, "decided_at": now}
