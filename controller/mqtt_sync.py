"""Keeps the broker's accounts in step with the registry, and tells mosquitto to re-read them.

Off when ``broker_auth_dir`` is unset (a development broker with anonymous access). With it, the
password and ACL files there are rewritten from the registry at start and after every node
provisioning or removal, and mosquitto (whose pid is in ``broker_pid_file``) gets a SIGHUP.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.mqtt_auth import (
    ROLE_CONTROLLER,
    MqttAccounts,
    controller_usernames,
    hash_password,
)
from controller.registry.models import Node
from controller.settings import Settings

log = logging.getLogger("streetpole.mqtt")


class BrokerAccounts:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files = MqttAccounts(settings.broker_auth_dir) if settings.broker_auth_dir else None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.files is not None

    def load(self, db: Session) -> None:
        """Rebuild both files from the registry (at start)."""
        if self.files is None:
            return
        rows = db.execute(
            select(Node.pole_id, Node.node, Node.mqtt_password_hash).where(
                Node.mqtt_password_hash.is_not(None)
            )
        ).all()
        with self._lock:
            self.files.replace_nodes({(p, n): h for p, n, h in rows if h})
            s = self.settings
            if s.mqtt_username and s.mqtt_password:
                pw_hash = hash_password(s.mqtt_password)
                for username in controller_usernames(s.mqtt_username, s.ingest_processes):
                    self.files.set_service(username, pw_hash, ROLE_CONTROLLER)
            self._apply()

    def set_node(self, pole: str, node: str, password_hash: str) -> None:
        if self.files is None:
            return
        with self._lock:
            self.files.set_node(pole, node, password_hash)
            self._apply()

    def remove_node(self, pole: str, node: str) -> None:
        if self.files is None:
            return
        with self._lock:
            if self.files.remove_node(pole, node):
                self._apply()

    def _apply(self) -> None:
        assert self.files is not None
        if not self.files.write():
            return
        pid_file = self.settings.broker_pid_file
        if pid_file is None:
            log.warning("broker accounts changed, but no broker_pid_file to signal")
            return
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)
        except (OSError, ValueError) as exc:
            log.error("could not signal the broker to reload its accounts: %s", exc)


__all__ = ["ROLE_CONTROLLER", "BrokerAccounts"]
