"""The HTTP API of tripsearch (FastAPI under uvicorn): search, places, trip writes, operations.

Build the app with :func:`create_app` (settings from ``TRIPSEARCH_*``
environment variables by default) or run it with ``tripsearch serve``.
"""

from __future__ import annotations

from .app import create_app
from .settings import Settings, SettingsError

__all__ = ["create_app", "Settings", "SettingsError"]
