"""The dashboard and the portal in headless Chromium (Debian's, driven by Playwright) against
the controller served by uvicorn, a real mosquitto and a small simulated street running the
real firmware: log in, see the street on the map, open a pole and its chart, override an area
drawn on the map and watch the light of the poles in it change live, acknowledge an alarm, and
check that the public portal shows nothing restricted and nothing is fetched from elsewhere."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.app import create_app
from controller.broker import Broker
from controller.dashboard import assets
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.settings import Settings
from controller.store.base import Batch
from simulator.layout import grid
from simulator.provision import provision
from simulator.scenario import from_dict
from simulator.street import Street
from simulator.world import World
from tests.harness.api import wait_for
from tests.harness.server import serve

PASSWORD = "correct horse battery"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's chromium; a missing browser or missing assets fail the test (never a skip)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run `make deps` (Debian package chromium)")
    absent = assets.missing()
    if absent:
        pytest.fail(f"dashboard assets missing ({', '.join(absent)}): run `make assets`")
    return path


class Stack:
    """Controller on uvicorn + accounts + a simulated street in a thread of its own."""

    def __init__(self, url: str, app: Any, street: Street, ids: list[str]) -> None:
        self.url, self.app, self.street, self.ids = url, app, street, ids
        self.tokens: dict[str, str] = {}

    def api(self, who: str, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method,
            self.url + path,
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=10,
            **kw,
        )
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None


@pytest.fixture
def stack(tmp_path: Path, broker: Broker) -> Iterator[Stack]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    Registry(url).close()
    reg = Registry(url, run_migrations=False)
    tokens = {}
    for name, role in (("admin", "admin"), ("ops", "operator"), ("vic", "viewer")):
        create_user(reg, name, PASSWORD, role)
        tokens[name] = create_token(reg, name, "test")
    reg.close()
    settings = Settings(data_dir=tmp_path, database_url=url, mqtt_url=broker.url, _env_file=None)
    app = create_app(settings)
    lay = grid(8, prefix="E2E-")
    ids = [p.id for p in lay.poles]
    with serve(app) as base:
        wait_for(lambda: app.state.streetpole.dispatcher.connected.is_set(), what="dispatcher")
        with httpx.Client(base_url=base, timeout=30) as http:
            creds = provision(http, tokens["admin"], lay, profile={"report_period_s": 10})
        # the last pole loses its network two seconds in: a nodeOffline alarm to acknowledge
        faults = from_dict(
            {"faults": [{"at_s": 2, "kind": "offline", "pole": ids[-1], "duration_s": 3600}]}
        ).resolve(ids)
        world = World(lay, seed=1, start=time.time(), traffic=2)
        street = Street(lay, world, broker.url, creds, speed=1, faults=faults, sensors=("pir",))

        def run() -> None:
            sys.setswitchinterval(0.0005)  # 8 nodes and the controller share the GIL
            asyncio.run(street.run())

        th = threading.Thread(target=run, name="street")
        th.start()
        s = Stack(base, app, street, ids)
        s.tokens = tokens
        try:
            yield s
        finally:
            street.stop()
            th.join(30)


def restricted_no2(s: Stack) -> None:
    """A market party's NO2 module on the second pole, restricted, with a few readings."""
    owner = s.api("admin", "POST", "/api/owners", json={"slug": "airco", "name": "AirCo"})
    s.api(
        "admin",
        "POST",
        f"/api/poles/{s.ids[1]}/modules",
        json={
            "type": "air",
            "owner_id": owner["id"],
            "purpose": "NO2 research (restricted)",
            "openness": "restricted",
            "node": "n1",
            "src": "no2cell",
        },
    )
    now = int(time.time())
    readings = [
        {"q": "no2", "src": "no2cell", "v": 20.0 + i, "ts": now - 600 + 60 * i, "dur": 60}
        for i in range(10)
    ]
    # the cell's board also reads the air (an air module measures these): raw as a node
    # sends them, to be shown with names, units and decimals from the quantity table
    readings += [
        {"q": "atmosphericPressure", "src": "no2cell", "v": 1012.999, "ts": now - 60, "dur": 60},
        {"q": "temperature", "src": "no2cell", "v": 5.37, "ts": now - 60, "dur": 60},
    ]
    s.app.state.streetpole.store.write([Batch(s.ids[1], "n1", 1, 10_000, readings)])


