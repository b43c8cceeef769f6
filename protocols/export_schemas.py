"""Write protocols/schemas/<channel>.json from protocols/schema_defs.py (CPython only).

`python -m protocols.export_schemas` writes the files; `--check` exits 1 when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from protocols.schema_defs import BUILDERS

OUT = Path(__file__).parent / "schemas"


def render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    OUT.mkdir(exist_ok=True)
    for channel, build in BUILDERS.items():
        path = OUT / f"{channel}.json"
        text = render(build())
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("stale schema files (run `make schemas`): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
