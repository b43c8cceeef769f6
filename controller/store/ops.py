"""Operational data from the nodes beside the time series: node state, events, acks, and the
dead-letter store. Always SQLite (it is small), in its own file so it never waits on the
time-series writer."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS node_state (
    pole TEXT NOT NULL, node TEXT NOT NULL, status TEXT NOT NULL, fw TEXT, level REAL,
    boot INTEGER, state TEXT NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (pole, node)
);
CREATE TABLE IF NOT EXISTS events (
    pole TEXT NOT NULL, node TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, kind TEXT NOT NULL, code TEXT, active INTEGER, body TEXT NOT NULL,
    PRIMARY KEY (pole, node, boot, seq)
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS acks (
    pole TEXT NOT NULL, node TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
    status TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL, received REAL NOT NULL,
    PRIMARY KEY (pole, node, kind, id, status)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL, topic TEXT NOT NULL,
    field TEXT NOT NULL, reason TEXT NOT NULL, payload BLOB NOT NULL
);
"""


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` with every lone surrogate (not Unicode, cannot be encoded) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _valid(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_valid(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): _valid(v) for k, v in value.items()}
    return value


def _json_body(body: str) -> Any:
    """A stored JSON body as valid Unicode. Ingest refuses lone surrogates, but rows stored
    before it did may hold them escaped in their JSON, and a response cannot encode them."""
    return _valid(json.loads(body)) if "\\ud" in body.lower() else json.loads(body)


@dataclass
class DeadLetter:
    topic: str
    field: str
    reason: str
    payload: bytes


class OpsStore:
    def __init__(self, path: Path, dead_letter_max: int = 1000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dead_letter_max = dead_letter_max
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def write(
        self,
        states: list[tuple[str, str, dict[str, Any]]],
        events: list[tuple[str, str, dict[str, Any]]],
        acks: list[tuple[str, str, dict[str, Any]]],
        dead: list[DeadLetter],
    ) -> int:
        """Store one ingest batch's non-measurement messages; returns events newly stored."""
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO node_state (pole, node, status, fw, level, boot, state, last_seen)"
                    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (pole, node) DO UPDATE SET"
                    " status=excluded.status, fw=coalesce(excluded.fw, fw),"
                    " level=coalesce(excluded.level, level), boot=coalesce(excluded.boot, boot),"
                    " state=excluded.state, last_seen=excluded.last_seen",
                    [
                        (
                            p,
                            n,
                            m["status"],
                            m.get("fw"),
                            m.get("level"),
                            m.get("boot"),
                            json.dumps(m),
                            now,
                        )
                        for p, n, m in states
                    ],
                )
                cur = db.executemany(
                    "INSERT OR IGNORE INTO events (pole, node, boot, seq, ts, kind, code, active,"
                    " body) VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            p,
                            n,
                            m["boot"],
                            m["seq"],
                            m["ts"],
                            m["kind"],
                            m.get("code"),
                            None if "active" not in m else int(m["active"]),
                            json.dumps(m),
                        )
                        for p, n, m in events
                    ],
                )
                new_events = cur.rowcount
                db.executemany(
                    "INSERT OR IGNORE INTO acks (pole, node, id, kind, status, ts, body, received)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    [
                        (p, n, m["id"], m["kind"], m["status"], m["ts"], json.dumps(m), now)
                        for p, n, m in acks
                    ],
                )
                if dead:
                    db.executemany(
                        "INSERT INTO dead_letters (received, topic, field, reason, payload)"
                        " VALUES (?,?,?,?,?)",
                        [
                            (now, *map(valid_text, (d.topic, d.field, d.reason)), d.payload)
                            for d in dead
                        ],
                    )
                    db.execute(
                        "DELETE FROM dead_letters WHERE id <= "
                        "(SELECT max(id) FROM dead_letters) - ?",
                        (self.dead_letter_max,),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return new_events

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        conn = sqlite3.connect(self.path)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT id, received, topic, field, reason, payload FROM dead_letters"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": r["id"],
                "received": r["received"],
                "topic": valid_text(r["topic"]),
                "field": valid_text(r["field"]),
                "reason": valid_text(r["reason"]),
                "payload": bytes(r["payload"]).decode("utf-8", "replace")[:2000],
            }
            for r in rows
        ]

    def node_states(self, poles: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Every node's state; with ``poles``, only the nodes on those poles."""
        where, args = _on_poles(poles)
        rows = self._read(f"SELECT * FROM node_state{where} ORDER BY pole, node", args)
        return [
            {
                "pole": r["pole"],
                "node": r["node"],
                "status": r["status"],
                "fw": r["fw"],
                "level": r["level"],
                "last_seen": r["last_seen"],
                "state": _json_body(r["state"]),
            }
            for r in rows
        ]

    def events(
        self, limit: int = 100, kind: str | None = None, poles: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        where, args = _on_poles(poles)
        if kind:
            where = f"{where} AND kind = ?" if where else " WHERE kind = ?"
            args = (*args, kind)
        sql = f"SELECT pole, node, body FROM events{where}"
        rows = self._read(sql + " ORDER BY ts DESC LIMIT ?", (*args, limit))
        return [{"pole": r["pole"], "node": r["node"], **_json_body(r["body"])} for r in rows]

    def acks(self, limit: int = 100, poles: Collection[str] | None = None) -> list[dict[str, Any]]:
        where, args = _on_poles(poles)
        rows = self._read(
            f"SELECT pole, node, body FROM acks{where} ORDER BY received DESC LIMIT ?",
            (*args, limit),
        )
        return [{"pole": r["pole"], "node": r["node"], **_json_body(r["body"])} for r in rows]

    def close(self) -> None:
        self._db.close()


def _on_poles(poles: Collection[str] | None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause keeping rows of the given poles (one JSON parameter, any number of poles)."""
    if poles is None:
        return "", ()
    return " WHERE pole IN (SELECT value FROM json_each(?))", (json.dumps(sorted(poles)),)