@pytest.mark.slow
def test_dashboard_and_portal(stack: Stack) -> None:
    exe = chromium()
    from playwright.sync_api import expect, sync_playwright

    s = stack
    ids = s.ids
    area, outside, dark = ids[:3], ids[3:7], ids[-1]
    group = s.api("admin", "POST", "/api/groups", json={"name": "e2e-street", "poles": ids})
    restricted_no2(s)
    full = ids[3]  # full light: its marker must hold "100"
    s.api("ops", "POST", "/api/overrides", json={"pole": full, "level": 1, "duration_s": 3600})
    started = time.monotonic()
    foreign: list[str] = []
    errors: list[str] = []

    def watch(page: Any) -> None:
        def on_request(req: Any) -> None:
            if not req.url.startswith((s.url, "data:", "blob:")):
                foreign.append(req.url)

        page.on("request", on_request)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            watch(page)
            page.set_default_timeout(20_000)

            # ---- log in (password flow; the token stays in sessionStorage) ------------------
            page.goto(s.url + "/dashboard")
            page.get_by_label("User name").fill("ops")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.locator("#user")).to_have_text("ops (operator)")
            assert page.evaluate("sessionStorage.getItem('streetpole.token')")
            page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

            # ---- the street on the map ------------------------------------------------------
            markers = page.locator(".leaflet-marker-icon")
            expect(markers).to_have_count(len(ids))
            assert not page.locator(".leaflet-tile").count()  # no tile layer at all
            assert page.locator(".leaflet-overlay-pane path").count() >= len(ids) - 1  # outline
            expect(page.locator("#live")).to_have_text("Live: on")
            for pid in ids[:-1]:  # nodes come online: live events, no reload
                expect(page.locator(f'#pole-list tr[data-pole="{pid}"]')).to_contain_text("online")
            expect(
                page.locator(f'.leaflet-marker-icon[data-pole="{dark}"] .pole-marker')
            ).to_have_class("pole-marker st-offline alarm")
            # filters: by module type (every simulated node's PM and climate sensors are air
            # modules; no pole carries a camera) and by group (every pole)
            page.locator("#f-type").select_option("air")
            expect(markers).to_have_count(len(ids))
            page.locator("#f-type").select_option("camera")
            expect(markers).to_have_count(0)
            check_nothing_matches(page)
            page.locator("#f-type").select_option("")
            page.locator("#f-group").select_option(str(group["id"]))
            expect(markers).to_have_count(len(ids))

            # ---- a pole and its chart (opened with the keyboard) ----------------------------
            wait_for(
                lambda: any(
                    k.pole == ids[1] and k.q == "illuminanceLevel"
                    for k in s.app.state.streetpole.store.streams()
                ),
                30,
                "light level readings of the second pole",
            )
            marker = page.locator(f'.leaflet-marker-icon[data-pole="{ids[1]}"]')
            marker.focus()
            # a refresh of the list re-creates the markers: the focused pole keeps the focus
            sel = f'.leaflet-marker-icon[data-pole="{ids[1]}"]'
            page.evaluate(f"document.querySelector('{sel}').__old = true")
            page.evaluate("document.querySelector('#filters').dispatchEvent(new Event('change'))")
            # polled from here: the page's CSP refuses wait_for_function's string evaluation
            wait_for(
                lambda: page.evaluate(f"!document.querySelector('{sel}').__old"), 10, "refresh"
            )
            assert page.evaluate("document.activeElement.dataset.pole") == ids[1]
            page.keyboard.press("Enter")
            expect(page.locator("#pole-h")).to_contain_text(f"Pole {ids[1]}")
            expect(page.locator("#pole-modules")).to_contain_text("NO2 research (restricted)")
            expect(page.locator("#chart-light canvas").first).to_be_visible()
            assert int(page.locator("#chart-light").get_attribute("data-points") or 0) >= 1
            expect(page.locator("#chart-no2 canvas").first).to_be_visible()  # operators see it
            expect(page.locator("#pole-latest")).to_contain_text("Light output (measured)")
            check_pole_page(page)
            page.screenshot(
                path=str(SHOTS / "dashboard-pole.png"), full_page=True
            ) if SHOTS else None

            # ---- override an area drawn on the map -------------------------------------------
            page.get_by_role("link", name="Back to the map").click()
            expect(markers).to_have_count(len(ids))
            check_map_markers(page, opened=ids[1], full=full, alarmed=dark)
            boxes = [
                page.locator(f'.leaflet-marker-icon[data-pole="{p}"]').bounding_box() for p in area
            ]
            assert all(boxes)
            xs = [b["x"] + b["width"] / 2 for b in boxes if b]
            ys = [b["y"] + b["height"] / 2 for b in boxes if b]
            page.get_by_role("button", name="Draw area on map").click()
            page.mouse.move(min(xs) - 15, min(ys) - 15)
            page.mouse.down()
            page.mouse.move((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, steps=4)
            page.mouse.move(max(xs) + 15, max(ys) + 15, steps=4)
            page.mouse.up()
            expect(page.locator("#area-msg")).to_contain_text(f"{len(area)} pole(s) inside")
            page.locator("#areao-level").fill("55")
            page.locator("#areao-reason").fill("e2e: street works")
            page.get_by_role("button", name="Override area").click()
            expect(page.locator("#area-msg")).to_contain_text(f"sent to {len(area)} node(s)")
            for pid in area:  # the firmware applies it and reports its light: shown live
                expect(page.locator(f'#pole-list tr[data-pole="{pid}"] td.level')).to_have_text(
                    "55%"
                )
                expect(page.locator(f'.leaflet-marker-icon[data-pole="{pid}"]')).to_have_attribute(
                    "aria-label",
                    f"Pole {pid} (simulated pole {ids.index(pid) + 1}): online, light 55%"
                    + (", opened last" if pid == ids[1] else ""),
                )
            for pid in outside:
                assert (
                    page.locator(f'#pole-list tr[data-pole="{pid}"] td.level').inner_text() != "55%"
                )
            assert page.evaluate("window.__sameDocument === true")
            if SHOTS:
                page.screenshot(path=str(SHOTS / "dashboard-map.png"), full_page=True)

            # ---- acknowledge the alarm --------------------------------------------------------
            page.get_by_role("link", name="Alarms").click()
            row = page.locator("#alarm-list tr", has_text=dark).filter(has_text="nodeOffline")
            row.get_by_role("button", name="Acknowledge").click()
            expect(page.locator("#alarm-msg")).to_contain_text("acknowledged")
            expect(row.locator(".badge").nth(1)).to_have_text("acknowledged")
            got = s.api("ops", "GET", f"/api/alarms?pole={dark}")
            assert [a["state"] for a in got if a["code"] == "nodeOffline"] == ["acknowledged"]
            assert got[0]["acknowledged_by"] == "ops"
            if SHOTS:
                page.screenshot(path=str(SHOTS / "dashboard-alarms.png"), full_page=True)
                shoot_more(page)
            ctx.close()

            # ---- a viewer sees the controls disabled (and the API refuses anyway) ------------
            ctx = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
            page = ctx.new_page()
            watch(page)
            page.goto(s.url + "/dashboard")
            page.get_by_label("User name").fill("vic")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.locator("#user")).to_have_text("vic (viewer)")
            expect(page.get_by_role("button", name="Override area")).to_be_disabled()
            expect(page.get_by_role("button", name="Draw area on map")).to_be_disabled()
            check_viewer_phone(page, ids[1], dark)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
            if SHOTS:
                page.screenshot(path=str(SHOTS / "dashboard-phone.png"))
            ctx.close()

            # ---- the public portal: open data only -------------------------------------------
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            watch(page)
            bodies: list[str] = []
            auth_headers: list[str] = []

            def on_response(resp: Any) -> None:
                # data answers (the table of quantities names every quantity, no2 too)
                if ("/opendata/" in resp.url or "/sta/" in resp.url) and not resp.url.endswith(
                    "/quantities.json"
                ):
                    bodies.append(resp.text())
                if resp.request.headers.get("authorization"):
                    auth_headers.append(resp.url)

            page.on("response", on_response)
            wait_for(
                lambda: (
                    "illuminanceLevel"
                    in httpx.get(s.url + "/opendata/v1/poles.geojson", timeout=10).text
                ),
                20,
                "open light levels published",
            )
            page.goto(s.url + "/portal?lang=en")
            expect(page.locator(".leaflet-marker-icon")).to_have_count(len(ids))
            page.locator(f'.leaflet-marker-icon[data-pole="{ids[1]}"]').click()
            expect(page.locator("#pole-latest")).to_contain_text("Light level")
            expect(page.locator("#chart-illuminanceLevel canvas").first).to_be_visible()
            expect(
                page.get_by_role("link", name="Interactive API documentation")
            ).to_have_attribute("href", "/docs")
            expect(page.locator("#licence")).to_contain_text("CC")
            if SHOTS:
                page.screenshot(path=str(SHOTS / "portal.png"), full_page=True)
            # the data on the page (the privacy statement lists every module of the register,
            # the restricted one too: what stands where and why is public, its data is not)
            text = " ".join(
                page.locator(sel).inner_text()
                for sel in ("#map", "#pole-panel", "#charts-section", "#pole-list")
            )
            assert "no2" not in text.lower() and "NO2 research" not in text
            assert not page.locator("#chart-no2").count()
            expect(page.locator("#privacy-body")).to_contain_text(
                "Not published, kept closed or for their owner only: air quality"
            )
            assert bodies and not any("no2" in b for b in bodies), "a restricted stream leaked"
            assert not auth_headers
            ctx.close()
        finally:
            browser.close()
    assert not foreign, f"requests outside the controller: {foreign[:5]}"
    assert not errors, f"errors in the pages: {errors[:5]}"
    print(f"browser part {time.monotonic() - started:.1f} s")


TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")  # the pages' one date format


def check_nothing_matches(page: Any) -> None:
    """A filter that matches no pole says so, on the map and in the list."""
    from playwright.sync_api import expect

    expect(page.locator("#map-empty")).to_be_visible()
    expect(page.locator("#map-empty")).to_have_text("No pole matches these filters.")
    expect(page.locator("#pole-list")).to_contain_text("No pole matches these filters")
    assert not page.locator("#pole-list table").count()


def check_pole_page(page: Any) -> None:
    """Names, units and decimals from the quantity table; the light named as commanded or
    measured; modules by their registered names; readable audit; one date format; charts over
    the span the new street has data for, legends without "Time: --"; From after To refused."""
    from playwright.sync_api import expect

    latest = page.locator("#pole-latest")
    expect(latest).to_contain_text("Temperature")
    rows = {
        r.locator("td").nth(0).inner_text(): [c.inner_text() for c in r.locator("td").all()]
        for r in latest.locator("tbody tr").all()
    }
    assert rows["Air pressure"][1] == "1013 hPa", rows["Air pressure"]
    assert rows["Temperature"][1] == "5.4 °C"
    assert rows["Nitrogen dioxide (NO₂)"][1].endswith(" µg/m³")
    assert re.fullmatch(r"\d+%", rows["Light output (measured)"][1])  # a percentage, not 0.2
    assert rows["Nitrogen dioxide (NO₂)"][2] == "air: NO2 research (restricted)"
    assert all(not r[2].startswith(("not registered", "unregistered")) for r in rows.values())
    assert all(TIME.match(r[3]) for r in rows.values()), rows
    text = latest.inner_text()
    for raw in ("illuminanceLevel", "atmosphericPressure", "Cel", "ug/m3", " / ", "1,01"):
        assert raw not in text, f"{raw!r} on the pole page"
    nodes = page.locator("#pole-nodes")
    expect(nodes.locator("th").nth(2)).to_have_text("Light (commanded)")
    assert TIME.match(nodes.locator("tbody td").nth(4).inner_text())
    assert re.fullmatch(r"\d+%|–", nodes.locator("tbody td").nth(2).inner_text())
    expect(page.locator("#chart-light h4")).to_contain_text("Light output (measured)")
    expect(page.locator("#chart-light h4")).to_contain_text("(%)")
    # audit: field lines, not JSON; the zone named once in the header
    audit = page.locator("#pole-audit").inner_text()
    assert "name: " in audit and "{" not in audit and '"' not in audit, audit
    assert page.locator("#zone").inner_text().startswith("Times: ")
    # the street is minutes old: the 24 h charts span the time with data, not 24 h
    chart = page.locator("#chart-light")
    span = int(chart.get_attribute("data-to") or 0) - int(chart.get_attribute("data-from") or 0)
    assert 0 < span < 3600, f"the chart spans {span} s for minutes of data"
    for legend in page.locator("#charts .u-legend").all_inner_texts():
        assert "Time" not in legend and "--" not in legend, legend
    # From after To: a clear error, and no charts of a range that is none
    assert TIME.match(page.locator("#range-start").input_value())
    page.locator("#range-start").fill("2026-12-04 10:00")
    page.locator("#range-end").fill("2026-12-04 09:00")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#range-msg")).to_have_text("From must be before To.")
    expect(page.locator("#range-start")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#charts .chart")).to_have_count(0)
    page.locator("#range-start").fill("2026-02-31 10:00")  # no such day
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#range-msg")).to_contain_text("From: not a time")
    page.locator("#range").select_option("24h")
    expect(page.locator("#chart-light canvas").first).to_be_visible()
    expect(page.locator("#range-msg")).not_to_contain_text("From must")


def check_map_markers(page: Any, opened: str, full: str, alarmed: str) -> None:
    """ "100" fits its marker; the pole id shows in a tooltip on hover and on keyboard focus;
    the pole opened last is marked unlike an alarm (and the legend says so); the pole list is
    part of the page, not a box that scrolls inside it."""
    from playwright.sync_api import expect

    def marker(pid: str) -> Any:
        return page.locator(f'.leaflet-marker-icon[data-pole="{pid}"]')

    dot = marker(full).locator(".pole-marker")
    expect(dot).to_have_text("100", timeout=30_000)
    fits = dot.evaluate("e => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight")
    assert fits, "100 does not fit its marker"
    marker(full).hover()
    expect(page.locator(".leaflet-tooltip")).to_contain_text(full)
    marker(ids_other(page, full)).focus()
    expect(page.locator(".leaflet-tooltip").last).to_be_visible()
    focused = page.evaluate("document.activeElement.dataset.pole")
    assert focused in page.locator(".leaflet-tooltip").last.inner_text()
    sel = marker(opened).locator(".pole-marker")
    expect(sel).to_have_class(re.compile(r"\bselected\b"))
    ring = sel.evaluate("e => getComputedStyle(e, '::after').borderTopColor")
    alarm = marker(alarmed).locator(".pole-marker").evaluate("e => getComputedStyle(e).boxShadow")
    assert ring == "rgb(11, 92, 173)" and ring not in alarm, (ring, alarm)
    expect(page.locator(".legend")).to_contain_text("opened last")
    wrap = page.locator("#pole-list .table-wrap")
    assert wrap.evaluate("e => getComputedStyle(e).maxHeight") == "none"
    assert wrap.evaluate("e => e.scrollHeight <= e.clientHeight + 1")


def ids_other(page: Any, not_this: str) -> str:
    got: str = page.evaluate(
        "s => [...document.querySelectorAll('.leaflet-marker-icon')]"
        ".map(e => e.dataset.pole).find(p => p !== s)",
        not_this,
    )
    return got


def check_viewer_phone(page: Any, pole: str, alarmed: str) -> None:
    """A viewer's action forms are read-only (fields too, not only buttons); looking (filters,
    chart range) stays; the pole page's tables fit a phone (no sideways scrolling in them)."""
    from playwright.sync_api import expect

    for sel in ("#a-west", "#areao-level", "#areao-reason", "#areao-event"):
        expect(page.locator(sel)).to_be_disabled()
    expect(page.locator("#f-district")).to_be_enabled()
    list_wrap = page.locator("#pole-list .table-wrap")
    assert list_wrap.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "pole list scrolls"
    page.goto(page.url.split("#")[0] + f"#/pole/{pole}")
    expect(page.locator("#pole-latest tbody tr").first).to_be_visible()
    expect(page.locator("#poleo-level")).to_be_disabled()
    expect(page.locator("#range-start")).to_be_enabled()
    wide = page.evaluate(
        "[...document.querySelectorAll('#view-pole .table-wrap')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.parentElement.id)"
    )
    assert not wide, f"tables scroll sideways on a phone: {wide}"
    page.goto(page.url.split("#")[0] + f"#/pole/{alarmed}")  # its alarm table too
    expect(page.locator("#pole-alarms tbody tr").first).to_be_visible()
    wide = page.evaluate(
        "[...document.querySelectorAll('#view-pole .table-wrap')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.parentElement.id)"
    )
    assert not wide, f"tables scroll sideways on a phone: {wide}"
    page.goto(page.url.split("#")[0] + "#/programs")
    expect(page.locator("#pg-name")).to_be_disabled()
    expect(page.locator(".st-level").first).to_be_disabled()
    expect(page.locator("#pf-calendar")).to_be_disabled()
    expect(page.locator("#pg-pick")).to_be_enabled()  # choosing what to look at stays
    page.goto(page.url.split("#")[0] + "#/map")


SHOTS = (
    Path(os.environ["STREETPOLE_SCREENSHOTS"]) if os.environ.get("STREETPOLE_SCREENSHOTS") else None
)


def shoot_more(page: Any) -> None:
    """Extra pages for docs/screenshots (only when STREETPOLE_SCREENSHOTS is set)."""
    assert SHOTS is not None
    for view in ("control", "programs", "energy", "campaigns"):
        page.goto(page.url.split("#")[0] + f"#/{view}")
        page.wait_for_timeout(600)
        page.screenshot(path=str(SHOTS / f"dashboard-{view}.png"), full_page=True)
