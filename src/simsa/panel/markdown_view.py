"""Markdown reports rendered to HTML that is safe to put in an expert's page.

Two independent layers: the parser does not pass raw HTML through (it shows as text), and its output is cleaned by
nh3 against an explicit allowlist, so a bug in one layer is not an injection. Links keep only http, https and mailto
targets and are marked `nofollow`; images are replaced by their alt text, since the page's content security policy
forbids external loads and an image URL would tell the author who is reading. Masking runs on the source, before
parsing, so a team name cannot survive inside a link target or a code span.
"""

from __future__ import annotations

from html import escape

import nh3
from markdown_it import MarkdownIt

from simsa.errors import InputError
from simsa.panel.blinding import Masker

MAX_MARKDOWN_BYTES = 2 * 1024 * 1024
ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "code", "pre", "blockquote", "ul", "ol",
    "li", "a", "table", "thead", "tbody", "tr", "th", "td", "del", "s",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"


def _image_as_alt(self, tokens, idx, options, env) -> str:  # markdown-it renderer rule signature
    return escape(self.renderInlineAsText(tokens[idx].children or [], options, env))


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    md.add_render_rule("image", _image_as_alt)
    return md


_MD = _parser()


def _only_safe_links(tag: str, attr: str, value: str) -> str | None:
    if tag == "a" and attr == "href":
        scheme = value.split(":", 1)[0].strip().lower() if ":" in value else ""
        return value if scheme in URL_SCHEMES else None
    return value


def render_markdown(text: str, masker: Masker | None = None) -> str:
    """Sanitised HTML for a Markdown document (at most 2 MB), with the team's terms masked when a masker is given."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MARKDOWN_BYTES:
        raise InputError(f"the Markdown document is over {MAX_MARKDOWN_BYTES // (1024 * 1024)} MB")
    if masker is not None:
        text = masker.mask(text)
    html = _MD.render(text)
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_only_safe_links,
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",
        link_rel=LINK_REL,
        strip_comments=True,
    )
