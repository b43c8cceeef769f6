"""The public portal in headless Chromium against the demo street (controller/opendata/demo.py)
served by uvicorn: Dutch by default and English on request, remembered; markers coloured by
the chosen quantity's latest value against its WHO guideline, grey where nothing is recent;
a marker opened with the keyboard; the privacy statement says what the register says; and no
text on the page comes from anywhere but the catalogue of its language (or is data)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from controller.app import create_app
from controller.dashboard import i18n
from controller.opendata.demo import populate
from controller.registry.db import Registry
from controller.settings import Settings
from controller.store.sqlite import SqliteStore
from protocols.quantity_info import INFO
from tests.harness.server import serve
from tests.opendata_helpers import make_street
from tests.test_dashboard_e2e import CHROMIUM_ARGS, chromium

pytestmark = pytest.mark.slow  # a browser: about half a minute for the module

POLES = 12
STALE = f"RTD-{POLES:04d}"  # a pole whose last readings are six hours old


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("portal")
    make_street(d, poles=POLES, days=0.25, period_s=600)
    reg = Registry(f"sqlite:///{d / 'registry.db'}", run_migrations=False)
    store = SqliteStore(d / "streetpole.db")
    try:  # one more pole, silent for six hours: its marker must say so
        populate(
            reg, store, poles=POLES + 1, days=0.1, period_s=600, end=int(time.time()) - 6 * 3600
        )
    finally:
        store.close()
        reg.close()
    s = Settings(
        data_dir=d,
        database_url=f"sqlite:///{d / 'registry.db'}",
        _env_file=None,
        ingest_enabled=False,
        dispatch_enabled=False,
        opendata_rate_limit=False,
    )
    with serve(create_app(s)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A browser context in one language, with the page's errors collected."""

    def __init__(self, browser: Any, locale: str, width: int = 1280, height: int = 800) -> None:
        self.ctx = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def open(self, url: str) -> Any:
        from playwright.sync_api import expect

        self.page.goto(url)
        expect(self.page.locator(".leaflet-marker-icon")).to_have_count(POLES + 1)
        expect(self.page.locator("#privacy-body table")).to_be_visible()
        return self.page

    def close(self) -> None:
        self.ctx.close()
        assert not self.errors, self.errors[:5]


@pytest.fixture
def nl_page(browser: Any) -> Iterator[Page]:
    p = Page(browser, "nl-NL")
    yield p
    p.close()


def test_language_switch_remembered(site: str, browser: Any, nl_page: Page) -> None:
    from playwright.sync_api import expect

    page = nl_page.open(site + "/portal")
    nl, en = i18n.catalogue("nl"), i18n.catalogue("en")
    assert page.locator("html").get_attribute("lang") == "nl"
    expect(page.locator("h1")).to_have_text(nl["portal_title"])
    expect(page.locator(".langs a[aria-current]")).to_have_text("Nederlands")
    expect(page.get_by_label(nl["map_show"])).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(page.locator("h1")).to_have_text(en["portal_title"])
    assert page.locator("html").get_attribute("lang") == "en"
    expect(page.get_by_label(en["map_show"])).to_be_visible()
    expect(page.locator("#privacy-h")).to_have_text(en["privacy_heading"])
    # remembered: a later visit without ?lang, from a Dutch browser, stays English
    page.goto(site + "/opendata")
    expect(page.locator("h1")).to_have_text(en["od_title"])
    page.goto(site + "/portal")
    expect(page.locator("h1")).to_have_text(en["portal_title"])
    # an English browser that never chose gets English; any other gets Dutch
    for locale, title in (("en-GB", en["portal_title"]), ("de-DE", nl["portal_title"])):
        other = Page(browser, locale)
        other.open(site + "/portal")
        expect(other.page.locator("h1")).to_have_text(title)
        other.close()


def _band(q: str, v: float) -> int:
    g = INFO[q].guidelines[0].value
    return sum(v * INFO[q].display_scale >= c for c in (g / 2, g, 2 * g))


