"""Programmes: list, structure, versions and their texts and differences; loading and checking a program file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

import simsa.web.api_models as m
from simsa.errors import InputError
from simsa.program.loader import MAX_PROGRAM_BYTES, LoadedProgram, parse_program
from simsa.services import api_views, program_versions, programs
from simsa.web.deps import ReadSession
from simsa.web.routes.api.common import (
    DOCUMENT_TOKEN,
    ERRORS,
    READ_ERRORS,
    Admin,
    AnyWriter,
    BoundedRoute,
    actor,
    writing,
)

router = APIRouter(route_class=BoundedRoute, tags=["programmes"])


@router.get("/programs", response_model=m.ProgramList, summary="Programmes in the store")
def list_programs(session: ReadSession) -> dict:
    """Every programme with its name (from its newest version), time zone and newest version."""
    return {"programs": [p.to_dict() for p in api_views.program_summaries(session)]}


@router.get("/programs/{key}", response_model=m.ProgramDetail, responses=READ_ERRORS, summary="A programme")
def get_program(key: str, session: ReadSession) -> dict:
    """The programme's structure as its newest version defines it (teams, stages with criteria and gates, suites,
    time zone, and the whole parsed definition), and every stored version."""
    return api_views.program_detail(session, key).to_dict()


@router.get("/programs/{key}/versions", response_model=m.VersionList, responses=READ_ERRORS,
            summary="Stored versions of a programme")
def list_versions(key: str, session: ReadSession) -> dict:
    """Each version with id, sha256, when and by whom it was loaded, and the decisions made with it."""
    api_views.latest_row(session, key)
    return {"program": key, "versions": [v.to_dict() for v in program_versions.list_versions(session, key)]}


@router.get("/programs/{key}/versions/{version_id}", response_model=m.VersionText, responses=READ_ERRORS,
            summary="One version's text")
def get_version(key: str, version_id: int, session: ReadSession) -> dict:
    """The exact program file of a version (its sha256 is the hash of this text)."""
    return api_views.version_text(session, key, version_id).to_dict()


@router.get("/programs/{key}/diff", response_model=m.ProgramDiff, responses=READ_ERRORS,
            summary="What changed between two versions")
def diff(key: str, session: ReadSession,
         from_: Annotated[str | None, Query(alias="from", max_length=80, description="Version id or sha256 prefix "
                                            "(default: the version before `to`).")] = None,
         to: Annotated[str | None, Query(max_length=80, description="Version id or sha256 prefix (default: the "
                                         "newest).")] = None,
         text: Annotated[bool, Query(description="Also the unified diff of the files.")] = False) -> dict:
    """As `simsa program diff --json`: each change marked `rules` (can change who advances) or `cosmetic`."""
    return api_views.version_diff(session, key, from_, to, text=text).to_dict()


def _parse(body: m.ProgramIn) -> LoadedProgram:
    size = len(body.text.encode("utf-8"))
    if size > MAX_PROGRAM_BYTES:
        raise HTTPException(413, f"program text is {size} bytes; at most {MAX_PROGRAM_BYTES}")
    name = " ".join(body.source_name.split())
    if not name:
        raise InputError("source_name must not be blank")
    text = body.text[1:] if body.text.startswith("\ufeff") else body.text
    return parse_program(text, name)


@router.post("/programs/check", response_model=m.ProgramChecked, responses=ERRORS, dependencies=DOCUMENT_TOKEN,
             summary="Check a program file without storing it")
def check_program(body: m.ProgramIn, who: AnyWriter) -> dict:
    """As `simsa program check`: the file is validated (schema and cross-references); nothing is written."""
    loaded = _parse(body)
    return {"valid": True, "program": loaded.program.program.id, "name": loaded.program.program.name,
            "sha256": loaded.sha256, "warnings": [w.to_dict() for w in loaded.warnings]}


@router.post("/programs", response_model=m.ProgramLoaded, status_code=201, responses=ERRORS,
             dependencies=DOCUMENT_TOKEN, summary="Load a program file (admin)")
def load_program(request: Request, response: Response, body: m.ProgramIn, who: Admin) -> dict:
    """As `simsa program load`: validate and record this version (text and sha256), audited and idempotent
    (200 with `loaded: false` when the same text is already stored). Warns when a stage has a decision in force
    made under rules this version changes."""
    loaded = _parse(body)
    with writing(request) as session:
        reg = programs.register_with_warnings(session, loaded, actor(who))
        out = {"loaded": reg.created, "version_id": reg.version.id, "program": loaded.program.program.id,
               "name": loaded.program.program.name, "sha256": loaded.sha256,
               "warnings": [w.to_dict() for w in loaded.warnings],
               "decision_warnings": [w.to_dict() for w in reg.warnings]}
    if not reg.created:
        response.status_code = 200
    return out
