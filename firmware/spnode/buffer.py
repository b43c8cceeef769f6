"""Store-and-forward: a bounded, drop-oldest queue of encoded measurement batches.

Batches (the bytes of a ``meas`` payload, with their original timestamps inside) wait here until
the broker has acknowledged them. Sending is peek, publish, commit: a batch leaves the queue only
when its PUBACK came, so a connection lost mid-publish resends it (the controller deduplicates).
When full, the oldest batch goes and ``dropped`` counts it (reported in the node state)::

    buf = Buffer(max_bytes=40000, max_count=72)       # 72 one-minute batches of ~550 bytes
    buf.push(payload)
    item = buf.peek()                                  # (rid, bytes) of the oldest, or None
    if item and await client.publish(topic, item[1], qos=1):
        buf.commit(item[0])

Optional journal on flash (``path``): every push appends a record ``b"D" + len (2 bytes,
big endian) + crc32 (4 bytes) + data``, every removal (commit or drop) a one-byte ``b"P"``;
``restore()`` replays it after a reboot and stops at the first torn or corrupt record (power
lost mid-write), and ``compact()`` (run by ``restore`` and when the journal outgrows the live
data) rewrites it as a temporary file renamed over the old one. RAM holds the live batches
either way: the journal is there to survive a power cut, not to save heap. The dropped counter
itself is not journalled (it restarts at 0 with the boot counter).
"""

import os

from spnode.compat import const

try:
    from binascii import crc32
except ImportError:  # a port built without it: the slow, correct way

    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF


_HDR = const(7)  # b"D" + 2 length bytes + 4 crc bytes
MAX_BATCH = 8192  # protocols.schema_defs.MAX_PAYLOAD


def _head(data):
    return b"D" + len(data).to_bytes(2, "big") + (crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")


class Buffer:
    def __init__(self, max_bytes=40000, max_count=72, path=None):
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.path = path
        self._items = []  # bytes, oldest first
        self._first = 0  # rid of _items[0]
        self.used = 0  # bytes held
        self.dropped = 0  # batches lost to a full queue (or refused as too big)
        self.pushed = 0
        self.sent = 0
        self._journal = 0  # bytes in the journal file
        self._f = None

    def __len__(self):
        return len(self._items)

    # ---- queue ---------------------------------------------------------------------------
    def push(self, batch):
        """Queue a batch (bytes); drop the oldest while over capacity; return how many went."""
        n = len(batch)
        if n > self.max_bytes or n > MAX_BATCH:
            self.dropped += 1
            return 1
        gone = 0
        while self._items and (
            self.used + n > self.max_bytes or len(self._items) >= self.max_count
        ):
            self._pop()
            gone += 1
        self.dropped += gone
        self._items.append(batch)
        self.used += n
        self.pushed += 1
        if self.path is not None:
            self._append(_head(batch), batch)
        return gone

    def peek(self):
        """(rid, bytes) of the oldest batch, or None when empty."""
        if not self._items:
            return None
        return self._first, self._items[0]

    def commit(self, rid):
        """Remove batch ``rid`` after its publish was acknowledged. False if it is no longer
        the oldest (it was dropped meanwhile to make room): nothing else is removed."""
        if not self._items or rid != self._first:
            return False
        self._pop()
        self.sent += 1
        return True

    def _pop(self):
        self.used -= len(self._items.pop(0))
        self._first += 1
        if self.path is not None:
            self._append(b"P", None)

    # ---- journal -------------------------------------------------------------------------
    def _append(self, head, data):
        f = self._f
        if f is None:
            f = self._f = open(self.path, "ab")
        f.write(head)
        if data is not None:
            f.write(data)
        f.flush()
        self._journal += len(head) + (len(data) if data is not None else 0)
        if self._journal > 2 * (self.used + _HDR * len(self._items)) + 4096:
            self.compact()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def restore(self):
        """Reload the queue from the journal after a reboot; return the number of batches.
        A torn or corrupt tail is ignored (and gone after the compaction that follows)."""
        self.close()
        self._items = []
        self.used = 0
        try:
            f = open(self.path, "rb")
        except OSError:
            return 0
        try:
            while True:
                kind = f.read(1)
                if kind == b"P":
                    if self._items:
                        self.used -= len(self._items.pop(0))
                    continue
                if kind != b"D":
                    break  # end of file, or garbage: stop here
                head = f.read(_HDR - 1)
                if len(head) < _HDR - 1:
                    break
                n = int.from_bytes(head[:2], "big")
                data = f.read(n)
                if len(data) < n or (crc32(data) & 0xFFFFFFFF) != int.from_bytes(head[2:], "big"):
                    break  # torn last record
                self._items.append(data)
                self.used += n
        finally:
            f.close()
        # capacity may have shrunk since: keep the newest
        while self._items and (self.used > self.max_bytes or len(self._items) > self.max_count):
            self.used -= len(self._items.pop(0))
            self.dropped += 1
        self.compact()
        return len(self._items)

    def compact(self):
        """Rewrite the journal with only the live batches (temp file, then rename)."""
        self.close()
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            for data in self._items:
                f.write(_head(data))
                f.write(data)
        try:
            os.rename(tmp, self.path)
        except OSError:  # FAT will not rename over an existing file
            os.remove(self.path)
            os.rename(tmp, self.path)
        self._journal = self.used + _HDR * len(self._items)