def test_markers_coloured_by_value(site: str, nl_page: Page) -> None:
    from playwright.sync_api import expect

    page = nl_page.open(site + "/portal")
    geo = httpx.get(site + "/opendata/v1/poles.geojson", timeout=10).json()
    latest = {
        f["id"]: {x["quantity"]: x["result"] for x in f["properties"]["latest"]}
        for f in geo["features"]
    }
    expect(page.locator("#quantity")).to_have_value("pm25")  # a first visit: PM2.5
    expect(page.locator("#legend")).to_contain_text("WHO")
    expect(page.locator("#legend")).to_contain_text("15 µg/m³")
    colours: dict[int, set[str]] = {}
    for pid, values in latest.items():
        dot = page.locator(f'.leaflet-marker-icon[data-pole="{pid}"] .pole-marker')
        label = page.locator(f'.leaflet-marker-icon[data-pole="{pid}"]').get_attribute("aria-label")
        if pid == STALE:
            expect(dot).to_have_class(re.compile(r"\bq-none\b"))
            assert label == f"Paal {pid}: Fijnstof PM2,5, geen recente waarde"
            continue
        band = _band("pm25", values["pm25"])
        expect(dot).to_have_class(re.compile(rf"\bb{band}\b"))
        # the page rounds halves up (toFixed), Python's format to even: 10.5 is "11" there
        assert dot.inner_text() == str(math.floor(values["pm25"] + 0.5))
        assert label and label.startswith(f"Paal {pid}: Fijnstof PM2,5 ")
        colours.setdefault(band, set()).add(
            dot.evaluate("e => getComputedStyle(e).backgroundColor")
        )
    assert len(colours) >= 2, f"the demo street should span bands: {colours}"
    assert all(len(c) == 1 for c in colours.values()), colours  # one colour per band
    assert len(set().union(*colours.values())) == len(colours)  # a colour per band
    # another quantity: noise on every second pole; the others say they do not measure it
    page.locator("#quantity").select_option("LAeq")
    expect(page.locator("#legend")).to_contain_text("53 dB(A)")
    for pid, values in latest.items():
        dot = page.locator(f'.leaflet-marker-icon[data-pole="{pid}"] .pole-marker')
        if "LAeq" in values and pid != STALE:
            expect(dot).to_have_class(re.compile(rf"\bb{_band('LAeq', values['LAeq'])}\b"))
        else:
            expect(dot).to_have_class(re.compile(r"\bq-none\b"))
    # no guideline: from lowest to highest, and the choice is kept for the next visit
    page.locator("#quantity").select_option("temperature")
    expect(page.locator("#legend")).to_contain_text("Temperatuur: van laagste naar hoogste")
    assert "null" not in page.locator("#legend").inner_text()
    page.reload()
    expect(page.locator("#quantity")).to_have_value("temperature")


