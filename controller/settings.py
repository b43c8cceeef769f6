"""Controller settings, from the environment (prefix STREETPOLE_) or a .env file.

Created once in the app factory or the CLI, never at import, and checked there: a wrong setting
stops the controller at start with a message naming it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def is_postgresql(url: str) -> bool:
    """A PostgreSQL database URL (``postgresql://``, or SQLAlchemy's ``postgresql+psycopg://``)."""
    return urlparse(url).scheme.split("+")[0] == "postgresql"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREETPOLE_", env_file=".env", extra="ignore")

    # MQTT
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_client_id: str = "streetpole-controller"
    # With a group name, ingest subscribes through the shared subscription $share/<group>/...,
    # so several processes split the stream; by default "streetpole-ingest" when several may
    # ingest (ingest_processes > 1, or a PostgreSQL registry other controllers can share), else
    # a plain subscription (controller/ingest/worker.py says why).
    mqtt_shared_group: str | None = None
    ingest_enabled: bool = True
    # What provisioning writes into node.json: the broker URL the nodes reach (default
    # mqtt_url; the controller may use a loopback listener while nodes come over mqtts://), the
    # PEM file of the CA that signed the broker's certificate (the only CA nodes trust; a node
    # refuses mqtts:// without one) and the name in that certificate when it is not the URL's host.
    node_mqtt_url: str | None = None
    node_ca_file: Path | None = None
    node_tls_server_name: str | None = None
    # Ingest in this many processes: this one and ingest_processes - 1 children it starts and
    # restarts (controller/ingest/children.py), splitting the stream through a shared
    # subscription (group mqtt_shared_group, default "streetpole-ingest"). One process decodes
    # at most about one core's worth; on SQLite the processes write to one file, one
    # transaction at a time, and decode in parallel. More than the machine's cores gains nothing.
    ingest_processes: int = Field(1, ge=1, le=32)

    # Time series
    store: Literal["sqlite", "influxdb", "postgresql"] = "sqlite"
    # The PostgreSQL time-series database when store = "postgresql" (libpq URL, e.g.
    # postgresql://streetpole@db:5432/streetpole; postgresql+psycopg:// is accepted too), and
    # how long after an hour ends its points are compacted into one row per stream
    # (controller/store/postgres.py); later points are merged in at a higher cost.
    store_url: str | None = None
    store_compact_after_s: int = Field(7200, ge=0)
    data_dir: Path = Path("var")
    sqlite_path: Path | None = None  # default: <data_dir>/streetpole.db
    influxdb_url: str | None = None
    influxdb_token: str = "streetpole"
    influxdb_org: str = "streetpole"
    influxdb_bucket: str = "streetpole"

    # Ingest
    # Messages per transaction. Keep it under half the broker's max_inflight_messages
    # (controller/broker.py): the broker sends no more unacknowledged messages than that, and
    # the next batch fills while one is written. Larger batches are cheaper per message because
    # a commit writes every page it dirtied, about one per stream, whatever the number of rows
    # (docs/performance.md, "Batch size"). Only a backlog fills a batch; a trickle is
    # flushed every ingest_flush_ms.
    ingest_batch_max: int = Field(24_000, ge=1, le=100_000)
    ingest_flush_ms: int = Field(20, ge=1, le=10_000)
    dead_letter_max: int = Field(1000, ge=10, le=1_000_000)
    # A measurement batch or event stamped more than this far ahead of the controller's clock is
    # refused (dead letter, clockAhead alarm): a node whose clock runs ahead would otherwise
    # hold the "latest" value of its streams until that time comes.
    ingest_max_clock_ahead_s: int = Field(300, ge=1, le=86_400)
    # Ingest takes a reading only from a module of the node that measures its quantity; it
    # re-reads the registry's modules this often (and at once for a node it finds no match for).
    ingest_modules_refresh_s: float = Field(30.0, ge=0)

    # Registry (SQLAlchemy URL); default: sqlite:///<data_dir>/registry.db
    database_url: str | None = None
    # Login tokens from the OAuth2 password flow live this long (API tokens choose their own).
    login_token_ttl_s: int = Field(12 * 3600, ge=60)
    # Broker accounts: where the password and ACL files are kept in step with the registry, and
    # the pid file of the mosquitto to send SIGHUP to after a change (None: no broker auth).
    broker_auth_dir: Path | None = None
    broker_pid_file: Path | None = None
    # Where nodes download firmware from (the controller serves /firmware/<file>).
    public_url: str = "http://127.0.0.1:8000"
    # Reverse proxies (addresses or networks, e.g. ["10.0.0.5", "fd00::/8"]) whose
    # X-Forwarded-For/-Proto are believed; from anyone else they are ignored and the peer's
    # address is the client's (rate limits, login back-off). Empty: no proxy is trusted.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Send configs and commands to the nodes over MQTT.
    dispatch_enabled: bool = True
    # A node silent for this many report periods is raised as offline.
    offline_after_periods: int = Field(3, ge=1)
    # A node provisioned this long ago and never heard since raises nodeNeverHeard.
    never_heard_grace_s: int = Field(3600, ge=1)
    # Provisioning a node heard within this many seconds is refused unless asked to replace it:
    # new credentials would take a working node off the broker (a typo in the pole id, say).
    reprovision_guard_s: int = Field(600, ge=0)

    # Operator API under load: at most api_concurrency requests hold a registry transaction at
    # once; up to api_queue more wait at most api_queue_wait_s for a turn; the rest, and those
    # that waited too long, are answered 503 with Retry-After (controller/api/admission.py).
    api_concurrency: int = Field(8, ge=1, le=64)
    api_queue: int = Field(500, ge=0, le=100_000)
    api_queue_wait_s: float = Field(10.0, gt=0, le=120)
    # Readiness turns red below this much free space in data_dir.
    min_free_mb: int = Field(64, ge=0)
    # Login back-off (controller/login_guard.py): after this many failed logins of one account,
    # or from one address, each further try waits twice as long, from 1 s up to the maximum.
    login_free_failures_account: int = Field(5, ge=1)
    login_free_failures_ip: int = Field(20, ge=1)
    login_max_backoff_s: int = Field(900, ge=1)
    # Prometheus /metrics: with a token, only `Authorization: Bearer <token>` gets them; without,
    # only clients on this machine (loopback) do.
    metrics_token: SecretStr | None = None

    # Retention (days); 0 keeps forever
    retention_raw_days: int = Field(30, ge=0)
    retention_minute_days: int = Field(180, ge=0)
    retention_hour_days: int = Field(0, ge=0)

    # Open data: SensorThings API 1.1 at /sta/v1.1, downloads and register at /opendata.
    # Only streams of open modules without personal data are published; a bearer token of an
    # operator account adds restricted streams (of its own owner when it is owner-scoped).
    opendata_title: str = "Streetpole open data"
    opendata_description: str = (
        "Air quality, noise levels, presence counts and street-light state measured by the "
        "smart street poles of the municipality and the parties on its poles."
    )
    opendata_contact: str = "opendata@example.org"
    opendata_update_frequency: str = "every minute (as the poles report)"
    opendata_licence: str = "CC-BY-4.0"
    opendata_licence_url: str = "https://creativecommons.org/licenses/by/4.0/"
    opendata_attribution: str = "Streetpole, the municipality and the owners of the modules"
    # Decimals of published pole positions (5 = about 1 m); per owner slug to coarsen some.
    opendata_location_decimals: int = Field(5, ge=0, le=8)
    opendata_owner_location_decimals: dict[str, int] = Field(default_factory=dict)
    # Motion is published only as counts per interval of this many seconds.
    opendata_motion_interval_s: int = Field(900, ge=60, le=86_400)
    opendata_default_top: int = Field(100, ge=1, le=100_000)
    opendata_max_top: int = Field(10_000, ge=1, le=1_000_000)
    # Longest time range of one download or aggregate request, and most rows in one CSV.
    opendata_max_range_days: int = Field(31, ge=1, le=3660)
    opendata_max_csv_rows: int = Field(5_000_000, ge=1)
    # A SensorThings request's queries stop (HTTP 503, narrow it) after this long all together;
    # a CSV download's, per page of 20,000 rows.
    opendata_query_budget_ms: int = Field(5000, ge=10, le=600_000)
    # Most entities in one SensorThings response, those of $expand included (HTTP 400 past it).
    opendata_max_entities: int = Field(100_000, ge=1)
    # The catalog of what may be published is rebuilt at once when owners, poles or modules
    # change, and at least this often for the store's new streams and time spans (0: always).
    opendata_catalog_ttl_s: float = Field(10.0, ge=0)
    # Rate limits (token buckets): requests per second and burst, per client IP and per token.
    opendata_rate_limit: bool = True
    opendata_ip_rate: float = Field(20.0, gt=0)
    opendata_ip_burst: int = Field(200, ge=1)
    opendata_token_rate: float = Field(100.0, gt=0)
    opendata_token_burst: int = Field(1000, ge=1)
    # CSV downloads (per pole, daily archives) streaming at once, in all and per client address;
    # past these, 503 with Retry-After.
    opendata_downloads: int = Field(8, ge=1)
    opendata_downloads_per_client: int = Field(2, ge=1)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError("must look like mqtt://host:port or mqtts://host:port")
        return v

    @field_validator("node_mqtt_url")
    @classmethod
    def _node_mqtt_url(cls, v: str | None) -> str | None:
        return None if v is None else cls._mqtt_url(v)

    @field_validator("node_ca_file")
    @classmethod
    def _node_ca_file(cls, v: Path | None) -> Path | None:
        if v is not None:
            try:
                text = v.read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"cannot read {v}: {e}") from None
            if "-----BEGIN CERTIFICATE-----" not in text:
                raise ValueError(f"{v} holds no PEM certificate")
        return v

    @property
    def node_broker_url(self) -> str:
        return self.node_mqtt_url or self.mqtt_url

    @property
    def node_ca_pem(self) -> str | None:
        """The CA certificate(s) nodes trust, as written into node.json (read when asked, so a
        renewed CA file is handed out without a restart)."""
        return self.node_ca_file.read_text() if self.node_ca_file is not None else None

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError as e:
                raise ValueError(f"{item!r} is not an IP address or network") from e
        return [item.strip() for item in v]

    @property
    def mqtt_host(self) -> str:
        return urlparse(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        u = urlparse(self.mqtt_url)
        return u.port or (8883 if u.scheme == "mqtts" else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlparse(self.mqtt_url).scheme == "mqtts"

    @property
    def registry_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'registry.db'}"

    @property
    def registry_shared(self) -> bool:
        """Whether other controllers may share the registry: a PostgreSQL one (one of them
        leads, controller/leadership.py, and all split ingest)."""
        return is_postgresql(self.registry_url)

    @property
    def database_path(self) -> Path:
        return self.sqlite_path or self.data_dir / "streetpole.db"
