"""The arena's JSON API (filled in by the arena API work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
