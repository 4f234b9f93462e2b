"""simsa's web platform: public pages, accounts and roles, and the JSON API, over the services the CLI uses.

`create_app` builds the FastAPI application; `WebSettings` is its configuration (see docs/web.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["WebSettings", "create_app"]

if TYPE_CHECKING:
    from simsa.web.app import create_app
    from simsa.web.settings import WebSettings


def __getattr__(name: str) -> Any:  # FastAPI loads only when the web app is wanted
    if name == "create_app":
        from simsa.web.app import create_app

        return create_app
    if name == "WebSettings":
        from simsa.web.settings import WebSettings

        return WebSettings
    raise AttributeError(name)
