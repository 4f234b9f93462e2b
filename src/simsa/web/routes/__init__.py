"""The app's routers, one module per area: sign-in, public pages, team pages, administration, the JSON API."""

from __future__ import annotations

from importlib import import_module

from fastapi import APIRouter

AREAS = ("signin", "public", "team", "team_panel", "expert", "arena", "arena_stream", "admin", "panel_admin",
         "arena_admin", "account", "api")


def all_routers() -> list[APIRouter]:
    """Each area module's `router`, in a fixed order (an area not yet present is skipped)."""
    routers = []
    for name in AREAS:
        try:
            module = import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        routers.append(module.router)
    return routers
