"""Jinja2 templates rendered in the reader's language, with the catalogue of visio."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from babel.dates import format_date
from markupsafe import Markup, escape

from visio.access import Principal
from visio.domain.kinds import Role
from visio.i18n import LANGUAGES, catalogue
from visio.web import session

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGE_NAMES = {"fr": "Français", "nl": "Nederlands", "en": "English"}


def environment() -> jinja2.Environment:
    """The templates, autoescaped; page texts come from ``_()`` calls in them."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def translator(language: str) -> Any:
    """``_("Text {name}", name=...)`` in templates: translated, then formatted."""
    texts = catalogue(language)

    def gettext(msgid: str, /, **params: Any) -> str:
        text = texts.gettext(msgid)
        if any(isinstance(value, Markup) for value in params.values()):
            # A macro's output is already escaped: formatting through Markup escapes the
            # sentence and plain values once and keeps it as it is (str.format would
            # have the page escape it a second time: « l&#39;agent » on screen).
            return escape(text).format(**params)
        return text.format(**params) if params else text

    return gettext


def render(request: web.Request, template: str, *, status: int = 200,
           who: Principal | None = None, lang: str | None = None,
           **context: Any) -> web.Response:
    """A page in the reader's language, with the language switch and the CSRF token.

    ``lang`` is the page's language when the reader chose none with the switch (the
    usager's page speaks the usager's language until they pick another).
    """
    from visio.keys import templates_key

    if lang is None or request.cookies.get(session.LANG_COOKIE, "") in LANGUAGES:
        lang = session.language(request)
    here = request.path_qs
    body = request.app[templates_key].get_template(template).render(
        _=translator(lang), lang=lang, who=who, Role=Role, csrf=session.csrf_token(request),
        here=here, fdate=lambda d: format_date(d, format="full", locale=lang),
        ftime=lambda t: t.strftime("%H:%M"),
        languages=[(code, LANGUAGE_NAMES[code], f"/lang?to={code}&next={quote(here)}")
                   for code in LANGUAGES],
        **context)
    response = web.Response(status=status, text=body, content_type="text/html")
    response.headers["Content-Language"] = lang
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    # Scripts, styles and media of this origin only (the signaling socket is same-origin).
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'")
    session.remember_browser(request, response)
    return response
