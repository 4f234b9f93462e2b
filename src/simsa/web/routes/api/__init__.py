"""The JSON API under /api/v1: the CLI's reads and writes over the same services, documented by OpenAPI at
/api/v1/openapi.json. Reads are public; writes need an API token of a role allowed to make them; errors have the
CLI's `--json` shape ({"error", "exit_code", "status"})."""

from __future__ import annotations

from fastapi import APIRouter

from simsa.web.routes.api import arena, audit, panel, programs, stages, writes
from simsa.web.routes.api.common import BoundedRoute

router = APIRouter(prefix="/api/v1", route_class=BoundedRoute)
for _part in (programs, stages, writes, panel, arena, audit):
    router.include_router(_part.router)
