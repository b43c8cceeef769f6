"""A virtual node: a real MicroPython process whose REPL is a serial device.

For technicians in training and for tests of the field tools: `mpremote connect <tty> resume ...`
talks to it as to an ESP32 on a USB cable, and its working directory plays the node's flash.
The unix port has no soft reset and Ctrl-D at its prompt exits it, hence `resume`. What it cannot
play: esptool (no chip, no ROM bootloader), Wi-Fi, and real sensors (the simulated board stands in).

    python -m fieldtools.virtual_node --flash var/node1   # prints the serial device, Ctrl-C stops
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fieldtools.unixport import ESP32_HEAP_KIB, micropython_binary
from hostlib.process import terminate

ESP32_HEAP = f"{ESP32_HEAP_KIB}k"
# The node's power-on (boot.py and main.py with the flash folder as root), for `--run`.
POWER_ON = Path(__file__).with_name("mp") / "virtual_main.py"
RESET_EXIT = 3  # POWER_ON's exit status when the node asks for a reset


class VirtualNode:
    """socat joins a pseudo-terminal to a MicroPython REPL running in ``flash``."""

    def __init__(self, flash: Path, heap: str = ESP32_HEAP, extra_path: list[Path] | None = None):
        self.flash = flash
        self.heap = heap
        self.extra_path = extra_path or []
        self.tty = flash.parent / (flash.name + ".tty")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise FileNotFoundError("socat not found: run `make deps` (Debian package socat)")
        self.flash.mkdir(parents=True, exist_ok=True)
        # The node's flash root is on its path first, as on an ESP32 ('' and /lib).
        path = ":".join([".frozen", ".", "lib", *map(str, self.extra_path)])
        env = dict(os.environ, MICROPYPATH=path)  # socat passes its environment on
        cmd = f"{micropython_binary()} -X heapsize={self.heap}"
        self._proc = subprocess.Popen(
            [
                socat,
                f"PTY,link={self.tty},raw,echo=0",
                f"EXEC:{cmd},pty,raw,echo=0,stderr",
            ],
            cwd=self.flash,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while not self.tty.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                self.stop()
                raise RuntimeError(f"virtual node did not start: {err}")
            time.sleep(0.02)

    def power_on(self, **popen: Any) -> subprocess.Popen[bytes]:
        """Run the node on its flash as an ESP32 does after EN: main.py's work, from the files
        deploy and provision wrote; no REPL on the serial device meanwhile. ``popen``: where
        its console goes (stdout=..., default the caller's)."""
        env = dict(os.environ, MICROPYPATH=":".join([".frozen", ".", "lib"]))
        cmd = [micropython_binary(), "-X", f"heapsize={self.heap}", str(POWER_ON)]
        return subprocess.Popen(cmd, cwd=self.flash, env=env, **popen)

    def stop(self) -> None:
        if self._proc is not None:
            terminate(self._proc)
            if self._proc.stderr is not None:
                self._proc.stderr.close()
            self._proc = None

    def __enter__(self) -> VirtualNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flash", type=Path, default=Path("var/virtual-node"))
    parser.add_argument("--heap", default=ESP32_HEAP)
    args = parser.parse_args(argv)
    node = VirtualNode(args.flash.resolve(), heap=args.heap)
    node.start()
    print(f"virtual node on {node.tty} (flash: {node.flash}); try:")
    print(f'  mpremote connect {node.tty} resume exec "import gc; print(gc.mem_free())"')
    try:
        while node._proc is not None and node._proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
