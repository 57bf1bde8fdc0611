"""Configuration of the HTTP API: one frozen value, read from environment variables.

Every worker process builds its own :class:`Settings` from the environment
(``serve()`` passes the command-line flags down that way), so workers share
nothing but the backend they open.

>>> s = Settings.from_env({"TRIPSEARCH_DATA": "/srv/trips", "TRIPSEARCH_CORS_ORIGINS": "https://a.example, https://b.example"})
>>> s.target, s.cors_origins, s.public_search, s.cache_max_age
('/srv/trips', ('https://a.example', 'https://b.example'), True, 5)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tripsearch.alerts.backend import MATCHING
from tripsearch.errors import TripSearchError

__all__ = ["Settings", "SettingsError", "ENV"]

MIB = 1024 * 1024
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_HS256_SECRET_BYTES = 32
MIN_API_KEY_LENGTH = 16  # shorter keys of the standard routes could be guessed


class SettingsError(TripSearchError, ValueError):
    """An environment variable that cannot be used; names the variable."""


@dataclass(frozen=True)
class Settings:
    """What one API process needs to know; see ``ENV`` for the variable of each field."""

    data: str = "data"
    backend_url: str | None = None
    backend_index: str = "trips"
    backend_timeout: float = 5.0  # seconds an Elasticsearch request may take before the API answers 503
    refresh_interval: float = 1.0
    jwt_secret: str | None = None
    jwt_public_key: str | None = None  # PEM text (a path is read by from_env)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    public_search: bool = True
    cache_max_age: int = 5
    places_cache_max_age: int = 3600
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1 * MIB
    max_bulk_bytes: int = 10 * MIB
    max_bulk_lines: int = 10_000
    max_json_depth: int = 32
    search_fast_path: bool = True  # answer public GET /v1/search in one ASGI layer (api/fastpath.py)
    keepalive_requests: int = 100  # requests per kept-alive connection before the server closes it (0: no limit; api/connections.py)
    alerts_db: str | None = None  # SQLite file of the alerts (default: alerts.sqlite in the data directory; required for Elasticsearch)
    alerts_max_per_owner: int = 100  # active alerts one owner may keep
    alerts_matching: str = "process"  # embedded: trip writes matched against alerts by a follower process after the write, or in it ("inline")
    webhook_retry_first_s: float = 1.0  # first wait before retrying a failed webhook; doubled each time, at most 10 minutes
    webhook_give_up_s: float = 86_400.0  # a webhook event still failing this long after it happened is given up
    webhook_allow_private: bool = False  # let webhooks reach loopback, private and link-local addresses (tests, a receiver on the same network)
    # The standard covoiturage routes (/standard/v1/..., api/routes/standard.py):
    standard_operator: str | None = None  # the operator's domain in answers (default: the host of standard_web_url, else of the request)
    standard_timezone: str = "Europe/Paris"  # where departureDate is read as a local date and time
    standard_api_keys: tuple[str, ...] = ()  # X-API-Key values accepted on the search routes; empty: the routes are open
    standard_web_url: str | None = None  # base URL of the search page that webUrl links to (default: this server as requested)

    def __post_init__(self) -> None:
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise SettingsError(f"TRIPSEARCH_JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes (RFC 7518, section 3.2)")
        if self.jwt_public_key is not None and "-----BEGIN" not in self.jwt_public_key:
            raise SettingsError("TRIPSEARCH_JWT_PUBLIC_KEY must be a PEM public key or the path of a file holding one")
        for name in ("webhook_retry_first_s", "webhook_give_up_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{ENV[name]} must be greater than 0")
        if self.backend_timeout <= 0:
            raise SettingsError(f"{ENV['backend_timeout']} must be greater than 0")
        for name in ("cache_max_age", "places_cache_max_age", "refresh_interval", "keepalive_requests"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{ENV[name]} must be at least 0")
        try:
            ZoneInfo(self.standard_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"{ENV['standard_timezone']} must be an IANA time zone such as Europe/Paris, got {self.standard_timezone[:40]!r}") from None
        if any(len(key) < MIN_API_KEY_LENGTH for key in self.standard_api_keys):
            raise SettingsError(f"{ENV['standard_api_keys']}: every key must be at least {MIN_API_KEY_LENGTH} characters")
        if self.alerts_matching not in MATCHING:
            raise SettingsError(f"{ENV['alerts_matching']} must be one of {', '.join(MATCHING)}, got {self.alerts_matching[:40]!r}")
        for name in ("max_body_bytes", "max_bulk_bytes", "max_bulk_lines", "max_json_depth", "alerts_max_per_owner"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{ENV[name]} must be at least 1")

    @property
    def target(self) -> str:
        """Return what ``tripsearch.open`` opens: the Elasticsearch address if set, else the data directory."""
        return self.backend_url or self.data

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Return the settings that the ``TRIPSEARCH_*`` variables of ``environ`` (default ``os.environ``) give."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV[f.name])
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _PARSERS[f.name](ENV[f.name], raw.strip())
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """Return the environment variables that :meth:`from_env` turns back into these settings."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                out[ENV[f.name]] = "true" if value else "false"
            elif isinstance(value, tuple):
                out[ENV[f.name]] = ",".join(value)
            else:
                out[ENV[f.name]] = str(value)
        return out


