"""The page and its files over HTTP: types, caching, the security policy, and nothing served outside api/static."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from api.app import create_app
from api.routes.page import STATIC_DIR
from api.settings import Settings

from .conftest import PageServer
from .server import create_app as create_app_with_page


def test_the_page_is_served_with_its_policy(page_server: PageServer) -> None:
    response = httpx.get(f"{page_server.url}/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert '<script type="module" src="static/js/main.js">' in response.text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("js/main.js", "text/javascript; charset=utf-8"),
        ("css/page.css", "text/css; charset=utf-8"),
        ("icons.svg", "image/svg+xml"),
        ("map/countries.json", "application/json"),
    ],
)
def test_static_files_have_their_type_and_revalidate(page_server: PageServer, path: str, content_type: str) -> None:
    with httpx.Client(base_url=page_server.url) as client:
        response = client.get(f"/static/{path}")
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        assert response.headers["x-content-type-options"] == "nosniff"
        tag = response.headers["etag"]
        again = client.get(f"/static/{path}", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    ["map/README.md", "map/build_outlines.py", "../routes/page.py", "..%2Froutes%2Fpage.py", "%2e%2e/app.py", ".hidden.js", "js", "nothing.js", ""],
)
def test_only_the_page_files_are_served(page_server: PageServer, path: str) -> None:
    response = httpx.get(f"{page_server.url}/static/{path}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_the_page_is_not_part_of_the_api_contract() -> None:
    paths = create_app_with_page().openapi()["paths"]
    assert paths.keys() == create_app(Settings()).openapi()["paths"].keys()
    assert "/" not in paths


def test_the_outlines_are_small_and_documented() -> None:
    outlines = STATIC_DIR / "map" / "countries.json"
    assert outlines.stat().st_size < 300_000
    data = json.loads(outlines.read_text())
    assert "Natural Earth" in data["source"]
    names = {country["name"] for country in data["countries"]}
    assert {"France", "United Kingdom", "Russia", "Germany"} <= names
    readme = (STATIC_DIR / "map" / "README.md").read_text()
    assert "world-atlas" in readme and "public domain" in readme


def test_the_page_loads_nothing_from_outside() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text()
            assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text), f"{path} links outside the server"
            assert not re.search(r"(?:fetch|import)\(\s*[\"'](?:https?:)?//", text), f"{path} fetches outside the server"
