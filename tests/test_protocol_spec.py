"""protocols/README.md is the spec a node in another language is written from: the update
signature's manifest and the SPA1 archive it describes are checked here against the code that
makes and reads them, so the page cannot drift from what the node accepts."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest

from spnode import update, updsig
from tests.harness.paths import PROTOCOLS

SPEC = (PROTOCOLS / "README.md").read_text()
CMD = {
    "id": "c-1006",
    "ts": 1795582800,
    "cmd": "update",
    "url": "https://fw.example.org/0.2.0.spa",
    "version": "0.2.0",
    "size": 120000,
    "sha256": "ab" * 32,
    "expiry": 1795584600,
    "rollback": True,
}


def _manifest_template() -> str:
    lines = [line for line in SPEC.splitlines() if line.startswith("streetpole-fw-")]
    assert len(lines) == 1, "the spec shows the manifest exactly once"
    return lines[0]


def test_manifest_in_the_spec_is_what_the_node_signs() -> None:
    text = _manifest_template()
    fields = {"pole": "RTD-0001", "node": "n1", "rollback 0|1": "1"}
    fields.update({k: str(v) for k, v in CMD.items()})
    built = re.sub(r"<([^>]+)>", lambda m: fields[m.group(1)], text).replace("\\n", "\n")
    assert built.encode() == updsig.manifest(CMD, "RTD-0001/n1")
    key = bytes(range(16))
    want = hmac.new(key, built.encode(), hashlib.sha256).hexdigest()
    assert updsig.sign(CMD, key, "RTD-0001/n1") == want  # "lower-case hex HMAC-SHA256"


def _spa1(files: list[tuple[str, bytes]]) -> bytes:
    """An archive built from the spec's table alone."""
    out = b"SPA1"
    for path, data in files:
        p = path.encode()
        out += bytes([len(p)]) + p + len(data).to_bytes(4, "big") + data
    return out + b"\x00"


def test_spa1_as_the_spec_describes_it_unpacks(tmp_path: Path) -> None:
    assert "`SPA1` archive" in SPEC and "4 bytes, unsigned, big-endian" in SPEC
    files = [("main.py", b"print(2)\n"), ("spnode/app.mpy", bytes(range(256)) * 3)]
    data = _spa1(files)
    assert data == update.pack(files)
    up = update.Unpacker(str(tmp_path))
    up.feed(data)
    up.close()
    for path, body in files:
        assert (tmp_path / path).read_bytes() == body


@pytest.mark.parametrize(
    ("path", "reason"),
    [("../x.py", "bad path"), ("a/b/c/d/e/f/g.py", "too deep"), ("a b.py", "bad character")],
)
def test_spa1_paths_the_spec_forbids_are_refused(tmp_path: Path, path: str, reason: str) -> None:
    up = update.Unpacker(str(tmp_path))
    with pytest.raises(update.UpdateError, match=reason):
        up.feed(_spa1([(path, b"x")]))