def test_marker_opened_with_the_keyboard(site: str, nl_page: Page) -> None:
    from playwright.sync_api import expect

    page = nl_page.open(site + "/portal")
    pid = "RTD-0001"
    page.locator(f'.leaflet-marker-icon[data-pole="{pid}"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator("#pole-h")).to_have_text(f"Paal {pid}")
    assert page.evaluate("document.activeElement.id") == "pole-h"  # read from the heading on
    table = page.locator("#pole-latest")
    expect(table).to_contain_text("Fijnstof PM2,5")
    expect(table).to_contain_text("µg/m³")
    expect(table).to_contain_text("Lichtniveau")
    text = table.inner_text()
    assert "illuminanceLevel" not in text and "Cel" not in text and " / " not in text
    expect(page.locator("#chart-pm25 canvas").first).to_be_visible()
    page.keyboard.press("Escape")  # and back to the marker it came from
    assert page.evaluate("document.activeElement.dataset.pole") == pid
    # pole ids do not wrap in the list
    cell = page.locator("#pole-list td.pole-id").first
    assert cell.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"


def test_privacy_statement_says_what_the_register_says(site: str, nl_page: Page) -> None:
    register = httpx.get(site + "/opendata/v1/register", timeout=10).json()["value"]
    personal = {e["category"] for e in register if e["containsPersonalInfoData"]}
    assert personal == {"camera", "other"}  # the demo register: a camera, a Wi-Fi counter
    page = nl_page.open(site + "/portal")
    body = page.locator("#privacy-body")
    intro = body.locator("p").first.inner_text()
    assert f"sensorregister ({len(register)} modules)" in intro
    first = body.locator("li").first.inner_text()
    assert first.startswith("Modules die persoonsgegevens verzamelen")
    for sensor in ("camera", "wifi-counter"):
        assert sensor in first, first
    for cat in {e["category"] for e in register}:
        mine = [e for e in register if e["category"] == cat]
        n, held = len(mine), sum(e["containsPersonalInfoData"] for e in mine)
        opened = sum(e["isOpenData"] for e in mine)
        cells = body.locator(f'tbody tr[data-category="{cat}"] td')
        assert cells.nth(1).inner_text() == str(n), cat
        assert cells.nth(4).inner_text() == (f"ja ({held} van {n})" if held else "nee"), cat
        if held == n:
            assert cells.nth(5).inner_text() == "nooit (persoonsgegevens)", cat
            assert f"{i18n.catalogue('nl')[f'cat_{cat}']} (" in first or cat == "camera"
        elif opened == n:
            assert cells.nth(5).inner_text() == "ja", cat
        else:  # the demo's air modules: the city's open, a market party's restricted
            assert cells.nth(5).inner_text() == f"{opened} van {n}", cat
        published = {q for e in mine for q in e["quantities"]}
        for q in published:  # by their Dutch names
            assert INFO[q].nl in cells.nth(6).inner_text(), (cat, q)
        if not published:
            assert cells.nth(6).inner_text() == "geen", cat
    assert body.locator("tbody tr").count() == len({e["category"] for e in register})


# Text that is data, not words: numbers, dates and units, punctuation
DATA = re.compile(r"^[\d\s.,:;–—\-−+%()/°µ³A-Za-z]{0,3}$|^[\d\s.,:;–\-−+%()/]+$")


def _allowed(lang: str) -> list[re.Pattern[str]]:
    pats = []
    for text in i18n.catalogue(lang).values():
        parts = re.split(r"\{\w+\}", text)
        pats.append(re.compile("^" + "(.+)".join(re.escape(p) for p in parts) + "$", re.S))
    for q in INFO.values():
        name = re.escape(getattr(q, lang))
        pats.append(re.compile(rf"^{name}( \(.+\))?$"))
    return pats


WALK = """() => {
  const out = [];
  const data = '[translate="no"], script, style, noscript, .leaflet-control-attribution';
  const skip = (e) => e.closest(data);
  const w = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  for (let n = w.nextNode(); n; n = w.nextNode()) {
    const s = n.textContent.trim();
    if (s && !skip(n.parentElement)) out.push(s);
  }
  const labelled = '[aria-label], [title], [placeholder], [alt], [data-label]';
  for (const e of document.querySelectorAll(labelled)) {
    if (e.closest('[translate="no"]')) continue;
    for (const a of ['aria-label', 'title', 'placeholder', 'alt', 'data-label']) {
      const v = (e.getAttribute(a) || '').trim();
      if (v) out.push(v);
    }
  }
  return out;
}"""


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_no_text_outside_the_catalogue(site: str, browser: Any, lang: str) -> None:
    other = i18n.catalogue("en" if lang == "nl" else "nl")
    mine = i18n.catalogue(lang)
    foreign = {v for k, v in other.items() if v != mine[k] and "{" not in v and len(v) > 3}
    allowed = _allowed(lang)
    p = Page(browser, "nl-NL")
    try:
        for path in ("/portal", "/opendata"):
            page = p.page
            if path == "/portal":
                page = p.open(site + f"/portal?lang={lang}")
                page.locator('.leaflet-marker-icon[data-pole="RTD-0002"]').focus()
                page.keyboard.press("Enter")  # the pole panel and its charts too
                page.locator("#chart-pm25 canvas").first.wait_for()
            else:
                page.goto(site + f"/opendata?lang={lang}")
                page.locator("#privacy-body table").wait_for()
            texts: list[str] = page.evaluate(WALK)
            assert len(texts) > 50
            stray = [s for s in texts if not DATA.match(s) and not any(a.match(s) for a in allowed)]
            assert not stray, f"{path} ({lang}): text not from the catalogue: {stray[:10]}"
            leaked = [s for s in texts if s in foreign]
            assert not leaked, f"{path} ({lang}): text of the other language: {leaked[:10]}"
    finally:
        p.close()


def test_portal_fits_a_phone(site: str, browser: Any) -> None:
    p = Page(browser, "nl-NL", 390, 844)
    try:
        page = p.open(site + "/portal")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the portal scrolls sideways on a phone ({width}px)"
    finally:
        p.close()
