"""The public pages' words: both catalogues hold the same keys, the page templates and scripts
use only keys the catalogues hold and carry no text of their own, and a request gets the
language it asks for (?lang, remembered in a cookie), else its browser's, else Dutch."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import get_args

import pytest
from fastapi.testclient import TestClient

from controller.dashboard import i18n
from controller.registry.models import ModuleType
from tests.opendata_helpers import make_street, street_api

STATIC = i18n.HERE / "static"
# values the server adds to the catalogue's words (controller/dashboard/routes.py)
PAGE_VALUES = {"lang", "base", "licence", "licence_url", "attribution", "contact"}


def test_both_catalogues_have_the_same_keys_and_no_empty_text() -> None:
    nl, en = i18n.catalogue("nl"), i18n.catalogue("en")
    assert set(nl) == set(en), f"only in one: {sorted(set(nl) ^ set(en))}"
    for lang, words in (("nl", nl), ("en", en)):
        assert all(isinstance(v, str) and v.strip() for v in words.values()), lang
    for k in nl:  # the same placeholders in both, or a text would miss a value
        assert set(re.findall(r"\{(\w+)\}", nl[k])) == set(re.findall(r"\{(\w+)\}", en[k])), k
    untranslated = [k for k in nl if nl[k] == en[k] and re.search(r"[a-z]{4,} [a-z]{4,}", nl[k])]
    assert not untranslated, f"the same sentence in both languages: {untranslated}"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


@pytest.mark.parametrize("name", ["portal.html", "opendata.html"])
def test_templates_hold_no_text_of_their_own(name: str) -> None:
    text = (i18n.TEMPLATES / name).read_text(encoding="utf-8")
    keys = set(re.findall(r"\$(\w+)", text))
    assert keys - PAGE_VALUES <= set(i18n.catalogue("nl")), keys - set(i18n.catalogue("nl"))
    parser = _Text()
    parser.feed(text)
    left = [c.strip() for c in parser.chunks if re.sub(r"\$\w+|[\s.:;,()–-]", "", c)]
    assert not left, f"text outside the catalogue in {name}: {left}"
    for lang in i18n.LANGS:  # every key filled (string.Template raises on a missing one)
        page = i18n.render(name, lang, **dict.fromkeys(PAGE_VALUES - {"lang"}, "x"))
        assert "$" not in page and f'<html lang="{lang}">' in page


def _js_keys() -> Iterator[tuple[str, str]]:
    for path in sorted((STATIC / "js").glob("*.js")):
        src = path.read_text(encoding="utf-8")
        if 'from "./i18n.js"' not in src:
            continue
        for m in re.finditer(r"\bt\(\s*\"(\w+)\"", src):
            yield path.name, m.group(1)
        for m in re.finditer(r"\[\"(\w+)\", (?:links\.\w+|\"/)", src):  # [key, url] tables
            yield path.name, m.group(1)


def test_scripts_use_only_keys_the_catalogues_hold() -> None:
    used = list(_js_keys())
    assert len(used) > 40  # the scan finds the scripts' words at all
    missing = [(f, k) for f, k in used if k not in i18n.catalogue("nl")]
    assert not missing, missing
    # keys built at run time: one per module type
    for t in get_args(ModuleType):
        assert f"cat_{t}" in i18n.catalogue("nl"), t


def test_catalogues_are_served_as_the_scripts_load_them(client: TestClient) -> None:
    for lang in i18n.LANGS:
        r = client.get(f"/ui/i18n/{lang}.json")
        assert r.status_code == 200 and json.loads(r.text) == i18n.catalogue(lang)


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, None),
        ("nl-NL,nl;q=0.9,en;q=0.8", "nl"),
        ("en-GB,en;q=0.9", "en"),
        ("de-DE,en;q=0.5,nl;q=0.7", "nl"),
        ("de-DE,fr;q=0.9", None),
        ("en;q=0,nl;q=0.1", "nl"),
        ("EN-us", "en"),
        ("nl;q=abc,en", "en"),
    ],
)
def test_accept_language(header: str | None, want: str | None) -> None:
    assert i18n.accepted(header) == want


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    d = tmp_path_factory.mktemp("portal-i18n")
    make_street(d, poles=2, days=0.05, period_s=600)
    with street_api(d) as api:
        yield api.client


def _lang(html: str) -> str:
    m = re.search(r'<html lang="(\w+)">', html)
    assert m, html[:200]
    return m.group(1)


@pytest.mark.parametrize("path", ["/portal", "/opendata"])
def test_language_of_a_request(client: TestClient, path: str) -> None:
    client.cookies.clear()
    plain = client.get(path)
    assert plain.status_code == 200 and _lang(plain.text) == "nl"  # Dutch by default
    assert i18n.catalogue("nl")["nav_api_docs"] in plain.text
    assert "Accept-Language" in plain.headers["vary"]
    assert _lang(client.get(path, headers={"Accept-Language": "en-US,en"}).text) == "en"
    assert _lang(client.get(path, headers={"Accept-Language": "de, nl;q=0.5"}).text) == "nl"
    asked = client.get(path + "?lang=en", headers={"Accept-Language": "nl"})
    assert _lang(asked.text) == "en" and i18n.COOKIE in asked.headers["set-cookie"]
    assert i18n.catalogue("en")["nav_api_docs"] in asked.text
    # remembered: the next visit without ?lang, whatever the browser says
    assert _lang(client.get(path, headers={"Accept-Language": "nl"}).text) == "en"
    assert _lang(client.get(path + "?lang=nl").text) == "nl"
    assert _lang(client.get(path).text) == "nl"
    assert _lang(client.get(path + "?lang=xx").text) == "nl"  # unknown: ignored, not an error
    client.cookies.clear()


def test_opendata_page_links_and_licence(client: TestClient) -> None:
    html = client.get("/opendata?lang=en").text
    for path in ("/sta/v1.1", "/opendata/v1/latest", "/opendata/v1/register.csv", "/docs"):
        assert f'{path}"' in html, path
    assert 'rel="license"' in html and "CC-BY-4.0" in html and "/ui/css/portal.css" in html
    client.cookies.clear()


def test_static_pages_are_not_served_as_templates() -> None:
    assert not (STATIC / "portal.html").exists()  # a template would show its $keys at /ui
    assert Path(i18n.TEMPLATES / "portal.html").exists()
