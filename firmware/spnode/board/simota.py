"""Two app slots and an otadata record in files: the ESP32's A/B flash for the unix port.

``FilePartition`` has the part of `esp32.Partition`'s interface whole-image updates use
(spnode.imgupdate): ``get_next_update``, ``readblocks``, ``writeblocks``, ``ioctl``,
``set_boot``, ``info``; ``mark_app_valid`` stands for
``esp32.Partition.mark_app_valid_cancel_rollback``. ``select_boot`` is the bootloader's part, for
whoever starts the unix port (tests/harness/abnode.py): it picks the slot to run the way ESP-IDF's
bootloader does with rollback enabled (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, on in
MicroPython's ESP32 builds): a slot set to boot runs once on probation ("pending"); if the next
reset comes before the image marked itself valid, that image is given up ("aborted") and the
other slot boots. Written here since MicroPython's unix port has no partitions; runs on
MicroPython (the node's side) and CPython (the runner's side), so the record has one format.

Layout of the directory::

    ota_0, ota_1   the slots, each a whole image (on the unix port: the interpreter's binary)
    otadata        {"boot": "ota_1", "state": "new"|"pending"|"valid", "running": "ota_0"}
"""

import json
import os

from spnode.flash import write_atomic

BLOCK = 4096
SLOTS = ("ota_0", "ota_1")
OTADATA = "otadata"
_ERASED = b"\xff" * 64


def read_otadata(root):
    try:
        with open(root + "/" + OTADATA) as f:
            od = json.loads(f.read())
        if isinstance(od, dict) and od.get("boot") in SLOTS:
            return od
    except (OSError, ValueError):
        pass
    return {"boot": SLOTS[0], "state": "valid", "running": SLOTS[0]}


def write_otadata(root, od):
    write_atomic(root + "/" + OTADATA, json.dumps(od).encode())


def select_boot(root):
    """The bootloader's choice at a reset: the slot's label to run (and the record updated)."""
    od = read_otadata(root)
    if od["state"] == "new":
        od["state"] = "pending"  # runs once; it must mark itself valid before the next reset
    elif od["state"] == "pending":
        od["boot"] = other(od["boot"])  # not confirmed before this reset: back to the other one
        od["state"] = "valid"
        od["aborted"] = od.get("aborted", 0) + 1
    od["running"] = od["boot"]
    write_otadata(root, od)
    return od["boot"]


def other(label):
    return SLOTS[1] if label == SLOTS[0] else SLOTS[0]


def mark_app_valid(root):
    """esp32.Partition.mark_app_valid_cancel_rollback(): the running image stays."""
    od = read_otadata(root)
    if od["state"] == "pending" and od["running"] == od["boot"]:
        od["state"] = "valid"
        write_otadata(root, od)


class FilePartition:
    def __init__(self, root, label):
        self.root = root
        self.label = label
        self.path = root + "/" + label

    def _size(self):
        return os.stat(self.path)[6]

    def info(self):
        """(type, subtype, address, size, label, encrypted), as esp32.Partition.info()."""
        return (0, 0x10 + SLOTS.index(self.label), 0, self._size(), self.label, False)

    def get_next_update(self):
        return FilePartition(self.root, other(self.label))

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self._size() // BLOCK
        if op == 5:  # block size
            return BLOCK
        if op == 6:  # erase a block
            with open(self.path, "r+b") as f:
                f.seek(arg * BLOCK)
                for _ in range(BLOCK // len(_ERASED)):
                    f.write(_ERASED)
            return 0
        return None

    def readblocks(self, block, buf, offset=0):
        with open(self.path, "rb") as f:
            f.seek(block * BLOCK + offset)
            f.readinto(buf)

    def writeblocks(self, block, buf, offset=0):
        with open(self.path, "r+b") as f:
            f.seek(block * BLOCK + offset)
            f.write(buf)

    def set_boot(self):
        od = read_otadata(self.root)
        od["boot"] = self.label
        od["state"] = "valid" if self.label == od.get("running") else "new"
        write_otadata(self.root, od)
