"""Every module the node runs compiles with mpy-cross for the ESP32, as it will be deployed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.mpy import KEEP_SOURCE, compile_tree, firmware_sources


@pytest.mark.slow
def test_every_firmware_and_protocol_module_compiles_for_esp32(tmp_path: Path) -> None:
    sizes = compile_tree(tmp_path, march="xtensawin")
    expected = {rel for _, rel in firmware_sources() if rel.name not in KEEP_SOURCE}
    assert set(sizes) == expected
    assert any(rel.parts[0] == "protocols" for rel in sizes)
    for rel, size in sizes.items():
        assert size > 0, rel
        assert (tmp_path / rel.with_suffix(".mpy")).read_bytes()[:2] == b"M\x06", rel
