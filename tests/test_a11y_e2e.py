"""What every user's browser shows, checked for accessibility: axe-core (npm, ``make assets``)
audits every dashboard view, logged in as each role, and the public pages, at desktop and phone
sizes, and fails on any WCAG 2.1 A/AA violation; the map's keyboard paths (open a pole, choose
an area) with the keyboard alone; and the API documentation rendering with no network at all.

One controller (the demo street of ``make demo-data``, no broker: nothing here needs a live node)
and one browser serve the whole module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from controller.app import create_app
from controller.fleet import raise_alarm
from controller.opendata.demo import populate
from controller.registry.accounts import create_token, create_user
from controller.registry.db import Registry
from controller.settings import Settings
from controller.store import open_store
from simulator.provision import PROGRAM, profile_body
from tests.harness.server import serve
from tests.test_dashboard_e2e import CHROMIUM_ARGS, PASSWORD, chromium

pytestmark = pytest.mark.slow

WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# and two of axe's best practices the issue named (#22): headings in order, no empty <th>
ALSO = {"heading-order": {"enabled": True}, "empty-table-header": {"enabled": True}}
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
# user name -> (role, owner, the pole whose page is audited): every role, and an operator who
# sees only one owner's modules (the demo's Wi-Fi counter, on every sixth pole)
USERS = {
    "vic": ("viewer", None, 1),
    "tess": ("technician", None, 1),
    "ops": ("operator", None, 1),
    "adm": ("admin", None, 1),
    "telco-ops": ("operator", "telco", 6),
}
# dashboard view -> what shows that it has loaded what it fetched
VIEWS = {
    "map": ["#pole-list table", ".leaflet-marker-icon"],
    "pole": ["#pole-latest > *", "#pole-audit > *", "#pole-alarms > *", "#charts > *"],
    "alarms": ["#alarm-list > *"],
    "control": ["#ov-list > *"],
    "programs": ["#profile-list table"],
    "campaigns": ["#campaign-list > *"],
    "energy": ["#en-table > *, #en-msg:not(:empty)"],
}


@dataclass
class Site:
    url: str
    poles: list[str]
    tokens: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("a11y")
    settings = Settings(data_dir=tmp, ingest_enabled=False, dispatch_enabled=False, _env_file=None)
    reg = Registry(settings.registry_url)
    store = open_store(settings)
    made = populate(reg, store, poles=12, days=1, period_s=900)
    store.close()
    tokens = {}
    for name, (role, owner, _) in USERS.items():
        create_user(reg, name, PASSWORD, role, owner)
        tokens[name] = create_token(reg, name, "test")
    with reg.session() as db:  # an open alarm for the alarm views
        raise_alarm(db, made["poles"][1], "n1", "lampFailure", "lamp", "driver reports no load")
    reg.close()
    app = create_app(settings)
    with serve(app) as base:
        s = Site(base, made["poles"], tokens)
        with httpx.Client(base_url=base, timeout=30) as http:
            hdr = {"Authorization": f"Bearer {tokens['adm']}"}
            for path, body in (
                ("/api/programs", PROGRAM),
                ("/api/profiles", profile_body()),
                ("/api/groups", {"name": "south-street", "poles": s.poles}),
                ("/api/overrides", {"pole": s.poles[1], "level": 0.4, "duration_s": 3600,
                                    "reason": "street works"}),
            ):  # fmt: skip
                r = http.post(path, json=body, headers=hdr)
                assert r.status_code == 201, f"{path}: {r.status_code} {r.text}"
        yield s


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


def audit(
    page: Any,
    what: str,
    off: tuple[str, ...] = (),
    ours: bool = True,
    within: tuple[str, ...] = ("html",),
) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is, one readable line per node;
    ``off``: rules not checked here (each with its reason where it is passed); ``ours``: our
    own pages, where two best practices are checked as well; ``within``: the parts audited (the
    first element each selector finds)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        # from the controller itself: the pages' CSP refuses inline and foreign scripts
        page.add_script_tag(url="/ui/vendor/axe.min.js")
    result = page.evaluate(
        "([within, tags, rules]) => axe.run("
        "{include: within.map((sel) => document.querySelector(sel)).filter(Boolean)},"
        " {runOnly: {type: 'tag', values: tags}, rules, resultTypes: ['violations']})",
        [within, WCAG, {**(ALSO if ours else {}), **{rule: {"enabled": False} for rule in off}}],
    )
    return [
        f"{what}: {v['id']} ({v['impact']}) {' '.join(map(str, n['target']))}: {v['help']}"
        for v in result["violations"]
        for n in v["nodes"]
    ]


def loaded(page: Any, selectors: list[str]) -> None:
    from playwright.sync_api import expect

    for sel in selectors:
        expect(page.locator(sel).first).to_be_attached()


def log_in(page: Any, url: str, user: str) -> None:
    from playwright.sync_api import expect

    page.goto(url + "/dashboard")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user")).to_contain_text(user)


def new_page(browser: Any, size: str) -> tuple[Any, Any]:
    ctx = browser.new_context(viewport=SIZES[size])
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    return ctx, page


@pytest.mark.parametrize("user", USERS)
def test_dashboard_views_pass_axe(site: Site, browser: Any, user: str) -> None:
    """Every view at both sizes; one login per role (the window is resized, as a user would)."""
    ctx, page = new_page(browser, "desktop")
    found: list[str] = []
    try:
        for size, viewport in SIZES.items():
            page.set_viewport_size(viewport)
            if size == "desktop":
                page.goto(site.url + "/dashboard")
                loaded(page, ["#login-user"])
                found += audit(page, f"{size} login")
                log_in(page, site.url, user)
            for view, ready in VIEWS.items():
                arg = f"/{site.poles[USERS[user][2]]}" if view == "pole" else ""
                page.goto(f"{site.url}/dashboard#/{view}{arg}")
                loaded(page, [f"#view-{view}:not([hidden])", *ready])
                found += audit(page, f"{size} {view}")
        page.locator("#logout").click()
        loaded(page, ["#view-login:not([hidden])"])
        found += audit(page, "phone login")
    finally:
        ctx.close()
    assert not found, f"{len(found)} WCAG 2.1 A/AA violation(s):\n" + "\n".join(found)


@pytest.mark.parametrize("size", SIZES)
def test_public_pages_pass_axe(site: Site, browser: Any, size: str) -> None:
    ctx, page = new_page(browser, size)
    found: list[str] = []
    try:
        page.goto(site.url + "/portal")
        loaded(page, [".leaflet-marker-icon"])
        found += audit(page, "portal")
        page.locator(f'.leaflet-marker-icon[data-pole="{site.poles[1]}"]').click()
        loaded(page, ["#pole-latest table", "#charts > *"])
        found += audit(page, "portal pole")
        page.goto(site.url + "/opendata")
        found += audit(page, "opendata")
        if size == "desktop":  # Swagger UI's own layout; its audit is slow (200 operations)
            page.goto(site.url + "/docs")
            loaded(page, [".opblock"])
            # Swagger UI puts the buttons of an operation inside its summary's button: its own
            # structure (swagger-api/swagger-ui), not something a stylesheet can change. The
            # page's head, its first group of operations and the schemas: the other groups are
            # the same component and would make this audit take most of the module's time.
            parts = (
                ".information-container",
                ".scheme-container",
                ".opblock-tag-section",
                ".models",
            )
            found += audit(page, "docs", off=("nested-interactive",), ours=False, within=parts)
    finally:
        ctx.close()
    assert not found, f"{len(found)} WCAG 2.1 A/AA violation(s):\n" + "\n".join(found)


def test_api_docs_render_without_network(site: Site, browser: Any) -> None:
    """Swagger UI and ReDoc from the controller's own copies: every other request is refused."""
    from playwright.sync_api import expect

    ctx, page = new_page(browser, "desktop")
    foreign: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def only_loopback(route: Any) -> None:
        if route.request.url.startswith((site.url, "data:", "blob:")):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    try:
        page.route("**/*", only_loopback)
        page.goto(site.url + "/docs")
        expect(page.locator(".opblock").first).to_be_visible()
        assert page.locator(".opblock").count() > 20  # the operations are listed
        expect(page.locator(".opblock-tag").first).to_contain_text("accounts")
        page.goto(site.url + "/redoc")
        expect(page.locator("h1").first).to_contain_text("Streetpole controller")
        expect(page.get_by_text("Log in, tokens, operator accounts").first).to_be_visible()
        assert page.locator("[data-section-id^='operation/']").count() > 20
    finally:
        ctx.close()
    assert not foreign, f"the docs asked for outside resources: {foreign[:5]}"
    assert not errors, errors[:5]


