"""Keeps the broker's accounts in step with the registry, and tells mosquitto to re-read them.

Off when ``broker_auth_dir`` is unset (a development broker with anonymous access). With it, the
password and ACL files there are rewritten from the registry at start and after every node
provisioning or removal, and mosquitto (whose pid is in ``broker_pid_file``) gets a SIGHUP.

Several controllers may share one registry (docs/scaling.md), each changing accounts: so the
registry is the truth for every write, not only at start. Each controller registers its own
processes' accounts there (``service_accounts``), and each write reads the nodes and services from
the registry afresh, holding an advisory lock (PostgreSQL; ``locks.BROKER_FILES``) from that read
until the broker has the files, so the last writer always writes everything committed before it.
Removals commit before they wait here, or the writer would read them back.

The files are written by one thread of their own: a request changes the accounts in memory and
waits until the broker has taken the change up (so the credentials it returns work, and a removed
node's no longer do, when it answers); changes that arrive while a write is under way go out
together in the next one, so concurrent requests share a write and a reload. The registry stays
the truth, and ``load`` rebuilds the files from it at every start.

mosquitto 2.0.11 loses a SIGHUP that arrives while it is reloading (it clears its reload flag
when done), which left a removed node's password working until the next change. So each write
also carries a probe account with a fresh password (``<mqtt_username>-probe``, allowed nothing
but to connect); the writer connects with it until the broker accepts, signalling again while it
refuses. Only then is the write in force, and the next one starts.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from controller.mqtt_auth import (
    PROBE,
    ROLE_CONTROLLER,
    ROLE_PROBE,
    MqttAccounts,
    controller_usernames,
    generate_secret,
    hash_password,
)
from controller.registry import locks
from controller.registry.db import Registry
from controller.registry.models import Node, ServiceAccount
from controller.settings import Settings

log = logging.getLogger("streetpole.mqtt")

# Waiting for the broker to take up a write: first look after this long, then twice as long each
# time up to the most, and give up (logged; the next change tries again) after the last.
CONFIRM_FIRST_S = 0.02
CONFIRM_MAX_S = 2.0
CONFIRM_GIVE_UP_S = 120.0
# A provisioning or removal returns once the broker has taken it up, or after this long.
APPLY_WAIT_S = 10.0


class BrokerAccounts:
    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.files = MqttAccounts(settings.broker_auth_dir) if settings.broker_auth_dir else None
        self._lock = threading.Lock()  # guards self.files (in memory)
        self._write_lock = threading.Lock()  # one writer of the files at a time
        self._dirty = threading.Event()
        self._in_force = threading.Condition(self._lock)
        self._generation = 0  # changes made in memory
        self._applied = 0  # of those, the ones the broker is known to have taken up
        self._closing = False
        self._writer: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.files is not None

    def load(self, db: Session) -> None:
        """Register this controller's accounts in the registry and rebuild both files from it
        (at start). The caller commits, then calls ``write_now()``."""
        if self.files is None:
            return
        s = self.settings
        if s.mqtt_username and s.mqtt_password:
            pw_hash = hash_password(s.mqtt_password)
            for username in controller_usernames(s.mqtt_username, s.ingest_processes):
                account = ServiceAccount(
                    username=username, password_hash=pw_hash, role=ROLE_CONTROLLER
                )
                db.merge(account)
            db.flush()
        self._read_registry(db)

    def write_now(self) -> None:
        """Write the files (after ``load``'s transaction committed) and wait until the broker has
        them, at most APPLY_WAIT_S: this controller's own accounts are then in force before its
        ingest and dispatcher connect (else their first connects are refused and back off)."""
        if self.files is None:
            return
        with self._lock:
            self._generation += 1
            generation = self._generation
        self._schedule()
        self._wait(generation)

    def _read_registry(self, db: Session) -> None:
        assert self.files is not None
        rows = db.execute(
            select(Node.pole_id, Node.node, Node.mqtt_password_hash).where(
                Node.mqtt_password_hash.is_not(None)
            )
        ).all()
        services = db.execute(
            select(ServiceAccount.username, ServiceAccount.password_hash, ServiceAccount.role)
        ).all()
        with self._lock:
            self.files.replace_nodes({(p, n): h for p, n, h in rows if h})
            for username, pw_hash, role in services:
                self.files.set_service(username, pw_hash, role)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """The registry read afresh, as the one writer of the files among the controllers that
        share it (an advisory lock held until the write is in force, PostgreSQL only)."""
        if self.registry is None:
            yield
            return
        with self.registry.session() as db:
            if self.registry.path is None:
                db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": locks.BROKER_FILES})
            with self.registry.session() as fresh:  # a snapshot taken after the lock
                self._read_registry(fresh)
            yield

    def set_node(self, pole: str, node: str, password_hash: str) -> None:
        if self.files is None:
            return
        with self._lock:
            self.files.set_node(pole, node, password_hash)
            self._generation += 1
            generation = self._generation
        self._schedule()
        self._wait(generation)

    def remove_node(self, pole: str, node: str) -> None:
        if self.files is None:
            return
        with self._lock:
            changed = self.files.remove_node(pole, node)
            if changed:
                self._generation += 1
            generation = self._generation
        if changed:
            self._schedule()
            self._wait(generation)

    def _wait(self, generation: int) -> None:
        """Until the broker took up this change (or a later one), at most APPLY_WAIT_S."""
        with self._lock:
            if not self._in_force.wait_for(lambda: self._applied >= generation, APPLY_WAIT_S):
                log.warning("an account change is not in force on the broker yet")

    def close(self) -> None:
        """Write what is pending and stop the writer (at controller shutdown)."""
        with self._lock:
            self._closing = True
            writer = self._writer
        self._dirty.set()
        if writer is not None:
            writer.join()

    def _schedule(self) -> None:
        with self._lock:
            if self._closing:
                pending = True
            else:
                pending = False
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._run, name="broker-accounts", daemon=True
                    )
                    self._writer.start()
        if pending:  # shutting down: write now rather than never
            self._write()
        else:
            self._dirty.set()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            try:
                self._write()
            except Exception:  # a full disk, say: the next change tries again
                log.exception("could not write the broker's account files")
            with self._lock:
                if self._closing and not self._dirty.is_set():
                    return

    def _write(self) -> None:
        assert self.files is not None
        with self._write_lock, self._turn():
            probe = self._probe_username()
            secret = generate_secret()
            with self._lock:  # render under the lock, write outside it
                if probe is not None:
                    self.files.set_service(probe, hash_password(secret), ROLE_PROBE)
                acl, passwords = self.files.render_acl(), self.files.render_passwords()
                generation = self._generation
            written = self.files.write_files(acl, passwords)
            if written and self._signal() and probe and not self._confirm(probe, secret):
                return  # not in force: the waiters give up on their own
            with self._lock:
                self._applied = max(self._applied, generation)
                self._in_force.notify_all()

    def _probe_username(self) -> str | None:
        s = self.settings
        return f"{s.mqtt_username}-{PROBE}" if s.mqtt_username and s.broker_pid_file else None

    def _signal(self) -> bool:
        pid_file = self.settings.broker_pid_file
        if pid_file is None:
            log.warning("broker accounts changed, but no broker_pid_file to signal")
            return False
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError) as exc:
            log.error("could not signal the broker to reload its accounts: %s", exc)
            return False
        return True

    def _confirm(self, username: str, secret: str) -> bool:
        """Until the broker accepts the probe's new password: then the files are in force."""
        delay = CONFIRM_FIRST_S
        deadline = time.monotonic() + CONFIRM_GIVE_UP_S
        if self._accepts(username, secret):  # mostly: the signal woke it before the CONNECT
            return True
        while True:
            time.sleep(delay)  # a reload under way ends
            if self._accepts(username, secret):
                return True
            if time.monotonic() > deadline:
                log.error("the broker did not take up its account files in %ss", CONFIRM_GIVE_UP_S)
                return False
            self._signal()  # lost during a reload, or not yet handled: once more, later
            delay = min(delay * 2, CONFIRM_MAX_S)

    def _accepts(self, username: str, password: str) -> bool:
        """Does the broker accept this account now? One CONNECT and its CONNACK, with paho."""
        s = self.settings
        answer: list[bool] = []
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=username)
        client.username_pw_set(username, password)
        if s.mqtt_tls:
            client.tls_set_context(ssl.create_default_context())
        client.on_connect = lambda _c, _u, _f, rc, _p: answer.append(not rc.is_failure)
        try:
            client.connect(s.mqtt_host, s.mqtt_port, keepalive=10)
            deadline = time.monotonic() + CONFIRM_MAX_S
            while not answer and time.monotonic() < deadline:
                if client.loop(0.05) != paho.MQTT_ERR_SUCCESS:
                    break
        except (OSError, ssl.SSLError):
            return False
        finally:
            client.disconnect()
        return bool(answer) and answer[0]


__all__ = ["ROLE_CONTROLLER", "BrokerAccounts"]
