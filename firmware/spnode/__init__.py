"""Streetpole node firmware: MicroPython on the ESP32, and the same code on CPython."""

from protocols import unload as unload  # the node's code imports it from here

VERSION = "0.1.0"
UPDATE_CMD = "update.cmd"  # in the data dir: an update accepted, to download at the next boot