def test_map_by_keyboard(site: Site, browser: Any) -> None:
    """An operator without a mouse: Tab to a pole marker, Enter opens it; back on the map, the
    keyboard zooms the map onto a part of the street and "Use map view" takes it as the area."""
    from playwright.sync_api import expect

    ctx, page = new_page(browser, "desktop")
    try:
        log_in(page, site.url, "ops")
        loaded(page, ["#pole-list table", ".leaflet-marker-icon"])
        target = site.poles[1]
        page.locator("#map").focus()  # the map's region, reached by Tab from the filters
        for _ in range(len(site.poles) + 2):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.dataset.pole") == target:
                break
        assert page.evaluate("document.activeElement.dataset.pole") == target
        page.keyboard.press("Enter")
        expect(page.locator("#pole-h")).to_contain_text(f"Pole {target}")

        page.goto(site.url + "/dashboard#/map")
        loaded(page, [".leaflet-marker-icon"])
        msg = page.locator("#area-msg")
        page.locator("#draw-area").focus()  # drawing needs a pointer: Escape leaves it
        page.keyboard.press("Enter")
        expect(msg).to_contain_text("Escape cancels")
        page.keyboard.press("Escape")
        expect(msg).to_have_text("Drawing cancelled.")
        expect(page.locator("#draw-area")).to_have_attribute("aria-pressed", "false")
        page.locator("#map").focus()
        for _ in range(3):  # zoom in with the keyboard (Leaflet's "+")
            page.keyboard.press("Equal")
        # the zoom has landed: no animation running, and some markers are out of the view
        page.wait_for_function(
            """() => {
                const map = document.querySelector('#map');
                if (map.classList.contains('leaflet-zoom-anim')) return false;
                const r = map.getBoundingClientRect();
                const icons = [...document.querySelectorAll('.leaflet-marker-icon')];
                const inside = icons.filter((i) => {
                    const b = i.getBoundingClientRect();
                    const x = b.left + b.width / 2, y = b.top + b.height / 2;
                    return x >= r.left && x <= r.right && y >= r.top && y <= r.bottom;
                });
                return inside.length > 0 && inside.length < icons.length;
            }"""
        )
        page.locator("#view-area").focus()
        page.keyboard.press("Enter")
        expect(msg).to_contain_text("Area of the map view")
        inside = int(msg.inner_text().split(" pole(s) inside")[0].split()[-1])
        assert 0 < inside < len(site.poles), msg.inner_text()
    finally:
        ctx.close()


def test_axe_reports_a_violation(site: Site, browser: Any) -> None:
    """The audit can fail: an unlabelled input on a page is reported, with rule and target."""
    ctx, page = new_page(browser, "desktop")
    try:
        page.goto(site.url + "/dashboard")
        loaded(page, ["#login-user"])
        page.evaluate(
            "document.querySelector('#login-form')"
            ".append(Object.assign(document.createElement('input'), {id: 'bare'}))"
        )
        found = audit(page, "login")
    finally:
        ctx.close()
    assert any("label" in f and "#bare" in f for f in found), found
