"""The browser libraries, from npm into ``static/vendor`` (``make assets``).

``package.json`` and ``package-lock.json`` beside this file pin Leaflet and uPlot; ``npm ci``
puts them in ``node_modules`` (not committed) and this module copies only the files the pages
load into ``static/vendor`` (git-ignored), so the controller serves them itself and nothing
comes from a CDN at run time::

    npm ci --prefix controller/dashboard --ignore-scripts --no-audit --no-fund
    python -m controller.dashboard.assets
"""

from __future__ import annotations

import shutil
import sys
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


def main() -> int:
    try:
        files = copy()
    except FileNotFoundError as e:
        print(f"assets: {e}", file=sys.stderr)
        return 1
    total = sum(f.stat().st_size for f in files)
    print(f"assets: {len(files)} files, {total // 1024} KiB in {VENDOR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
