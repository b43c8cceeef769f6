"""Field failures with a readable message, a hint and an exit code per kind.

``KINDS`` is the one place the exit codes are defined; the table in docs/technician.md ("When
something fails") is ``exit_table()``, and tests/test_fieldtools.py checks that the two agree.
"""

from __future__ import annotations

from typing import NamedTuple


class Kind(NamedTuple):
    code: int
    message: str  # how its messages start, as the docs table shows them
    todo: str  # what to do, for the docs table


# Exit codes: scripts (and the commissioning step list) can tell the usual failures apart.
KINDS: dict[str, Kind] = {
    "failed": Kind(1, "`error: ...` (anything else)", "read the message; report it if it repeats"),
    "usage": Kind(
        2,
        "`no API token` / `no firmware image at ...` / `Missing option ...`",
        "the command line: see `streetpole node <command> --help`",
    ),
    "no_port": Kind(3, "`no serial port ...`", "cable (data, not charge-only), `--port`, `dmesg`"),
    "port_busy": Kind(
        4,
        "`serial port ... is busy` / `no permission`",
        "close mpremote, Thonny, screen; join the `dialout` group",
    ),
    "wrong_board": Kind(
        5,
        "`board ... is for an ESP32, but ...` / `.mpy v5`",
        "wrong `--board`, a different chip (S3, C3), or MicroPython too old: flash again",
    ),
    "controller": Kind(
        6,
        "`cannot reach the controller` / `pole ... is not in the registry` / "
        "`already provisioned as ...`",
        "network or URL; the pole id on the label; an ESP32 moved from another pole must be "
        "removed there first (`streetpole node remove <old pole>/n1`, an operator)",
    ),
    "selftest": Kind(
        7,
        "`self-test: N of M checks failed`",
        "each failed check with a hint (I2C wiring, RX/TX swapped, microphone L/R, lamp "
        "current, broker login); fix and run `streetpole node selftest`",
    ),
    "node": Kind(
        8, "`no MicroPython prompt` / `lost the node`", "press EN; re-flash if it stays silent"
    ),
    "verify": Kind(
        9,
        "`files on the node do not match`",
        "run deploy again; if it repeats, the flash is full or failing",
    ),
    "in_service": Kind(
        10,
        "`node RTD-0001/n1 was last heard ... ago (... UTC) and is in service`",
        "the pole id may be a neighbour's: check the label. Replacing that node on purpose (new "
        "ESP32, node.json lost): run again with `--replace`; the old node's credentials stop "
        "working",
    ),
    "position": Kind(
        11,
        "`you are ... m from where the registry has pole ...`",
        "the pole id may be a neighbour's: check the label; if the registry's position is "
        "wrong, run again with `--accept-position` and tell an operator",
    ),
    "flash": Kind(
        12,
        "`esptool: Failed to connect to ESP32 ...` (esptool's own words)",
        "hold BOOT, tap EN, release BOOT and run again; a lower `--baud`; another cable",
    ),
}
EXIT = {kind: k.code for kind, k in KINDS.items()}


def exit_table() -> list[str]:
    """The exit-code table of docs/technician.md, one Markdown line each."""
    rows = ["| exit | message starts | what to do |", "|---|---|---|"]
    rows += [f"| {k.code} | {k.message} | {k.todo} |" for k in KINDS.values()]
    return rows


class FieldError(Exception):
    """Something the technician can fix: what went wrong, and what to do about it."""

    def __init__(self, kind: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.kind = kind if kind in EXIT else "failed"
        self.message = message
        self.hint = hint

    @property
    def exit_code(self) -> int:
        return EXIT[self.kind]

    def __str__(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")
