"""Pages: one Jinja environment (autoescaped, strict), the frame every page shares, and the cookies a response
carries back (language choice, the pre-sign-in CSRF token)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from simsa.timeutil import format_local
from simsa.web.deps import CSRF_COOKIE, CSRF_FIELD, Viewer, settings, viewer
from simsa.web.i18n import LANG_COOKIE, LANGS, WEB_LABELS, t


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("simsa.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(format_local=format_local, CSRF_FIELD=CSRF_FIELD, LANGS=LANGS)
    return env


def secure_cookies(request: Request) -> bool:
    policy = settings(request).secure_cookies
    return policy == "always" or (policy == "auto" and request.url.scheme == "https")


def lang_url(request: Request, lang: str) -> str:
    """This page in another language (the query string kept, ?lang= replaced)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", lang)]
    return f"{request.url.path}?{urlencode(query)}"


def finish(request: Request, response: Response) -> Response:
    """Set the cookies this request decided on: a ?lang= choice is remembered; a new CSRF token is handed out."""
    chosen = request.query_params.get("lang")
    if chosen in LANGS:
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, samesite="lax", httponly=True,
                            secure=secure_cookies(request))
    new_csrf = getattr(request.state, "new_csrf_cookie", None)
    if new_csrf:
        response.set_cookie(CSRF_COOKIE, new_csrf, samesite="strict", httponly=True, secure=secure_cookies(request))
    return response


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """Render a page in the viewer's language with the shared frame's variables."""
    who: Viewer = viewer(request)
    lang = who.lang

    def tr(key: str, **fields: object) -> str:
        return t(key, lang, **fields)

    html = environment().get_template(template).render(
        request=request, who=who, lang=lang, t=tr, lang_url=lambda code: lang_url(request, code),
        csrf_token=who.csrf_token, done=done_message(request, lang), **context)
    return finish(request, HTMLResponse(html, status_code=status_code))


def done_message(request: Request, lang: str) -> str | None:
    """The confirmation a redirect asked for: only labels named done_*, never text from the URL itself."""
    key = request.query_params.get("done") or ""
    return t(key, lang) if key.startswith("done_") and key in WEB_LABELS else None


def redirect(request: Request, url: str, done: str | None = None) -> Response:
    """After a successful form post: see-other to a page (a reload then does not post twice); `done` names a
    done_* label to confirm what happened."""
    if done:
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}{urlencode({'done': done})}"
    return finish(request, RedirectResponse(url, status_code=303))
