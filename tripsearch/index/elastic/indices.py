"""The index behind the alias: its template, its settings, its generations and its mapping version.

Trips live in versioned indices (``trips-000001``, ``trips-000002``, ...)
behind the alias (``trips``), made from the composable index template of
:func:`~tripsearch.index.elastic.mapping.index_template`. :class:`Indices`
opens them (creating the template, the first index and the alias when
missing), reads and adjusts their settings, and keeps the mapping version of
the index searched, refusing searches on one of another version.
"""

from __future__ import annotations

import logging

from elasticsearch import ApiError

from ...errors import BackendUnavailable
from .connection import Connection
from .mapping import MAPPING_VERSION, index_name, index_template, mapping_anchors, mapping_version, template_name

__all__ = ["Indices", "refresh_interval_setting", "index_generation"]

log = logging.getLogger("tripsearch")


class Indices:
    """The versioned indices behind the connection's alias; opening reads (and, with ``create``, makes) them.

    ``number_of_shards`` and ``number_of_replicas`` apply to the index this
    creates (the first one, or the next one on a reindex); when the index
    exists, an explicit ``number_of_replicas`` is applied to it and a
    different ``number_of_shards`` only logs that a reindex is needed.
    ``refresh_interval`` (seconds; 0 turns periodic refresh off) likewise
    applies to new indices. With ``create=False`` a missing alias is an
    error instead of a new empty index.
    """

    def __init__(
        self,
        connection: Connection,
        number_of_shards: int | None,
        number_of_replicas: int | None,
        refresh_interval: float | None,
        create: bool,
    ) -> None:
        self._connection = connection
        self._es = connection.es
        self.alias = connection.alias
        self.number_of_shards = number_of_shards
        self.number_of_replicas = number_of_replicas
        self.refresh_interval = refresh_interval
        self.create = create
        self.anchors: str | None = None  # the fingerprint of the anchor places the index's documents hold
        self.mapping_version = self._open_index()

    def _open_index(self) -> int:
        """Create the template, the first index and the alias if missing; return the mapping version of the index (and note its anchors)."""
        with self._connection.translate("open the index"):
            if self.create and self.alias_target() is None:
                self.put_template()
                try:
                    self._es.indices.create(index=index_name(self.alias, 1), aliases={self.alias: {}})
                except ApiError as exc:
                    if exc.error != "resource_already_exists_exception":
                        raise
                    # another process created it first, alias included (one request)
            concrete = self.concrete_index()
            mapping = self._es.indices.get_mapping(index=concrete)[concrete]["mappings"]
            self._adjust_settings(concrete)
        version = mapping_version(mapping)
        self.anchors = mapping_anchors(mapping)
        if version != MAPPING_VERSION:
            log.warning("index %s has mapping version %d, this code searches version %d: run `tripsearch reindex` (searches fail until then)", concrete, version, MAPPING_VERSION)
        return version

    def concrete_index(self) -> str:
        """Return the index behind the alias."""
        target = self.alias_target()
        if target is None:
            raise BackendUnavailable(f"the alias {self.alias!r} does not exist", retry_after=5.0)
        return target

    def alias_target(self) -> str | None:
        """Return the index behind the alias, or None if there is no alias (nor index) of that name."""
        resp = self._es.options(ignore_status=404).indices.get_alias(name=self.alias)
        if resp.meta.status == 404:
            if self._es.indices.exists(index=self.alias):
                raise BackendUnavailable(f"{self.alias!r} is an index, not an alias: tripsearch keeps its trips in versioned indices behind an alias", retry_after=60.0)
            return None
        names = sorted(resp.body)
        if len(names) != 1:
            raise BackendUnavailable(f"the alias {self.alias!r} points to {len(names)} indices ({', '.join(names)}); it must point to one", retry_after=60.0)
        return names[0]

    def live_refresh_interval(self) -> float:
        """Return the refresh interval (seconds, 0 when off) of the index behind the alias now: the refresh Elasticsearch's ``refresh=wait_for`` waits for."""
        with self._connection.translate("read the refresh interval"):
            index = self.alias_target()
            return 0.0 if index is None else self.index_settings(index)[2]

    def put_template(self, shards: int | None = None, replicas: int | None = None) -> None:
        """Put the index template of the alias: the current mapping, these settings (default: the configured ones)."""
        body = index_template(
            self.alias,
            shards=shards or self.number_of_shards or 1,
            replicas=replicas if replicas is not None else (self.number_of_replicas if self.number_of_replicas is not None else 1),
            refresh_interval=refresh_interval_setting(self.refresh_interval),
        )
        self._es.indices.put_index_template(name=template_name(self.alias), **body)

    def index_settings(self, index: str) -> tuple[int, int, float]:
        """Return the shards, replicas and refresh interval (seconds, 0 when off) of an index."""
        found = self._es.indices.get_settings(index=index, name="index.number_of_*,index.refresh_interval", flat_settings=True, include_defaults=True)[index]
        settings = {**found.get("defaults", {}), **found["settings"]}
        return int(settings["index.number_of_shards"]), int(settings["index.number_of_replicas"]), _seconds(settings.get("index.refresh_interval", "1s"))

    def _adjust_settings(self, index: str) -> None:
        if self.number_of_shards is None and self.number_of_replicas is None:
            return
        shards, replicas, _ = self.index_settings(index)
        if self.number_of_replicas is not None and replicas != self.number_of_replicas:
            self._es.indices.put_settings(index=index, settings={"index.number_of_replicas": self.number_of_replicas})
        if self.number_of_shards is not None and shards != self.number_of_shards:
            log.warning("index %s has %d shards, not %d: run `tripsearch reindex --shards %d` to change it", index, shards, self.number_of_shards, self.number_of_shards)

    def check_mapping(self) -> None:
        """Refuse to search an index of another mapping version (its fields mean other things), reading it again first."""
        if self.mapping_version == MAPPING_VERSION:
            return
        with self._connection.translate("read the mapping"):
            concrete = self.concrete_index()
            mapping = self._es.indices.get_mapping(index=concrete)[concrete]["mappings"]
            self.mapping_version = mapping_version(mapping)
            self.anchors = mapping_anchors(mapping)
        if self.mapping_version != MAPPING_VERSION:
            raise BackendUnavailable(
                f"index {concrete} has mapping version {self.mapping_version} and this tripsearch searches version {MAPPING_VERSION}: run `tripsearch reindex`",
                retry_after=60.0,
            )


