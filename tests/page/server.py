"""The app the page tests serve: the API's own, with the page router included if ``api/app.py`` does not yet.

Run it as uvicorn's factory (``uvicorn --factory tests.page.server:create_app``);
once ``create_app`` includes the router, the tests serve ``tripsearch serve`` itself.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app as create_api_app
from api.routes import page

__all__ = ["create_app", "serves_page"]


def serves_page(app: FastAPI) -> bool:
    """Tell whether an app already routes ``/`` to the page."""
    return any(getattr(route, "endpoint", None) is page.page for route in app.routes)


def create_app() -> FastAPI:
    """Return the API app (settings from ``TRIPSEARCH_*``) serving the page at ``/``."""
    app = create_api_app()
    if not serves_page(app):
        app.include_router(page.router)
    return app
