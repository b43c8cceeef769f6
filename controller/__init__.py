"""Streetpole controller: ingest, storage, registry, operator and open-data APIs."""
