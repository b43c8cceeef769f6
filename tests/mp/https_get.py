"""Firmware download over https on MicroPython: spnode.httpget with the node's TLS context.

    micropython https_get.py URL CA_PEM_FILE|-

Prints one JSON line: {"got": bytes received, "sha": hex of their SHA-256} or {"error": repr}.
With ``-`` no context is given (an https URL must then be refused).
"""

import asyncio
import hashlib
import json
import sys
from binascii import hexlify

from spnode import httpget
from spnode.tlsctx import client_context

url, ca = sys.argv[1], sys.argv[2]
ctx = None
if ca != "-":
    with open(ca) as f:
        ctx = client_context(f.read())
h = hashlib.sha256()


async def main():
    try:
        got = await httpget.get(url, h.update, ssl=ctx, timeout_s=5)
        print(json.dumps({"got": got, "sha": hexlify(h.digest()).decode()}))
    except Exception as e:
        print(json.dumps({"error": repr(e)}))


asyncio.run(main())
