"""The installed command and the split between the tools and the server (issue #20): a
technician's `streetpole node ...` loads neither FastAPI nor SQLAlchemy, and a controller command
on an install without them says which extra is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.harness.paths import ROOT

COPY_IGNORE = (
    ".git",
    ".venv",
    "build",
    "var",
    "node_modules",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)
SERVER_LIBRARIES = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic")

# Runs in a fresh interpreter: what the statement imported, of the server's libraries.
PROBE = """
import sys
{statement}
print(sorted(m for m in {libraries!r} if m in sys.modules))
"""
# `streetpole node --help` and `streetpole node virtual --help`, one after the other.
COMMANDS = """
from streetpole.cli import main
for args in (["node", "--help"], ["node", "virtual", "--help"]):
    sys.argv = ["streetpole", *args]
    try:
        main()
    except SystemExit as e:
        assert not e.code, e.code
"""


def loaded(statement: str) -> str:
    code = PROBE.format(statement=statement, libraries=SERVER_LIBRARIES)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout.strip().splitlines()[-1]


def test_the_tools_import_without_the_server_libraries() -> None:
    assert loaded("import fieldtools.cli") == "[]"
    assert loaded(COMMANDS) == "[]"
    assert loaded("import sqlalchemy") == "['sqlalchemy']"  # the probe does see them


def test_the_console_script_runs_the_one_command() -> None:
    script = Path(sys.executable).with_name("streetpole")
    out = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for command in ("serve", "create-user", "create-token", "node"):
        assert command in out, out


def test_a_server_command_without_the_controller_extra_says_what_is_missing() -> None:
    code = (
        "import sys\n"
        "sys.modules['uvicorn'] = None  # as on a technician's install: not there\n"
        "from streetpole.cli import main\n"
        "sys.argv = ['streetpole', 'serve']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "'uvicorn' is not installed" in proc.stderr and "[controller]" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_a_wheel_carries_the_packages_and_its_tools_refuse_to_build_without_a_checkout(
    tmp_path: Path,
) -> None:
    """`pip install .` without -e: the wheel holds every package with its data (schemas, the
    dashboard, migrations, the unix-port boot script), and the node commands, which need the
    checkout's firmware/ and board files, say so instead of working on an empty build."""
    # from a copy: setuptools builds in the source tree (build/), which is the checkout's own
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("streetpole-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(site)
    for data in ("protocols/schemas/meas.json", "fieldtools/mp/romboot.py", "spnode/app.py",
                 "controller/registry/migrations/env.py",
                 "controller/dashboard/templates/portal.html",
                 "controller/dashboard/static/i18n/nl.json",
                 "simulator/scenarios/night.json", "streetpole/cli.py"):  # fmt: skip
        assert data in names, data
    code = (
        "import fieldtools, sys\n"
        f"assert fieldtools.__file__.startswith({str(site)!r}), fieldtools.__file__\n"
        "from streetpole.cli import main\n"
        "sys.argv = ['streetpole', 'node', 'flash', 'fw.bin', '--port', 'ttyUSB0', '--dry-run']\n"
        "main()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(site))  # the wheel's packages before the checkout's
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,  # not the checkout, which `python -c` would put first on the path
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no firmware sources" in proc.stderr and 'pip install -e ".[tools]"' in proc.stderr
