"""Store-and-forward: a bounded, drop-oldest queue of encoded measurement batches.

Batches (the bytes of a ``meas`` payload, with their original timestamps inside) wait here until
the controller has confirmed that it stored them. A broker's PUBACK is not enough: mosquitto
acknowledges a QoS 1 message before it writes it to its persistence file, so a broker that dies
loses what it acknowledged (issue #18). Sending is peek, publish, commit: ``commit`` after the
PUBACK marks the batch sent and ``peek`` moves on to the next; the batch stays until
``confirm(boot, first, last)`` (the controller's ``stored`` message) removes it. Setting
``awaiting`` to 0 (on every reconnect) makes the unconfirmed ones go out again; the controller
deduplicates. A batch pushed without its (boot, seq) is removed by its PUBACK, as before.
When full, the oldest batch goes, sent or not, and ``dropped`` counts it (in the node state)::

    buf = Buffer(max_bytes=160000, max_count=90, path="meas.q")   # 90 min of ~1.5 KB batches
    buf.restore()                                      # after a reboot: what was not confirmed
    buf.push(payload, boot, seq)
    item = buf.peek()                                  # (key, bytes) of the next to send, or None
    if item and await client.publish(topic, item[1], qos=1):
        buf.commit(item[0])
    buf.confirm(boot, 40, 41)                          # the controller stored seq 40 and 41

Two modes. Without ``path`` the batches are kept in RAM (the simulator's many nodes, tests).
With ``path`` they are kept only in a journal on flash and RAM holds just their offsets, sizes
and ids: an hour of batches with a dozen readings each (~70 KB) does not fit an ESP32's heap,
but fits its flash many times over. Journal records: ``b"B" + len (2 bytes, big endian) + crc32
(4 bytes) + boot + seq (4 bytes each) + data`` per push (``b"D"``, without boot and seq, for a
batch without them, and as firmware before confirmations wrote), a one-byte ``b"P"`` per removal
of the oldest (dropped, or confirmed) and ``b"X"`` + its index (2 bytes) per removal of another.
``restore()`` replays it after a reboot and stops at the first torn or corrupt record (power
lost mid-write); ``compact()`` (run by ``restore`` and when the journal outgrows the live data)
rewrites it as a temporary file renamed over the old one. The dropped counter is not journalled
(it restarts at 0 with the boot counter).
"""

from spnode.compat import const, ticks_ms
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


_HDR = const(7)  # b"D" + 2 length bytes + 4 crc bytes; b"B" adds boot and seq
_IDS = const(8)
MAX_BATCH = 8192  # protocols.schema_defs.MAX_PAYLOAD
# (max_bytes, max_count) the node uses: a batch with every sensor fitted is ~1.5 KB, so an hour
# at one batch a minute is ~90 KB. In RAM (simulated nodes on CPython) 72 batches; on flash 90
# (an hour and a half).
SIZE_RAM = (110000, 72)
SIZE_FLASH = (160000, 90)


