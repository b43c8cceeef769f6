"""Store-and-forward buffer: capacity (an hour of one-minute batches), drop-oldest with every drop
counted, peek/publish/commit, batches kept until the controller confirms them and sent again
after a rewind, the flash journal across reboots and torn writes (and a journal written before
confirmations), compaction; and the same cases on MicroPython."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from protocols import codec
from spnode.buffer import SIZE_FLASH, SIZE_RAM, Buffer
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT

SCRIPT = ROOT / "tests" / "mp" / "buffer_check.py"
TS = 1795582800

# what a node with every sensor reports each minute (pm, climate, NO2, noise, motion, lamp)
QUANTITIES = [
    ("pm1", "pm"), ("pm25", "pm"), ("pm10", "pm"), ("temperature", "climate"),
    ("relativeHumidity", "climate"), ("atmosphericPressure", "climate"), ("no2WE", "no2"),
    ("no2AE", "no2"), ("no2", "no2"), ("LAeq", "noise"), ("LAmax", "noise"), ("LAmin", "noise"),
    ("LA10", "noise"), ("LA90", "noise"), ("presenceCount", "motion"),
    ("illuminanceLevel", "lamp"), ("powerConsumption", "lamp"), ("energyConsumed", "lamp"),
]  # fmt: skip


def full_batch(seq: int) -> bytes:
    ts = TS + 60 * seq
    readings = [
        {
            "ts": ts,
            "q": q,
            "v": 1012.345 if q == "atmosphericPressure" else 0.345,
            "dur": 60,
            "src": src,
            "flags": ["indicative"],
        }
        for q, src in QUANTITIES
    ]
    return codec.encode("meas", {"boot": 1, "seq": seq, "readings": readings})


def seqs(buf: Buffer) -> list[int]:
    """Publish what is due the way the node does (each acknowledged) and return the seq
    numbers, oldest first."""
    out = []
    while (item := buf.peek()) is not None:
        out.append(json.loads(item[1])["seq"])
        assert buf.commit(item[0])
    return out


@pytest.mark.parametrize("journal", [False, True], ids=["ram", "flash"])
def test_an_hour_of_full_batches_fits_with_the_node_defaults(tmp_path: Path, journal: bool) -> None:
    max_bytes, max_count = SIZE_FLASH if journal else SIZE_RAM
    buf = Buffer(max_bytes, max_count, str(tmp_path / "q") if journal else None)
    for seq in range(60):
        assert buf.push(full_batch(seq)) == 0
    assert len(buf) == 60 and buf.dropped == 0
    if journal:  # flash mode holds no batch in RAM
        assert buf._data == []
    assert seqs(buf) == list(range(60))


@pytest.mark.parametrize("journal", [False, True], ids=["ram", "flash"])
def test_full_buffer_drops_oldest_and_counts(tmp_path: Path, journal: bool) -> None:
    buf = Buffer(max_bytes=10_000, max_count=5, path=str(tmp_path / "q") if journal else None)
    for seq in range(8):
        buf.push(b'{"seq":%d}' % seq)
    assert buf.dropped == 3 and len(buf) == 5
    assert seqs(buf) == [3, 4, 5, 6, 7]
    # by bytes as well as by count
    buf = Buffer(max_bytes=30, max_count=100, path=str(tmp_path / "q2") if journal else None)
    for seq in range(5):
        buf.push(b'{"seq":%d}' % seq)  # 9 bytes each: three fit
    assert buf.dropped == 2 and buf.used == 27
    assert seqs(buf) == [2, 3, 4]
    assert buf.push(b"x" * 31) == 1 and buf.dropped == 3  # bigger than the whole buffer
    assert buf.push(b"") == 1 and buf.dropped == 4


def test_commit_of_a_batch_dropped_meanwhile_removes_nothing() -> None:
    buf = Buffer(max_bytes=1000, max_count=2)
    buf.push(b'{"seq":0}')
    rid, _ = buf.peek()  # type: ignore[misc]
    buf.push(b'{"seq":1}')
    buf.push(b'{"seq":2}')  # drops seq 0 while its publish is in flight
    assert not buf.commit(rid)
    assert seqs(buf) == [1, 2] and buf.sent == 2 and buf.dropped == 1


def test_journal_survives_reboot_and_keeps_order(tmp_path: Path) -> None:
    path = str(tmp_path / "q")
    buf = Buffer(max_bytes=100_000, max_count=100, path=path)
    for seq in range(10):
        buf.push(full_batch(seq))
    for _ in range(4):
        rid, _ = buf.peek()  # type: ignore[misc]
        buf.commit(rid)
    buf.close()  # power cut: nothing else is written
    again = Buffer(max_bytes=100_000, max_count=100, path=path)
    assert again.restore() == 6
    assert seqs(again) == [4, 5, 6, 7, 8, 9]
    third = Buffer(max_bytes=100_000, max_count=100, path=path)
    assert third.restore() == 0


def test_torn_and_corrupt_records_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "q"
    buf = Buffer(max_bytes=100_000, max_count=100, path=str(path))
    for seq in range(3):
        buf.push(full_batch(seq))
    buf.close()
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])  # power lost in the middle of the last write
    again = Buffer(max_bytes=100_000, max_count=100, path=str(path))
    assert again.restore() == 2 and seqs(again) == [0, 1]
    bad = bytearray(whole)
    bad[len(whole) // 2] ^= 0xFF  # a flipped bit in the second record: it and the rest go
    path.write_bytes(bytes(bad))
    third = Buffer(max_bytes=100_000, max_count=100, path=str(path))
    assert third.restore() == 1 and seqs(third) == [0]


def test_restore_into_a_smaller_buffer_keeps_the_newest(tmp_path: Path) -> None:
    path = str(tmp_path / "q")
    buf = Buffer(max_bytes=100_000, max_count=100, path=path)
    for seq in range(10):
        buf.push(b'{"seq":%d}' % seq)
    buf.close()
    small = Buffer(max_bytes=100_000, max_count=4, path=path)
    assert small.restore() == 4 and small.dropped == 6
    assert seqs(small) == [6, 7, 8, 9]


def test_journal_is_compacted_while_online(tmp_path: Path) -> None:
    path = tmp_path / "q"
    buf = Buffer(max_bytes=100_000, max_count=100, path=str(path))
    for seq in range(200):  # online: every batch is sent right after it was queued
        buf.push(full_batch(seq % 60))
        assert seqs(buf) == [seq % 60]
    assert path.stat().st_size < 4096 + 2 * 1500
    buf.push(full_batch(7))
    buf.close()
    again = Buffer(max_bytes=100_000, max_count=100, path=str(path))
    assert again.restore() == 1 and seqs(again) == [7]


@pytest.mark.parametrize("journal", [False, True], ids=["ram", "flash"])
def test_a_batch_stays_until_the_controller_confirms_it(tmp_path: Path, journal: bool) -> None:
    path = str(tmp_path / "q") if journal else None
    buf = Buffer(max_bytes=100_000, max_count=100, path=path)
    for seq in range(6):
        buf.push(full_batch(seq), 1, seq)
    assert seqs(buf) == list(range(6))
    assert len(buf) == 6 and buf.awaiting == 6  # acknowledged by the broker, not confirmed
    assert buf.confirm(1, 0, 1) == 2 and len(buf) == 4
    assert buf.confirm(1, 3, 3) == 1  # out of order: seq 2 was lost in the broker
    assert buf.confirm(2, 0, 100) == 0  # another boot's batches: nothing
    assert buf.peek() is None  # nothing new to send until a reconnect sends them again
    buf.awaiting = 0
    assert seqs(buf) == [2, 4, 5]  # the unconfirmed ones again, oldest first
    buf.push(full_batch(6), 1, 6)
    assert seqs(buf) == [6]
    assert buf.confirm(1, 0, 6) == 4 and len(buf) == 0 and buf.used == 0
    assert buf.sent == 7 and buf.dropped == 0


def test_a_confirmation_while_a_publish_is_in_flight() -> None:
    buf = Buffer(max_bytes=100_000, max_count=100)
    for seq in range(3):
        buf.push(b'{"seq":%d}' % seq, 1, seq)
    key0, _ = buf.peek()  # type: ignore[misc]
    assert buf.commit(key0)
    key1, _ = buf.peek()  # type: ignore[misc]
    assert buf.confirm(1, 0, 0) == 1  # seq 0 confirmed while seq 1 waits for its PUBACK
    assert buf.commit(key1)
    assert seqs(buf) == [2]
    buf.awaiting = 0
    key1, _ = buf.peek()  # type: ignore[misc]
    assert buf.confirm(1, 1, 1) == 1  # confirmed before its resend was acknowledged
    assert not buf.commit(key1)  # nothing else is marked sent
    assert len(buf) - buf.awaiting == 1 and seqs(buf) == [2]


@pytest.mark.parametrize("journal", [False, True], ids=["ram", "flash"])
def test_full_store_drops_the_oldest_sent_or_not(tmp_path: Path, journal: bool) -> None:
    """The controller away (nothing confirmed): the store stays bounded, and every batch
    that leaves it unconfirmed is counted."""
    buf = Buffer(max_bytes=100_000, max_count=4, path=str(tmp_path / "q") if journal else None)
    for seq in range(3):
        buf.push(b'{"seq":%d}' % seq, 1, seq)
    assert seqs(buf) == [0, 1, 2]
    for seq in range(3, 7):
        buf.push(b'{"seq":%d}' % seq, 1, seq)
    assert len(buf) == 4 and buf.dropped == 3
    assert seqs(buf) == [3, 4, 5, 6]  # the sent ones went first; the cursor followed
    buf.awaiting = 0
    assert seqs(buf) == [3, 4, 5, 6]


def test_unconfirmed_batches_survive_a_reboot_and_are_sent_again(tmp_path: Path) -> None:
    path = str(tmp_path / "q")
    buf = Buffer(max_bytes=100_000, max_count=100, path=path)
    for seq in range(8):
        buf.push(full_batch(seq), 3, seq)
    assert seqs(buf) == list(range(8))
    buf.confirm(3, 0, 1)
    buf.confirm(3, 4, 4)  # an X record: removed from the middle
    buf.close()  # power cut
    again = Buffer(max_bytes=100_000, max_count=100, path=path)
    assert again.restore() == 5
    assert seqs(again) == [2, 3, 5, 6, 7]
    assert again.confirm(3, 2, 7) == 5 and len(again) == 0
    again.close()
    assert Buffer(max_bytes=100_000, max_count=100, path=path).restore() == 0


def test_a_journal_from_before_confirmations_is_read(tmp_path: Path) -> None:
    """An update must not lose the batches the old firmware kept: its records carry no ids,
    so a PUBACK removes them, as that firmware did."""
    path = tmp_path / "q"
    old = b"".join(
        b"D" + len(d).to_bytes(2, "big") + (zlib.crc32(d) & 0xFFFFFFFF).to_bytes(4, "big") + d
        for d in (full_batch(0), full_batch(1))
    )
    path.write_bytes(old + b"P")  # seq 0 went before the update
    buf = Buffer(max_bytes=100_000, max_count=100, path=str(path))
    assert buf.restore() == 1
    buf.push(full_batch(0), 2, 0)
    assert seqs(buf) == [1, 0] and len(buf) == 1  # the old one left on its PUBACK
    assert buf.confirm(2, 0, 0) == 1 and len(buf) == 0


@pytest.mark.slow
def test_buffer_on_micropython(tmp_path: Path, mpy_tree: Path) -> None:
    out = run_micropython(SCRIPT, str(tmp_path), mpy_root=mpy_tree, cwd=tmp_path).stdout
    lines = out.strip().splitlines()
    assert lines[-1] == "OK", out
