"""Where things are in the repository and the venv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
PROTOCOLS = ROOT / "protocols"
VENV_BIN = Path(sys.executable).parent


def venv_tool(name: str) -> str:
    """Path of a command installed in the venv (or on PATH as a fallback)."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make deps`")
    return found