def _head(data, ids):
    n = len(data).to_bytes(2, "big")
    if ids is None:
        return b"D" + n + (crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")
    tail = ids[0].to_bytes(4, "big") + ids[1].to_bytes(4, "big")
    return b"B" + n + (crc32(data, crc32(tail)) & 0xFFFFFFFF).to_bytes(4, "big") + tail


class Buffer:
    def __init__(self, max_bytes=40000, max_count=72, path=None):
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.path = path
        self._data = []  # RAM mode: the batches, oldest first
        self._offs = []  # flash mode: offset of each batch's data in the journal
        self._lens = []  # size of each batch
        # RAM mode: (boot, seq) of each batch (None: removed by its PUBACK). Flash mode keeps
        # them only in the journal, in front of each batch's data (RAM is what the node lacks)
        self._ids = [] if path is None else None
        self._legacy = 0  # the oldest batches, without ids (they come first)
        # batches sent and waiting for the controller's confirmation: the oldest ones, so this
        # is also the index of the next batch to send. Set to 0 to send them all again
        # (after a reconnect: a broker that died may have lost what it acknowledged)
        self.awaiting = 0
        # the node's timer for sending them again (spnode.app; kept here: one more attribute of
        # the Node grows its table by 1.1 KiB, more than a 96 KiB heap has to spare)
        self.heard = ticks_ms()  # the last confirmation, or the first batch awaiting one
        self.wait = 0  # ms before they go again without one; 0: the first wait
        self.used = 0  # bytes held
        self.dropped = 0  # batches lost to a full queue (or refused as too big)
        self.pushed = 0
        self.sent = 0  # batches that left: confirmed (or acknowledged, without ids)
        self._journal = 0  # bytes in the journal file
        self._f = None

    def __len__(self):
        return len(self._lens)

    # ---- queue ---------------------------------------------------------------------------
    def push(self, batch, boot=None, seq=None):
        """Queue a batch (bytes) made in boot ``boot`` as number ``seq``; drop the oldest while
        over capacity; return how many went."""
        n = len(batch)
        if n == 0 or n > self.max_bytes or n > MAX_BATCH:
            self.dropped += 1
            return 1
        gone = 0
        while self._lens and (self.used + n > self.max_bytes or len(self._lens) >= self.max_count):
            self._pop(0)
            gone += 1
        self.dropped += gone
        ids = None if seq is None else (boot, seq)
        if ids is None:
            if self._legacy < len(self._lens):
                raise ValueError("a batch without ids after batches with")
            self._legacy += 1
        if self.path is None:
            self._data.append(bytes(batch))
        else:
            head = _head(batch, ids)
            self._offs.append(self._journal + len(head))
            self._append(head, batch)
        self._lens.append(n)
        if self.path is None:
            self._ids.append(ids)
        self.used += n
        self.pushed += 1
        if self.path is not None:
            self._maybe_compact()
        return gone

    def _key(self, i, f=None):
        """What peek and commit name batch ``i`` by: its ids, else where its bytes are. In
        flash mode the ids are read from the journal (through ``f`` if open)."""
        if self.path is None:
            k = self._ids[i]
            return self._data[i] if k is None else k
        if i < self._legacy:
            return self._offs[i]
        if f is None:
            with open(self.path, "rb") as f:
                return self._key(i, f)
        f.seek(self._offs[i] - _IDS)
        b = f.read(_IDS)
        return int.from_bytes(b[:4], "big"), int.from_bytes(b[4:], "big")

    def peek(self):
        """(key, bytes) of the oldest batch not sent yet, or None."""
        i = self.awaiting
        if i >= len(self._lens):
            return None
        if self.path is None:
            return self._key(i), self._data[i]
        with open(self.path, "rb") as f:
            key = self._key(i, f)
            f.seek(self._offs[i])
            return key, f.read(self._lens[i])

    def commit(self, key):
        """Batch ``key`` was published and the broker acknowledged it: it waits for the
        controller's confirmation (one without ids goes now). False if it is no longer the
        next to send (dropped meanwhile to make room, or confirmed): nothing else changes."""
        i = self.awaiting
        if i >= len(self._lens) or self._key(i) != key:
            return False
        if i < self._legacy:
            self._pop(i)
            self.sent += 1
            if self.path is not None:
                self._maybe_compact()
        else:
            self.awaiting = i + 1
        return True

    def confirm(self, boot, first, last):
        """The controller has stored the batches of boot ``boot`` numbered ``first`` to
        ``last``: remove those held; return how many."""
        n = 0
        i = self._legacy
        f = None if self.path is None else open(self.path, "rb")
        try:
            while i < len(self._lens):
                k = self._key(i, f)
                if k[0] == boot and first <= k[1] <= last:
                    self._pop(i)
                    n += 1
                else:
                    i += 1
        finally:
            if f is not None:
                f.close()
        self.sent += n
        if n and self.path is not None:
            self._maybe_compact()
        return n

    def _pop(self, i):
        self.used -= self._lens.pop(i)
        if i < self._legacy:
            self._legacy -= 1
        if i < self.awaiting:
            self.awaiting -= 1
        if self.path is None:
            self._ids.pop(i)
            self._data.pop(i)
        else:
            self._offs.pop(i)
            self._append(b"P" if i == 0 else b"X" + i.to_bytes(2, "big"), None)

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
        if self._journal > 2 * (self.used + (_HDR + _IDS) * len(self._lens)) + 4096:
            self.compact()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def _forget(self, i):
        self.used -= self._lens.pop(i)
        self._offs.pop(i)
        if i < self._legacy:
            self._legacy -= 1

    def restore(self):
        """Reload the queue from the journal after a reboot; return the number of batches,
        all to be sent again. A torn or corrupt tail is ignored (and gone after the
        compaction that follows)."""
        self.close()
        self._offs = []
        self._lens = []
        self._legacy = 0
        self.awaiting = 0
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
                if kind == b"P" or kind == b"X":
                    i = 0
                    if kind == b"X":
                        b = f.read(2)
                        if len(b) < 2:
                            break
                        i = int.from_bytes(b, "big")
                        pos += 2
                    if i < len(self._lens):
                        self._forget(i)
                    continue
                if kind != b"D" and kind != b"B":
                    break  # end of file, or garbage: stop here
                extra = _IDS if kind == b"B" else 0
                head = f.read(_HDR - 1 + extra)
                if len(head) < _HDR - 1 + extra:
                    break
                n = int.from_bytes(head[:2], "big")
                data = f.read(n)
                crc = crc32(head[6:]) if extra else 0
                if len(data) < n or (crc32(data, crc) & 0xFFFFFFFF) != int.from_bytes(
                    head[2:6], "big"
                ):
                    break  # torn last record
                pos += _HDR - 1 + extra
                self._offs.append(pos)
                if not extra:
                    if self._legacy < len(self._lens):
                        break  # not written by us: a batch without ids after one with
                    self._legacy += 1
                self._lens.append(n)
                self.used += n
                pos += n
        finally:
            f.close()
        self._journal = pos
        # capacity may have shrunk since: keep the newest
        while self._lens and (self.used > self.max_bytes or len(self._lens) > self.max_count):
            self._forget(0)
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
                    ids = None if i < self._legacy else self._key(i, src)
                    src.seek(self._offs[i])
                    data = src.read(self._lens[i])
                    head = _head(data, ids)
                    out.write(head)
                    out.write(data)
                    pos += len(head)
                    offs.append(pos)
                    pos += len(data)
        finally:
            if src is not None:
                src.close()
        replace(tmp, self.path)
        self._offs = offs
        self._journal = pos
