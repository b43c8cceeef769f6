"""The installed command and the split between the tools and the server (issue #20): a
technician's `streetpole node ...` loads neither FastAPI nor SQLAlchemy, and a controller command
on an install without them says which extra is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
