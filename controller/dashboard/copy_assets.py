"""``make assets``: copy the browser libraries from ``node_modules`` into ``static/vendor``.

A module of its own so that ``python -m`` runs it without the package having imported it first
(``controller.dashboard`` imports ``assets`` for its routes; running that module with ``-m``
made runpy warn that it was already in ``sys.modules``)."""

from __future__ import annotations

import sys

from controller.dashboard import assets


def main() -> int:
    try:
        files = assets.copy()
    except FileNotFoundError as e:
        print(f"assets: {e}", file=sys.stderr)
        return 1
    total = sum(f.stat().st_size for f in files)
    print(f"assets: {len(files)} files, {total // 1024} KiB in {assets.VENDOR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
