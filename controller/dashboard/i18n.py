"""The public pages in Dutch and English: which language a request gets, and the pages' text
from one catalogue per language (static/i18n/<lang>.json, also read by the pages' scripts).

The HTML of a public page is a ``string.Template`` whose ``$keys`` name catalogue entries, so a
page arrives in its reader's language with ``<html lang>`` set, before any script runs, and a
catalogue without a key the page uses fails loudly (``KeyError``) rather than showing a gap.

Language, first that applies: ``?lang=`` (remembered in a cookie), the cookie, the browser's
``Accept-Language`` (the first of our languages it lists, by preference), else Dutch: the
portal is for the residents of a Dutch city."""

from __future__ import annotations

import json
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import Literal, get_args

from fastapi import Request
from fastapi.responses import HTMLResponse

Lang = Literal["nl", "en"]
LANGS: tuple[Lang, ...] = get_args(Lang)
DEFAULT: Lang = "nl"
COOKIE = "streetpole_lang"
COOKIE_AGE_S = 365 * 86400

HERE = Path(__file__).resolve().parent
CATALOGUES = HERE / "static" / "i18n"
TEMPLATES = HERE / "templates"


def _lang(value: str | None) -> Lang | None:
    v = (value or "").strip().lower()[:2]
    for lang in LANGS:
        if v == lang:
            return lang
    return None


def accepted(header: str | None) -> Lang | None:
    """The most preferred of our languages in an Accept-Language header (RFC 9110 12.5.4)."""
    best: tuple[float, int, Lang] | None = None
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        lang = _lang(tag)
        if lang is None:
            continue
        q = 1.0
        for p in params.split(";"):
            name, _, val = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if q > 0 and (best is None or (q, -i) > (best[0], best[1])):
            best = (q, -i, lang)
    return best[2] if best else None


def choose(request: Request) -> tuple[Lang, bool]:
    """The request's language, and whether it was asked for in the URL (then remembered)."""
    asked = _lang(request.query_params.get("lang"))
    if asked:
        return asked, True
    return (
        _lang(request.cookies.get(COOKIE))
        or accepted(request.headers.get("accept-language"))
        or DEFAULT
    ), False


@cache
def catalogue(lang: Lang) -> dict[str, str]:
    data: dict[str, str] = json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))
    return data


@cache
def _template(name: str) -> Template:
    # read once per process, as the catalogues are: a page and its words always match, even
    # while an upgrade replaces the files under a running server
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(name: str, lang: Lang, **values: str) -> str:
    """A template of templates/ in ``lang``; ``values`` (escaped here) add to the catalogue."""
    words = {k: escape(v) for k, v in catalogue(lang).items()}
    words.update({k: escape(v) for k, v in values.items()})
    words["lang"] = lang
    return _template(name).substitute(words)


def page(request: Request, name: str, headers: dict[str, str], **values: str) -> HTMLResponse:
    """A public page in the request's language; a language asked for in the URL is kept."""
    lang, asked = choose(request)
    resp = HTMLResponse(
        render(name, lang, **values), headers={**headers, "Vary": "Accept-Language, Cookie"}
    )
    if asked:
        resp.set_cookie(COOKIE, lang, max_age=COOKIE_AGE_S, samesite="lax")
    return resp


__all__ = ["LANGS", "Lang", "accepted", "catalogue", "choose", "page", "render"]
