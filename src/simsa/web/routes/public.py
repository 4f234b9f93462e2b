"""The public pages (no sign-in): programmes, stages with their decisions, gate results, the audit log and its
verification, and the files anyone may download. Everything is read in a read-only transaction; every page works
without scripts."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from simsa.services import audit_seal
from simsa.services import public_views as views
from simsa.web.deps import ReadSession, ViewerDep
from simsa.web.heavy import coalesced, whole_log
from simsa.web.render import page

router = APIRouter(include_in_schema=False)

SITE_ZONE = "Asia/Seoul"  # the audit log belongs to no programme: its times are shown in UTC and Korean time
LINEAGE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
_PLOTS: OrderedDict[tuple[str, str], dict[str, Markup | None]] = OrderedDict()
_PLOTS_LOCK = threading.Lock()
PLOT_CACHE_SIZE = 32


def _download(item: views.Download) -> Response:
    return Response(item.content, media_type=item.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{item.filename}"'})


def _pick(lang: str) -> Callable[..., str]:
    """A recorded name and its Korean variant, as the viewer's language wants it."""

    def pick(en: Any, ko: Any = None) -> str:
        return str(ko) if lang == "ko" and ko else str(en if en is not None else "")

    return pick


def _report_view(doc: views.DecisionDoc, page_data: views.StagePage, lang: str) -> dict[str, Any]:
    """The report's view model of a decision, its charts and, per team, the gate ids behind its gate rows."""
    from simsa.report.render import build_view, plot_markup

    view = build_view(doc.body, [a.to_dict() for a in page_data.appeals], [h.to_dict() for h in page_data.history],
                      lang, page_data.program.timezone)
    key = (hashlib.sha256(json.dumps([doc.id, doc.body], sort_keys=True).encode()).hexdigest(), lang)
    with _PLOTS_LOCK:
        plots = _PLOTS.get(key)
        if plots is None:
            plots = plot_markup(view)
            _PLOTS[key] = plots
            while len(_PLOTS) > PLOT_CACHE_SIZE:
                _PLOTS.popitem(last=False)
        else:
            _PLOTS.move_to_end(key)
    gate_ids = []
    for team in view["_teams"]:
        gates = team.get("gates") if isinstance(team.get("gates"), dict) else {}
        gate_ids.append((str(team.get("team")), [str(g) for g in gates]))
    history_ids = [h.decision_id for h in page_data.history]
    return {"v": view, "plots": plots, "gate_ids": gate_ids, "history_ids": history_ids}


def _stage_response(request: Request, data: views.StagePage, lang: str) -> Response:
    context: dict[str, Any] = {"data": data, "pick": _pick(lang), "http_url": views.http_url}
    if data.decision is not None:
        context.update(_report_view(data.decision, data, lang))
    return page(request, "public_stage.html.j2", **context)


# ---------------------------------------------------------------- pages


@router.get("/")
def index(request: Request, session: ReadSession, who: ViewerDep) -> Response:
    return page(request, "public_index.html.j2", programs=views.list_programs(session), pick=_pick(who.lang))


@router.get("/programs/{key}")
def program(request: Request, key: str, session: ReadSession, who: ViewerDep) -> Response:
    return page(request, "public_program.html.j2", p=views.program_overview(session, key), pick=_pick(who.lang))


@router.get("/programs/{key}/ecosystem")
def ecosystem(request: Request, key: str, session: ReadSession, who: ViewerDep) -> Response:
    """The programme's hub signals over time: every metric's series, the derivative tree, what each number is."""
    from simsa.report import ecosystem_section
    from simsa.services import ecosystem as ecosystem_service

    overview = views.program_overview(session, key)  # an unknown programme is a 404 here
    view = ecosystem_service.report_view(session, overview.key)
    section = Markup(ecosystem_section.html(view, who.lang))  # every outside text escaped where it is built
    return page(request, "public_ecosystem.html.j2", p=overview, pick=_pick(who.lang), section=section,
                taken=len(view.series[0].points) if view.series else 0)


