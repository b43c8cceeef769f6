"""Write protocols/schemas/<channel>.json from protocols/schema_defs.py (CPython only), and the
same schemas compiled into the node's checks, protocols/nodecheck/<channel>.py (see
protocols/checkgen.py for why the node runs generated code instead of a schema and a validator).

`python -m protocols.export_schemas` writes the files; `--check` exits 1 when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from protocols.checkgen import iter_outputs
from protocols.schema_defs import BUILDERS

OUT = Path(__file__).parent / "schemas"
NODE_OUT = Path(__file__).parent / "nodecheck"


def render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    files = {OUT / f"{channel}.json": render(build()) for channel, build in BUILDERS.items()}
    for name, text in iter_outputs(BUILDERS):
        files[NODE_OUT / name] = text
    return files


def main(argv: list[str]) -> int:
    stale = []
    for path, text in outputs().items():
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.parent.name + "/" + path.name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale schema files (run `make schemas`): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
