"""Fixtures with real parts: a mosquitto broker on a free loopback port, MicroPython runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.broker import Broker, BrokerConfig, free_port
from fieldtools.unixport import build_rom
from tests.harness.mpy import compile_tree
from tests.harness.postgres import Postgres


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh anonymous mosquitto for one test; fails the test if it dropped messages."""
    b = Broker(tmp_path / "broker", BrokerConfig(port=free_port()))
    b.start()
    try:
        yield b
    finally:
        b.stop()
    assert not b.dropped_messages_logged(), "mosquitto dropped queued messages:\n" + b.log()


@pytest.fixture(scope="session")
def mpy_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """firmware/ and protocols/ compiled by mpy-cross for the host's MicroPython (as deployed)."""
    out = tmp_path_factory.mktemp("mpy")
    compile_tree(out, march="x64")
    return out


@pytest.fixture(scope="session")
def node_rom(mpy_tree: Path) -> Path:
    """That tree as a ROMFS image, the way the node carries its code (fieldtools/unixport.py)."""
    return build_rom(mpy_tree, mpy_tree.parent / "node.romfs")


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A pole id unique to the test, so tests sharing a broker never see each other's topics."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:24].strip("-")
    return f"t-{name}-{free_port()}"[:32]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session; each test makes its own database."""
    pg = Postgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
