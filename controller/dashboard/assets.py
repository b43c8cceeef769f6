"""The browser libraries, from npm into ``static/vendor`` (``make assets``).

``package.json`` and ``package-lock.json`` beside this file pin Leaflet, uPlot, Swagger UI,
ReDoc and axe-core; ``npm ci`` puts them in ``node_modules`` (not committed) and
``controller.dashboard.copy_assets`` copies only the files the pages load into ``static/vendor``
(git-ignored), so the controller serves them itself and nothing comes from a CDN at run time::

    npm ci --prefix controller/dashboard --ignore-scripts --no-audit --no-fund
    python -m controller.dashboard.copy_assets

axe-core is not served to users: the accessibility audit of the end-to-end tests injects it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
VENDOR = HERE / "static" / "vendor"

# vendor name -> file in node_modules
FILES = {
    "leaflet.js": "leaflet/dist/leaflet.js",
    "leaflet.css": "leaflet/dist/leaflet.css",
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
    "LICENSE-leaflet.txt": "leaflet/LICENSE",
    "LICENSE-uplot.txt": "uplot/LICENSE",
    # /docs and /redoc (controller/dashboard/apidocs.py)
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "swagger-favicon.png": "swagger-ui-dist/favicon-32x32.png",
    "LICENSE-swagger-ui.txt": "swagger-ui-dist/LICENSE",
    "redoc.standalone.js": "redoc/bundles/redoc.standalone.js",
    "LICENSE-redoc.txt": "redoc/LICENSE",
    # the accessibility audit in tests/test_a11y_e2e.py
    "axe.min.js": "axe-core/axe.min.js",
    "LICENSE-axe-core.txt": "axe-core/LICENSE",
}


def missing() -> list[str]:
    """Vendor files the pages need that are not there (empty when ``make assets`` ran)."""
    return [name for name in FILES if not (VENDOR / name).is_file()]


def copy(node_modules: Path = NODE_MODULES, vendor: Path = VENDOR) -> list[Path]:
    absent = [src for src in FILES.values() if not (node_modules / src).is_file()]
    if absent:
        raise FileNotFoundError(
            f"not in {node_modules}: {', '.join(absent)} (run npm ci in {node_modules.parent})"
        )
    vendor.mkdir(parents=True, exist_ok=True)
    out = []
    for name, src in FILES.items():
        dst = vendor / name
        shutil.copyfile(node_modules / src, dst)
        out.append(dst)
    return out
