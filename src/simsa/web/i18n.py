"""Web pages in Korean and English: the language a request wants, and the words for it.

The report's own labels (simsa.report.labels) are the base; each area of the site adds its words in
simsa.web.labels.<area>. A key missing from both is a programming error and fails loudly in tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from pkgutil import iter_modules

from simsa.report.labels import LABELS as REPORT_LABELS

LANGS = ("en", "ko")
LANG_COOKIE = "simsa_lang"


def _all_labels() -> dict[str, tuple[str, str]]:
    import simsa.web.labels as package

    merged: dict[str, tuple[str, str]] = dict(REPORT_LABELS)
    for info in sorted(iter_modules(package.__path__), key=lambda m: m.name):
        module = import_module(f"{package.__name__}.{info.name}")
        merged.update(getattr(module, "LABELS", {}))
    return merged


WEB_LABELS: Mapping[str, tuple[str, str]] = _all_labels()


def t(key: str, lang: str, **fields: object) -> str:
    """The label in `lang` ("en" or "ko"), with `{field}`s filled in."""
    en, ko = WEB_LABELS[key]
    text = ko if lang == "ko" else en
    return text.format(**fields) if fields else text


def pick_lang(query: str | None, cookie: str | None, accept_language: str | None, default: str) -> str:
    """?lang= wins, then the remembered choice, then the browser's first supported language, then the default."""
    for value in (query, cookie):
        if value in LANGS:
            return value
    for part in (accept_language or "").split(","):
        tag = part.split(";", 1)[0].strip().lower()[:2]
        if tag in LANGS:
            return tag
    return default
