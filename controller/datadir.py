"""The data folder holds secrets (nodes' update keys in the registry, password hashes, broker
passwords, the time series): it is the controller's alone. At every start the folder is made
0700 and every file in it 0600 (each change logged), and files the controller makes later are
born that way (umask 077 in ``streetpole serve``)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("streetpole")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private(folder: Path) -> list[str]:
    """Take group and other permissions off ``folder``, its folders and files; what changed."""
    changed: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    me = os.geteuid()
    for path in [folder, *folder.rglob("*")]:
        try:
            st = path.lstat()
        except OSError:
            continue  # gone meanwhile (a journal file)
        if stat.S_ISLNK(st.st_mode) or st.st_uid != me:
            continue
        want = PRIVATE_DIR if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE
        if stat.S_IMODE(st.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(st.st_mode) & want)
            changed.append(
                f"{path} {stat.S_IMODE(st.st_mode):o} -> {stat.S_IMODE(st.st_mode) & want:o}"
            )
    for c in changed:
        log.warning("data folder: readable by others, made private: %s", c)
    return changed
