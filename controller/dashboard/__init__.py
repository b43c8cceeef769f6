"""Browser pages served by the controller: the operator dashboard and the public data portal
(see docs/dashboard.md)."""

from controller.dashboard.routes import install

__all__ = ["install"]