def refresh_interval_setting(seconds: float | None) -> str | None:
    """Return a refresh interval setting: None leaves Elasticsearch's default, 0 turns periodic refresh off.

    >>> refresh_interval_setting(None), refresh_interval_setting(0), refresh_interval_setting(1.5)
    (None, '-1', '1500ms')
    """
    if seconds is None:
        return None
    return "-1" if seconds <= 0 else f"{max(1, round(seconds * 1000))}ms"


def _seconds(value: str) -> float:
    """Return an Elasticsearch time value ("1s", "500ms", "-1") in seconds; 0 for "-1" (off).

    >>> _seconds("1s"), _seconds("500ms"), _seconds("-1")
    (1.0, 0.5, 0.0)
    """
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    for unit in ("ms", "s", "m", "h", "d"):
        if value.endswith(unit) and value[: -len(unit)].replace(".", "", 1).isdigit():
            return float(value[: -len(unit)]) * units[unit]
    return 0.0


def index_generation(index: str, alias: str) -> int:
    """Return the generation of an index behind ``alias`` (0 when its name has none).

    >>> index_generation("trips-000002", "trips"), index_generation("trips", "trips")
    (2, 0)
    """
    tail = index.removeprefix(alias + "-")
    return int(tail) if tail.isdigit() else 0
