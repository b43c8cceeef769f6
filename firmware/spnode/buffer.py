"""Store-and-forward: a bounded, drop-oldest queue of encoded measurement batches.

Batches (the bytes of a ``meas`` payload, with their original timestamps inside) wait here until
the broker has acknowledged them. Sending is peek, publish, commit: a batch leaves the queue only
when its PUBACK came, so a connection lost mid-publish resends it (the controller deduplicates).
When full, the oldest batch goes and ``dropped`` counts it (reported in the node state)::

    buf = Buffer(max_bytes=160000, max_count=90, path="meas.q")   # 90 min of ~1.5 KB batches
    buf.restore()                                      # after a reboot: what was not yet sent
    buf.push(payload)
    item = buf.peek()                                  # (rid, bytes) of the oldest, or None
    if item and await client.publish(topic, item[1], qos=1):
        buf.commit(item[0])

Two modes. Without ``path`` the batches are kept in RAM (the simulator's many nodes, tests).
With ``path`` they are kept only in a journal on flash and RAM holds just their offsets and
sizes: an hour of batches with a dozen readings each (~70 KB) does not fit an ESP32's heap, but
fits its flash many times over. Journal records: ``b"D" + len (2 bytes, big endian) + crc32
(4 bytes) + data`` per push, a one-byte ``b"P"`` per removal (commit or drop). ``restore()``
replays it after a reboot and stops at the first torn or corrupt record (power lost mid-write);
``compact()`` (run by ``restore`` and when the journal outgrows the live data) rewrites it as a
temporary file renamed over the old one. The dropped counter is not journalled (it restarts at 0
with the boot counter).
"""

from spnode.compat import const
from spnode.flash import replace

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
# (max_bytes, max_count) the node uses: a batch with every sensor fitted is ~1.5 KB, so an hour
# at one batch a minute is ~90 KB. In RAM (simulated nodes on CPython) 72 batches; on flash 90
# (an hour and a half).
SIZE_RAM = (110000, 72)
SIZE_FLASH = (160000, 90)


def _head(data):
    return b"D" + len(data).to_bytes(2, "big") + (crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")


class Buffer:
    def __init__(self, max_bytes=40000, max_count=72, path=None):
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.path = path
        self._data = []  # RAM mode: the batches, oldest first
        self._offs = []  # flash mode: offset of each batch's data in the journal
        self._lens = []  # size of each batch
        self._first = 0  # rid of the oldest batch
        self.used = 0  # bytes held
        self.dropped = 0  # batches lost to a full queue (or refused as too big)
        self.pushed = 0
        self.sent = 0
        self._journal = 0  # bytes in the journal file
        self._f = None

    def __len__(self):
        return len(self._lens)

    # ---- queue ---------------------------------------------------------------------------
    def push(self, batch):
        """Queue a batch (bytes); drop the oldest while over capacity; return how many went."""
        n = len(batch)
        if n == 0 or n > self.max_bytes or n > MAX_BATCH:
            self.dropped += 1
            return 1
        gone = 0
        while self._lens and (self.used + n > self.max_bytes or len(self._lens) >= self.max_count):
            self._pop()
            gone += 1
        self.dropped += gone
        if self.path is None:
            self._data.append(bytes(batch))
        else:
            self._offs.append(self._journal + _HDR)
            self._append(_head(batch), batch)
        self._lens.append(n)
        self.used += n
        self.pushed += 1
        if self.path is not None:
            self._maybe_compact()
        return gone

    def peek(self):
        """(rid, bytes) of the oldest batch, or None when empty."""
        if not self._lens:
            return None
        if self.path is None:
            return self._first, self._data[0]
        with open(self.path, "rb") as f:
            f.seek(self._offs[0])
            return self._first, f.read(self._lens[0])

    def commit(self, rid):
        """Remove batch ``rid`` after its publish was acknowledged. False if it is no longer
        the oldest (it was dropped meanwhile to make room): nothing else is removed."""
        if not self._lens or rid != self._first:
            return False
        self._pop()
        self.sent += 1
        if self.path is not None:
            self._maybe_compact()
        return True

    def _pop(self):
        self.used -= self._lens.pop(0)
        self._first += 1
        if self.path is None:
            self._data.pop(0)
        else:
            self._offs.pop(0)
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

    def _maybe_compact(self):
        if self._journal > 2 * (self.used + _HDR * len(self._lens)) + 4096:
            self.compact()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def restore(self):
        """Reload the queue from the journal after a reboot; return the number of batches.
        A torn or corrupt tail is ignored (and gone after the compaction that follows)."""
        self.close()
        self._offs = []
        self._lens = []
        self.used = 0
        try:
            f = open(self.path, "rb")
        except OSError:
            return 0
        pos = 0
        try:
            while True:
                kind = f.read(1)
                pos += 1
                if kind == b"P":
                    if self._lens:
                        self.used -= self._lens.pop(0)
                        self._offs.pop(0)
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
                self._offs.append(pos + _HDR - 1)
                self._lens.append(n)
                self.used += n
                pos += _HDR - 1 + n
        finally:
            f.close()
        self._journal = pos
        # capacity may have shrunk since: keep the newest
        while self._lens and (self.used > self.max_bytes or len(self._lens) > self.max_count):
            self.used -= self._lens.pop(0)
            self._offs.pop(0)
            self.dropped += 1
        self.compact()
        return len(self._lens)

    def compact(self):
        """Rewrite the journal with only the live batches (temp file, then rename)."""
        self.close()
        tmp = self.path + ".tmp"
        offs = []
        pos = 0
        src = None
        try:
            if self._lens:
                src = open(self.path, "rb")
            with open(tmp, "wb") as out:
                for i in range(len(self._lens)):
                    src.seek(self._offs[i])
                    data = src.read(self._lens[i])
                    out.write(_head(data))
                    out.write(data)
                    offs.append(pos + _HDR)
                    pos += _HDR + len(data)
        finally:
            if src is not None:
                src.close()
        replace(tmp, self.path)
        self._offs = offs
        self._journal = pos
