"""Fixtures of the search page tests: a real server over the 1000 fixture trips, Debian's Chromium, a journey with trips.

The server is ``tripsearch serve`` when ``api.app.create_app`` includes the
page router, else uvicorn over :func:`tests.page.server.create_app` (the same
app with the router added). Chromium is ``/usr/bin/chromium``
(``scripts/install-test-deps`` installs it); without it the browser tests
skip, or fail when ``CI`` is set. Each page blocks and records any request
that leaves the machine, and a test fails on any script error.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

import tripsearch
from api.app import create_app
from api.settings import Settings

from tripsearch.testing.server import ServerProcess, start_server

from .server import serves_page

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "trips-1000.ndjson"
SCREENSHOTS = ROOT / "test-output" / "page"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
READY_TIMEOUT_S = 90.0
PAGE_SIZE = 2  # small, so the few trips of one day of the fixtures still need "More results"
SECRET = "tripsearch-page-test-secret-0123456789abcdef"  # the server's TRIPSEARCH_JWT_SECRET: the alerts tests make tokens with it


# A regular trip beside the fixtures: Mon-Fri 07:45 and Sat 09:00, with a skipped date, a moved one and one with fewer seats.
REGULAR_TRIP: dict[str, Any] = {
    "id": "daily-akureyri", "version": 1, "departure_time": "2027-01-04T07:45:00+01:00",
    "stops": [{"name": "Akureyri", "lat": 65.6835, "lon": -18.0878, "time": "2027-01-04T07:45:00+01:00"},
              {"name": "Husavik", "lat": 66.0449, "lon": -17.3389, "time": "2027-01-04T09:00:00+01:00"}],
    "seats_total": 3, "seats_available": 3, "price": {"amount": 6.5, "currency": "EUR"}, "driver": {"id": "d-regular", "rating": 4.7},
    "schedule": {"timezone": "Europe/Paris", "valid_from": "2027-01-04", "valid_to": "2027-06-30",
                 "times": {"MON": "07:45", "TUE": "07:45", "WED": "07:45", "THU": "07:45", "FRI": "07:45", "SAT": "09:00"},
                 "exceptions": [{"date": "2027-01-08", "skip": True}, {"date": "2027-01-11", "time": "08:15"}, {"date": "2027-01-12", "seats_available": 1}]},
}  # fmt: skip


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    lat: float
    lon: float

    @property
    def point(self) -> str:
        return f"{self.lat},{self.lon}"


@dataclass(frozen=True)
class Journey:
    """A From, a To and a date with several trips in the fixtures, as a person would search them."""

    origin: Place
    destination: Place
    date: str
    total: int

    def query(self, **fields: Any) -> dict[str, Any]:
        return {"from": self.origin.point, "to": self.destination.point, "date": self.date, **fields}


@dataclass
class PageServer(ServerProcess):
    """The server of the page tests."""

    def search(self, **params: Any) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/search", params=params, timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(scope="session")
def page_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a data directory loaded with the 1000 fixture trips."""
    path = tmp_path_factory.mktemp("page") / "data"
    engine = tripsearch.open(path, refresh_interval=0)
    try:
        assert engine.upsert(FIXTURE.read_bytes().splitlines(), refresh=True).stored == 1000
        assert engine.upsert([REGULAR_TRIP], refresh=True).stored == 1  # in Iceland, far from the fixtures' trips
        engine.snapshot()  # type: ignore[attr-defined]
    finally:
        engine.close()
    return path


