"""Streetpole wire protocol v1: topics and payloads, shared by node, controller and simulator.

Plain Python that runs unchanged on MicroPython and CPython (sans-IO: bytes in, messages out).
See protocols/README.md for the specification.
"""

MAX_PAYLOAD = 8192  # bytes, any channel (here so the codec need not load the schemas for it)
