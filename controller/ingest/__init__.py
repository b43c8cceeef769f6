"""MQTT ingest: node messages in, stored exactly once, acknowledged only after commit."""
