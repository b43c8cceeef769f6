"""Field failures with a readable message, a hint and an exit code per kind."""

from __future__ import annotations

# Exit codes: scripts (and the commissioning step list) can tell the usual failures apart.
EXIT = {
    "failed": 1,
    "usage": 2,
    "no_port": 3,
    "port_busy": 4,
    "wrong_board": 5,
    "controller": 6,
    "selftest": 7,
    "node": 8,
    "verify": 9,
    "in_service": 10,
}


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