ENV: dict[str, str] = {
    "data": "TRIPSEARCH_DATA",
    "backend_url": "TRIPSEARCH_BACKEND_URL",
    "backend_index": "TRIPSEARCH_BACKEND_INDEX",
    "backend_timeout": "TRIPSEARCH_BACKEND_TIMEOUT",
    "refresh_interval": "TRIPSEARCH_REFRESH_INTERVAL",
    "jwt_secret": "TRIPSEARCH_JWT_SECRET",
    "jwt_public_key": "TRIPSEARCH_JWT_PUBLIC_KEY",
    "jwt_audience": "TRIPSEARCH_JWT_AUDIENCE",
    "jwt_issuer": "TRIPSEARCH_JWT_ISSUER",
    "public_search": "TRIPSEARCH_PUBLIC_SEARCH",
    "cache_max_age": "TRIPSEARCH_CACHE_MAX_AGE",
    "places_cache_max_age": "TRIPSEARCH_PLACES_CACHE_MAX_AGE",
    "cors_origins": "TRIPSEARCH_CORS_ORIGINS",
    "max_body_bytes": "TRIPSEARCH_MAX_BODY_BYTES",
    "max_bulk_bytes": "TRIPSEARCH_MAX_BULK_BYTES",
    "max_bulk_lines": "TRIPSEARCH_MAX_BULK_LINES",
    "max_json_depth": "TRIPSEARCH_MAX_JSON_DEPTH",
    "search_fast_path": "TRIPSEARCH_SEARCH_FAST_PATH",
    "keepalive_requests": "TRIPSEARCH_KEEPALIVE_REQUESTS",
    "alerts_db": "TRIPSEARCH_ALERTS_DB",
    "alerts_max_per_owner": "TRIPSEARCH_ALERTS_MAX_PER_OWNER",
    "alerts_matching": "TRIPSEARCH_ALERTS_MATCHING",
    "webhook_retry_first_s": "TRIPSEARCH_WEBHOOK_RETRY_FIRST_S",
    "webhook_give_up_s": "TRIPSEARCH_WEBHOOK_GIVE_UP_S",
    "webhook_allow_private": "TRIPSEARCH_WEBHOOK_ALLOW_PRIVATE",
    "standard_operator": "TRIPSEARCH_STANDARD_OPERATOR",
    "standard_timezone": "TRIPSEARCH_STANDARD_TIMEZONE",
    "standard_api_keys": "TRIPSEARCH_STANDARD_API_KEYS",
    "standard_web_url": "TRIPSEARCH_STANDARD_WEB_URL",
}


def _text(name: str, raw: str) -> str:
    return raw


def _integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw[:40]!r}") from None


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name} must be a finite number")
    return value


def _boolean(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw[:40]!r}")


def _origins(name: str, raw: str) -> tuple[str, ...]:
    """Return the items of a comma list (CORS origins, API keys)."""
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def _public_key(name: str, raw: str) -> str:
    if "-----BEGIN" in raw:
        return raw
    path = Path(raw).expanduser()
    try:
        return path.read_text()
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read the public key file {raw!r} ({exc.strerror})") from None


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "data": _text,
    "backend_url": _text,
    "backend_index": _text,
    "backend_timeout": _number,
    "refresh_interval": _number,
    "jwt_secret": _text,
    "jwt_public_key": _public_key,
    "jwt_audience": _text,
    "jwt_issuer": _text,
    "public_search": _boolean,
    "cache_max_age": _integer,
    "places_cache_max_age": _integer,
    "cors_origins": _origins,
    "max_body_bytes": _integer,
    "max_bulk_bytes": _integer,
    "max_bulk_lines": _integer,
    "max_json_depth": _integer,
    "search_fast_path": _boolean,
    "keepalive_requests": _integer,
    "alerts_db": _text,
    "alerts_max_per_owner": _integer,
    "alerts_matching": _text,
    "webhook_retry_first_s": _number,
    "webhook_give_up_s": _number,
    "webhook_allow_private": _boolean,
    "standard_operator": _text,
    "standard_timezone": _text,
    "standard_api_keys": _origins,
    "standard_web_url": _text,
}
