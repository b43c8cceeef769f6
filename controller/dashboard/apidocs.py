"""The interactive API documentation, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served from
the controller's own copies of the libraries (``make assets``) so the pages render without
internet: FastAPI's documented custom docs pages (``docs_url=None``, ``get_swagger_ui_html`` and
``get_redoc_html`` with local URLs) instead of its defaults, which load them from a CDN.

A content security policy keeps what the libraries would still fetch from elsewhere out:
ReDoc's sidebar loads Redocly's logo from their CDN (no option turns it off; the image hides
itself when it cannot load), and Swagger UI's validator badge is switched off as well."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

VENDOR = "/ui/vendor"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# Swagger UI starts itself with an inline script (FastAPI's page), hence 'unsafe-inline' there;
# the point here is that nothing is loaded from anywhere but this controller.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def _local_only(page: HTMLResponse, stylesheet: str | None = None) -> HTMLResponse:
    """FastAPI's page with our headers, a language (screen readers need it) and, for Swagger
    UI, our contrast fixes after its stylesheet (FastAPI's helper takes only one)."""
    html = bytes(page.body).decode()
    html = html.replace("<html>", '<html lang="en">', 1)
    if stylesheet:
        html = html.replace("</head>", f'<link rel="stylesheet" href="{stylesheet}">\n</head>', 1)
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(html, headers=headers)


def install(app: FastAPI) -> None:
    """Call on an app made with ``docs_url=None, redoc_url=None``."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title}: API",
                swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
                swagger_css_url=f"{VENDOR}/swagger-ui.css",
                swagger_favicon_url=f"{VENDOR}/swagger-favicon.png",
                oauth2_redirect_url=OAUTH2_REDIRECT,
                # the badge would send the spec's URL to validator.swagger.io
                swagger_ui_parameters={"validatorUrl": None},
            ),
            "/ui/css/apidocs.css",
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title}: API reference",
                redoc_js_url=f"{VENDOR}/redoc.standalone.js",
                redoc_favicon_url=f"{VENDOR}/swagger-favicon.png",
                with_google_fonts=False,
            )
        )
