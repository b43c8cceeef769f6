"""What the technician sees: numbered steps, a progress line on long ones, plain text otherwise
(so logs and tests read the same as a terminal, minus the redrawn line)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Reporter:
    def __init__(self, out: TextIO | None = None, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet
        self.tty = self.out.isatty()
        self._t0 = time.monotonic()
        self._last_q = -1

    def step(self, text: str) -> None:
        self.line(f"==> {text}")

    def line(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def raw(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text)
            self.out.flush()

    def progress(self, label: str, done: int, total: int) -> None:
        """One redrawn line on a terminal; elsewhere a line at each 25%."""
        if self.quiet or total <= 0:
            return
        pct = min(100, done * 100 // total)
        if self.tty:
            bar = "#" * (pct // 5)
            self.out.write(f"\r    {label:<44} [{bar:<20}] {pct:3d}%")
            if done >= total:
                self.out.write("\n")
            self.out.flush()
        else:
            quarter = pct // 25
            if quarter > self._last_q:
                self.out.write(f"    {label} {pct}%\n")
                self.out.flush()
                self._last_q = quarter
        if done >= total:
            self._last_q = -1

    def elapsed(self) -> float:
        return time.monotonic() - self._t0
