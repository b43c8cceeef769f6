"""Files on the node's flash that a power cut must never leave half written."""

import os


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def replace(tmp, path):
    """Rename ``tmp`` over ``path``."""
    try:
        os.rename(tmp, path)
    except OSError:  # FAT will not rename over an existing file
        os.remove(path)
        os.rename(tmp, path)


def write_atomic(path, data):
    """Write bytes to a temporary file and rename it over ``path``: a reader finds the old
    bytes or the new ones (a torn write leaves only the temporary file)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    replace(tmp, path)
