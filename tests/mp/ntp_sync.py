"""micropython ntp_sync.py PORT: one SNTP sync against 127.0.0.1:PORT, prints the UTC time."""

import asyncio
import sys

from spnode.clock import Clock

clock = Clock()
ok = asyncio.run(clock.sync_ntp("127.0.0.1", int(sys.argv[1])))
print(ok, clock.valid, int(clock.now()))
