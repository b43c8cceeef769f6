"""Time-series storage behind one interface (base.TimeSeriesStore), and the ops store."""

from __future__ import annotations

from controller.settings import Settings
from controller.store.base import TimeSeriesStore


def open_store(settings: Settings) -> TimeSeriesStore:
    """The configured backend, opened."""
    if settings.store == "influxdb":
        from controller.store.influx import InfluxStore

        if not settings.influxdb_url:
            raise ValueError("STREETPOLE_INFLUXDB_URL must be set when STREETPOLE_STORE=influxdb")
        return InfluxStore(
            settings.influxdb_url,
            settings.influxdb_token,
            settings.influxdb_org,
            settings.influxdb_bucket,
        )
    if settings.store == "postgresql":
        from controller.store.postgres import PostgresStore

        if not settings.store_url:
            raise ValueError("STREETPOLE_STORE_URL must be set when STREETPOLE_STORE=postgresql")
        return PostgresStore(
            settings.store_url,
            settings.retention_raw_days,
            settings.retention_minute_days,
            settings.retention_hour_days,
            settings.store_compact_after_s,
        )
    from controller.store.sqlite import SqliteStore

    return SqliteStore(
        settings.database_path,
        settings.retention_raw_days,
        settings.retention_minute_days,
        settings.retention_hour_days,
    )