@pytest.fixture(scope="session")
def page_server(page_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    """Return a running server of the API and the page on a free loopback port."""
    home = tmp_path_factory.mktemp("page-server")
    env = {**os.environ, "TRIPSEARCH_DATA": str(page_data), "TRIPSEARCH_JWT_SECRET": SECRET, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    wired = serves_page(create_app(Settings(data=str(page_data))))
    if wired:
        command = [sys.executable, "-m", "tripsearch.cli", "serve", "--host", "127.0.0.1", "--port", "{port}", "--data", str(page_data)]
    else:
        command = [sys.executable, "-m", "uvicorn", "--factory", "tests.page.server:create_app", "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"]
    started = start_server(lambda port: [str(port) if part == "{port}" else part for part in command], home, env=env, cwd=ROOT, timeout_s=READY_TIMEOUT_S)
    server = PageServer(started.url, started.process, started.log)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def journey(page_server: PageServer) -> Journey:
    """Return the From, To and date of the fixtures with the most trips, found through the API as the page finds them."""
    day_pairs: Counter[tuple[str, str, str]] = Counter()
    for line in FIXTURE.read_bytes().splitlines():
        trip = orjson.loads(line)
        day_pairs[(trip["stops"][0]["name"], trip["stops"][-1]["name"], trip["departure_time"][:10])] += 1
    best: Journey | None = None
    for (origin_name, destination_name, date), _ in day_pairs.most_common(8):
        origin, destination = _place(page_server, origin_name), _place(page_server, destination_name)
        if origin is None or destination is None:
            continue
        total = page_server.search(**{"from": origin.point, "to": destination.point, "date": date, "limit": 1, "facets": ""})["total"]
        if best is None or total > best.total:
            best = Journey(origin, destination, date, total)
    assert best is not None and best.total > PAGE_SIZE, f"no From, To and date of the fixtures has more than {PAGE_SIZE} trips: {best}"
    return best


def _place(server: PageServer, name: str) -> Place | None:
    """Return the place the autocomplete lists for a name (first of that exact name), as a person would pick it."""
    places = httpx.get(f"{server.url}/v1/places", params={"q": name[:3], "limit": 50}, timeout=30).json()["places"]
    for place in places[:8]:  # among the first suggestions, as a person would see them
        if place["name"] == name:
            return Place(place["name"], place["country"], place["lat"], place["lon"])
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Return Debian's Chromium driven by Playwright (skipped without it, failed without it when CI is set)."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing: run scripts/install-test-deps (as root) to install Debian's chromium"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            problem = "the Python package playwright is missing: pip install -e '.[dev]'"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests cannot run: {problem}", pytrace=False)
        pytest.skip(f"the browser tests need Chromium and Playwright: {problem}")
    with sync_playwright() as playwright:
        args = CHROMIUM_ARGS if os.geteuid() == 0 else [a for a in CHROMIUM_ARGS if a != "--no-sandbox"]
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class PageWatch:
    """What a page did that a test must not ignore: script errors and requests that left the machine."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


@pytest.fixture
def open_page(browser: Any, page_server: PageServer) -> Iterator[Any]:
    """Return ``open_page(path="/", width=1280, height=900)``: a fresh browser page of the server, watched."""
    contexts = []
    watches = []

    def factory(path: str = "/", width: int = 1280, height: int = 900, **options: Any) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=page_server.url, **options)
        context.set_default_timeout(10_000)
        watch = PageWatch()
        local = urlsplit(page_server.url).netloc

        def guard(route: Any) -> None:
            if urlsplit(route.request.url).netloc == local:
                route.fallback()
            else:
                watch.outside.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.on("pageerror", lambda error: watch.errors.append(f"pageerror: {error}"))
        page.on("console", lambda message: watch.errors.append(f"console.{message.type}: {message.text}") if message.type == "error" and not _expected(message.text) else None)
        contexts.append(context)
        watches.append(watch)
        if path is not None:
            page.goto(path)
        return page

    yield factory
    for context in contexts:
        context.close()
    for watch in watches:
        assert not watch.outside, f"the page asked for things outside the server: {watch.outside}"
        assert not watch.errors, f"the page reported errors: {watch.errors}"


# The browser logs every failed request as a console error; the error tests make some on purpose (401: a refused alerts token).
_EXPECTED_CONSOLE = (
    "Failed to load resource: the server responded with a status of 400",
    "Failed to load resource: the server responded with a status of 401",
    "Failed to load resource: net::ERR_FAILED",
)


def _expected(text: str) -> bool:
    return text.startswith(_EXPECTED_CONSOLE)


@pytest.fixture(scope="session")
def screenshot() -> Any:
    """Return ``screenshot(page, name)``: save a PNG of the page under test-output/page/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Any, name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save
