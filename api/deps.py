"""What routes depend on: the settings, the backend of this process and the place index.

The backend is opened in a background thread when the process starts, so
``/health`` answers while a big index loads and ``/ready`` says when it is
loaded; until then routes that need it answer 503 with ``Retry-After``.
The place index warms up the same way (a few seconds to build the first
time on a machine, a few tenths to read back after: tripsearch.data.stored).
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import Annotated, Any, Callable

from fastapi import Depends, Request

import tripsearch
from tripsearch.backend import Backend
from tripsearch.errors import BackendUnavailable

from .settings import Settings

__all__ = ["EngineHolder", "get_settings", "get_engine", "get_holder", "SettingsDep", "EngineDep", "HolderDep"]

log = logging.getLogger("tripsearch.api")

_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 10.0


class EngineHolder:
    """The backend this process serves from, opened in the background, and the warm-up of place search."""

    def __init__(self, settings: Settings, opener: Callable[..., Backend] = tripsearch.open) -> None:
        self._settings = settings
        self._opener = opener
        self._engine: Backend | None = None
        self._problem = "the index is loading"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.places_loaded = threading.Event()

    def start(self) -> None:
        """Open the backend and build the place index, each in a thread of its own."""
        for target, name in ((self._open, "tripsearch-open"), (self._warm_places, "tripsearch-places")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def engine(self) -> Backend:
        """Return the backend, or raise :class:`BackendUnavailable` while it is not open."""
        engine = self._engine
        if engine is None:
            raise BackendUnavailable(self._problem, retry_after=1.0)
        return engine

    def close(self) -> None:
        """Stop opening and close the backend."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _open(self) -> None:
        settings = self._settings
        options: dict[str, Any] = (
            {"index": settings.backend_index, "request_timeout": settings.backend_timeout}
            if settings.backend_url
            else {"refresh_interval": settings.refresh_interval, "matching": settings.alerts_matching}
        )
        if settings.alerts_db:
            options["alerts"] = settings.alerts_db
        delay = _RETRY_FIRST_S
        while not self._stop.is_set():
            try:
                engine = self._opener(self._settings.target, **options)
                engine.stats()  # a first answer: a backend that cannot give one yet is retried
            except Exception as exc:  # keep trying: /ready says why in the meantime
                self._problem = f"the backend cannot be opened: {exc}"
                log.warning("opening %s failed (%s); retrying in %.1f s", self._settings.target, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            if self._stop.is_set():
                engine.close()
                return
            self._engine = engine
            _freeze_long_lived()
            return

    def _warm_places(self) -> None:
        from tripsearch.data.places import nearest_place, search_places

        try:
            search_places("a")
            nearest_place(0.0, 0.0)  # the table that names the points of search hits
        except Exception:
            log.exception("the place index could not be built")
            return
        _freeze_long_lived()
        self.places_loaded.set()


def _freeze_long_lived() -> None:
    """Move what is alive now (the loaded index, the place index) out of the garbage collector's sight.

    They live as long as the process; without this, every full collection
    walks them (about 40 ms at 1,000,000 trips), a pause in the middle of
    some search.
    """
    gc.collect()
    gc.freeze()


# Dependencies are coroutines so FastAPI calls them inline instead of in the threadpool.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_holder(request: Request) -> EngineHolder:
    holder: EngineHolder = request.app.state.holder
    return holder


async def get_engine(request: Request) -> Backend:
    """Return this process's backend, or answer 503 (``BackendUnavailable``) while it is not open."""
    holder: EngineHolder = request.app.state.holder
    return holder.engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Backend, Depends(get_engine)]
HolderDep = Annotated[EngineHolder, Depends(get_holder)]
