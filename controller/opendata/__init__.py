"""Open data: the public, read-only SensorThings API 1.1 (/sta/v1.1), downloads, GeoJSON, the
sensor register and the landing page (/opendata). ``install(app, settings)`` adds it to an app."""

from controller.opendata.routes import install

__all__ = ["install"]
