"""A node on a serial line (USB cable or a virtual node's pseudo-terminal), through mpremote.

Everything this package asks of mpremote is here: open the port, enter the raw REPL, run code,
write files. Ports are classified before mpremote opens them, so "no port", "port busy" and
"no permission" come out as such rather than mpremote's one "failed to access".
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

from fieldtools.errors import FieldError

# USB-serial bridges found on ESP32 boards (vendor ids): Silicon Labs CP210x, WCH CH340/CH9102,
# FTDI, and Espressif's own USB-Serial/JTAG.
ESP_USB_VIDS = {0x10C4, 0x1A86, 0x0403, 0x303A}
MARK = "@@SP "  # lines the node prints for the tools start with this


def find_port(port: str | None) -> str:
    """The port to use: the one given (checked), or the one ESP32-looking USB serial port."""
    if port:
        check_port(port)
        return port
    from serial.tools import list_ports

    found: list[str] = [str(p.device) for p in list_ports.comports() if p.vid in ESP_USB_VIDS]
    if not found:
        raise FieldError(
            "no_port",
            "no serial port found for a node",
            "plug the node in with a data USB cable (charge-only cables are common), check "
            "`dmesg` for a ttyUSB/ttyACM device, or name it with --port",
        )
    if len(found) > 1:
        raise FieldError(
            "usage", f"several serial ports found ({', '.join(found)})", "choose one with --port"
        )
    check_port(found[0])
    return found[0]


def check_port(port: str) -> None:
    """Fail with a field error if the port is missing, not a serial device, or unusable."""
    try:
        st = os.stat(port)
    except FileNotFoundError:
        raise FieldError(
            "no_port",
            f"no serial port {port}",
            "is the node plugged in (data cable, not charge-only)? `ls /dev/ttyUSB* /dev/ttyACM*` "
            "lists the ports; a virtual node prints its own",
        ) from None
    if not stat.S_ISCHR(st.st_mode):
        raise FieldError("no_port", f"{port} is not a serial device")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except PermissionError:
        raise FieldError(
            "port_busy",
            f"no permission to open {port}",
            "add yourself to the dialout group (`sudo usermod -aG dialout $USER`), log in again",
        ) from None
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise _busy(port) from None
        raise FieldError("no_port", f"cannot open {port}: {e.strerror}") from None
    try:
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(port) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _busy(port: str) -> FieldError:
    return FieldError(
        "port_busy",
        f"serial port {port} is busy: another program has it open",
        "close other mpremote, Thonny, screen, minicom or a serial monitor and try again",
    )


def is_virtual(port: str) -> bool:
    """A pseudo-terminal: a virtual node (MicroPython unix port behind socat)."""
    return os.path.realpath(port).startswith("/dev/pts/")


class NodeLink:
    """An open raw-REPL session with a node.

    ``soft_reset``: on a real ESP32 a soft reset before the first command stops the running
    node application and gives the tools a clean heap (boot.py runs again; main.py does not, in
    raw REPL mode). The virtual node has no soft reset (Ctrl-D at its prompt exits it), so it
    is resumed instead, as `mpremote ... resume` does.
    """

    def __init__(self, port: str, soft_reset: bool | None = None, baud: int = 115200) -> None:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        check_port(port)
        self.port = port
        self.virtual = is_virtual(port)
        try:
            self._t = SerialTransport(port, baudrate=baud)
        except TransportError:
            check_port(port)  # classify: gone or busy since the check above
            raise _busy(port) from None
        try:
            reset = (not self.virtual) if soft_reset is None else soft_reset
            self._t.enter_raw_repl(soft_reset=reset)
        except TransportError as e:
            self._t.close()
            raise FieldError(
                "node",
                f"no MicroPython prompt on {port} ({e})",
                "is MicroPython flashed (`streetpole node flash`)? press the board's EN/RST button "
                "and try again; a program stuck without yielding to the REPL also does this",
            ) from None

    def close(self) -> None:
        try:
            self._t.exit_raw_repl()
        finally:
            self._t.close()

    def __enter__(self) -> NodeLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exec(self, code: str, on_output: Callable[[str], None] | None = None) -> str:
        """Run code on the node; its output as text. A Python error on the node raises."""
        from mpremote.transport import TransportError, TransportExecError

        consumer = None
        seen: list[bytes] = []
        if on_output is not None:

            def consumer(b: bytes) -> None:
                b = b.replace(b"\x04", b"")
                seen.append(b)
                on_output(b.decode(errors="replace"))

        try:
            out: bytes = self._t.exec(code, data_consumer=consumer)
        except TransportExecError as e:
            raise NodeCodeError(e.error_output) from None
        except TransportError as e:
            raise FieldError(
                "node", f"lost the node on {self.port}: {e}", "check the cable; press EN/RST"
            ) from None
        except OSError as e:  # the port went away (cable pulled, virtual node stopped)
            raise FieldError("no_port", f"lost the serial port {self.port}: {e}") from None
        return (b"".join(seen) if on_output is not None else out).decode(errors="replace")

    def exec_marked(self, code: str, on_output: Callable[[str], None] | None = None) -> list[Any]:
        """Run code that prints `@@SP <json>` lines; those values, in order."""
        return list(marked(self.exec(code, on_output)))

    def write_file(
        self, path: str, data: bytes, progress: Callable[[int, int], None] | None = None
    ) -> None:
        from mpremote.transport import TransportError

        try:
            self._t.fs_writefile(path, data, chunk_size=1024, progress_callback=progress)
        except (TransportError, OSError) as e:
            raise FieldError(
                "node",
                f"writing {path} on the node failed: {e}",
                "flash full, or the cable dropped; run the command again (only what differs is "
                "sent)",
            ) from None


class NodeCodeError(Exception):
    """A Python exception on the node; the node's traceback text."""

    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = output

    @property
    def last_line(self) -> str:
        lines = [ln for ln in self.output.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else "error on the node"


def marked(text: str) -> Iterator[Any]:
    for line in text.splitlines():
        if line.startswith(MARK):
            yield json.loads(line[len(MARK) :])
