"""Processes as Linux's /proc shows them: the ingest test looks for the controller's children,
the ingest benchmark adds up their CPU time."""

from __future__ import annotations

from pathlib import Path


def stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first, then the parent);
    OSError once the process is gone."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int(stat(int(entry.name))[1]) == pid:
                out.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return out
