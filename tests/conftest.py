"""Fixtures with real parts: a mosquitto broker on a free loopback port, MicroPython runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.broker import Broker, BrokerConfig, free_port
from simulator.unixport import build_rom, interpreter_info
from tests.harness import mpbuild
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


class Trees:
    """The tests' modules (tests/mp/manifest.py) compiled by mpy-cross for an interpreter's
    native-code architecture, and as a ROMFS image; each made once a session."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._trees: dict[str, Path] = {}

    def tree(self, march: str) -> Path:
        if march not in self._trees:
            out = self.base / march
            compile_tree(out, march=march)
            self._trees[march] = out
        return self._trees[march]

    def rom(self, march: str) -> Path:
        """The tree as a ROMFS image, the way the node carries its code (simulator/unixport.py)."""
        image = self.base / f"node-{march}.romfs"
        if not image.exists():
            build_rom(self.tree(march), image)
        return image


@pytest.fixture(scope="session")
def mpy_trees(tmp_path_factory: pytest.TempPathFactory) -> Trees:
    return Trees(tmp_path_factory.mktemp("mpy"))


@pytest.fixture(scope="session")
def mpy_tree(mpy_trees: Trees) -> Path:
    """The tests' modules compiled for the default interpreter (tests/harness/micropython.py)."""
    return mpy_trees.tree(interpreter_info().march)


@pytest.fixture(scope="session")
def node_rom(mpy_trees: Trees) -> Path:
    """That tree as a ROMFS image, for the default interpreter."""
    return mpy_trees.rom(interpreter_info().march)


@pytest.fixture(scope="session")
def unix32() -> str:
    """The 32-bit unix port, as `make deps` built it (tests/harness/mpbuild.py; brought up to
    date here when the source changed); skipped, with the reason, without MicroPython's source."""
    try:
        return str(mpbuild.ensure_unix32())
    except mpbuild.Unavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def frozen32() -> str:
    """The 32-bit unix port with the node (and its simulated board) frozen in; rebuilt here when
    the firmware changed since `make deps`."""
    try:
        return str(mpbuild.ensure_frozen())
    except mpbuild.Unavailable as e:
        pytest.skip(str(e))


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