@router.get("/programs/{key}/ecosystem.json")
def ecosystem_json(key: str, session: ReadSession) -> Response:
    from simsa.services import ecosystem as ecosystem_service

    overview = views.program_overview(session, key)
    body = json.dumps(ecosystem_service.report_view(session, overview.key).to_dict(), ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json")


@router.get("/programs/{key}/stages/{stage}")
def stage(request: Request, key: str, stage: str, session: ReadSession, who: ViewerDep) -> Response:
    return _stage_response(request, views.stage_page(session, key, stage), who.lang)


@router.get("/programs/{key}/stages/{stage}/decisions/{decision_id}")
def past_decision(request: Request, key: str, stage: str, decision_id: str, session: ReadSession,
                  who: ViewerDep) -> Response:
    return _stage_response(request, views.stage_page(session, key, stage, decision_id), who.lang)


@router.get("/programs/{key}/stages/{stage}/gates/{team}/{gate}")
def gate(request: Request, key: str, stage: str, team: str, gate: str, session: ReadSession,
         who: ViewerDep) -> Response:
    data = views.gate_page(session, key, stage, team, gate)
    lineage_html: Markup | None = None
    lineage_failed = False
    if data.lineage is not None:
        from simsa.report.lineage_report import render_lineage_body

        try:  # every string in it is escaped by render_lineage_body; a malformed result is only unreadable
            lineage_html = Markup(render_lineage_body(data.lineage, heading=3))
        except LINEAGE_ERRORS:
            lineage_failed = True
    return page(request, "public_gate.html.j2", data=data, pick=_pick(who.lang), http_url=views.http_url,
                lineage_html=lineage_html, lineage_failed=lineage_failed)


@router.get("/audit")
def audit(request: Request, session: ReadSession, who: ViewerDep) -> Response:
    params = request.query_params
    data = views.audit_page(session, params.get("page"), params.get("action"), params.get("actor"),
                            sealer=audit_seal.for_viewer(session, who.is_admin))
    return page(request, "public_audit.html.j2", data=data, zone=SITE_ZONE)


@router.get("/audit/verify")
def audit_verify(request: Request, session: ReadSession, who: ViewerDep) -> Response:
    result = coalesced(request, "verify-page", lambda: views.audit_verification(session))
    return page(request, "public_audit_verify.html.j2", result=result)


@router.get("/audit/export.json")
def audit_export(session: ReadSession, who: ViewerDep) -> Response:
    sealer = audit_seal.for_viewer(session, who.is_admin)
    return _download(whole_log(lambda: views.audit_export(session, sealer)))


@router.get("/audit/{seq}")
def audit_entry(request: Request, seq: str, session: ReadSession, who: ViewerDep) -> Response:
    e = views.audit_entry(session, seq, audit_seal.for_viewer(session, who.is_admin))
    return page(request, "public_audit_entry.html.j2", e=e, zone=SITE_ZONE)


# ---------------------------------------------------------------- downloads


@router.get("/programs/{key}/stages/{stage}/report.{fmt}")
def report(request: Request, key: str, stage: str, fmt: str, session: ReadSession) -> Response:
    params = request.query_params
    return _download(views.report_download(session, key, stage, fmt, params.get("lang"), params.get("id")))


@router.get("/programs/{key}/stages/{stage}/decision.json")
def decision_json(request: Request, key: str, stage: str, session: ReadSession) -> Response:
    return _download(views.decision_download(session, key, stage, request.query_params.get("id")))


@router.get("/programs/{key}/stages/{stage}/scores.csv")
def scores_csv(key: str, stage: str, session: ReadSession) -> Response:
    return _download(views.scores_csv(session, key, stage))


@router.get("/programs/{key}/stages/{stage}/gates/{team}/{gate}/lineage.json")
def lineage_json(key: str, stage: str, team: str, gate: str, session: ReadSession) -> Response:
    return _download(views.lineage_download(session, key, stage, team, gate))


@router.get("/programs/{key}/versions/{version_id}.toml")
def version_toml(key: str, version_id: str, session: ReadSession) -> Response:
    return _download(views.version_text(session, key, version_id))
