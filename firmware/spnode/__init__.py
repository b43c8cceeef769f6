"""Streetpole node firmware: MicroPython on the ESP32, and the same code on CPython."""

VERSION = "0.1.0"
