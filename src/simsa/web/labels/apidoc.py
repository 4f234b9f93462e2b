"""The API reference page."""

from __future__ import annotations

LABELS: dict[str, tuple[str, str]] = {
    "apidoc_title": ("JSON API reference", "JSON API 안내"),
    "apidoc_intro": (
        "Everything the command line does, over HTTP under /api/v1. Reads are public; writes need an API token "
        "(made on your account page) sent as Authorization: Bearer …, and are recorded in the audit log under "
        "your account. Errors have the command line's --json shape: {\"error\": …, \"exit_code\": …}.",
        "명령줄 도구의 모든 기능을 /api/v1 아래 HTTP로 제공합니다. 조회는 공개이며, 기록에는 계정 페이지에서 만든 API "
        "토큰을 Authorization: Bearer … 로 보내야 하고, 감사 기록에 계정 이름으로 남습니다. 오류는 명령줄의 --json "
        "형식({\"error\": …, \"exit_code\": …})으로 돌려줍니다."),
    "apidoc_schema": ("OpenAPI schema (JSON)", "OpenAPI 스키마 (JSON)"),
    "apidoc_token": ("API token", "API 토큰 필요"),
    "apidoc_public": ("public", "공개"),
    "apidoc_field": ("Field", "항목"),
    "apidoc_in": ("In", "위치"),
    "apidoc_type": ("Type", "형식"),
    "apidoc_required": ("Required", "필수"),
    "apidoc_description": ("Description", "설명"),
    "apidoc_responses": ("Responses", "응답"),
}
