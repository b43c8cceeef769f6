"""Failed logins per account and per client address, and the back-off that follows them.

Written here rather than taken from a rate-limit library: what it needs is a count of
*failures* (a right password resets the account's count, and the wait doubles with each
failure past a free allowance), not a request rate, and it is a few lines over a dict. It lives
in the process (several controller processes each keep their own, so the allowance is per
process); it forgets an address or account once its back-off has long passed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

MAX_KEYS = 100_000


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


class LoginGuard:
    def __init__(self, free_account: int, free_ip: int, max_backoff_s: float) -> None:
        self.free = {"user": free_account, "ip": free_ip}
        self.max_backoff_s = max_backoff_s
        self._seen: dict[tuple[str, str], _Failures] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, ip: str) -> list[tuple[str, str]]:
        return [("user", username.strip().lower()), ("ip", ip)]

    def wait_s(self, username: str, ip: str, now: float | None = None) -> float:
        """Seconds until this account and address may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return max(
                (
                    f.blocked_until - now
                    for k in self._keys(username, ip)
                    if (f := self._seen.get(k))
                ),
                default=0.0,
            )

    def failed(self, username: str, ip: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._seen) >= MAX_KEYS:
                self._forget(now)
            for k in self._keys(username, ip):
                f = self._seen.setdefault(k, _Failures())
                f.count += 1
                f.last = now
                over = f.count - self.free[k[0]]
                if over > 0:
                    f.blocked_until = now + min(self.max_backoff_s, 2.0 ** (over - 1))

    def succeeded(self, username: str, ip: str) -> None:
        """The account's count starts again; the address keeps its own (one good account must
        not let an address go on guessing others)."""
        with self._lock:
            self._seen.pop(self._keys(username, ip)[0], None)

    def _forget(self, now: float) -> None:
        quiet = 2 * self.max_backoff_s
        self._seen = {k: f for k, f in self._seen.items() if now - f.last < quiet}
        if len(self._seen) >= MAX_KEYS:
            self._seen.clear()  # a flood of distinct names: start over rather than grow
