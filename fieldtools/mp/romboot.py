# MicroPython script (not CPython): the unix port's stand-in for an ESP32 with a ROMFS partition.
#
#     micropython -X heapsize=<budget + image> romboot.py IMAGE SCRIPT [ARGS...]
#
# On the node the firmware's modules are a ROMFS image in a flash partition that MicroPython
# mounts at /rom at start-up; their bytecode and constant strings are used in place, memory-mapped,
# so the heap holds only what the code builds (docs/firmware.md, "Memory"). The unix port can
# mount such an image (vfs.VfsRom) but has no flash to map, so this script reads the image into
# one block of the heap first, and the caller makes the heap that much larger: the rest is the
# node's budget. Then it runs SCRIPT as main.py runs on the node, with /rom on the path.
import gc
import os
import sys

import vfs

image, script = sys.argv[1], sys.argv[2]
rom = bytearray(os.stat(image)[6])
with open(image, "rb") as f:
    f.readinto(rom)
vfs.mount(vfs.VfsRom(rom), "/rom")
sys.path.insert(0, "/rom")  # before the rest of MICROPYPATH (frozen modules, test helpers)
del sys.argv[:2]
f = image = None
gc.collect()
with open(script) as f:
    code = compile(f.read(), script, "exec")
f = None
gc.collect()
exec(code, {"__name__": "__main__", "__file__": script})
