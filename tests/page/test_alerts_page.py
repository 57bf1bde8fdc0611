"""Ride alerts on the search page, in Chromium against the real server: Alert me, My alerts, the token.

The trips these tests publish go from Tromsø to Alta, where the fixtures
have none, on days to come (an alert looks for trips to come); each test
has its own owner (the token's ``sub``), so the alerts of one test are not
another's.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from .conftest import SECRET, Journey, PageServer
from .test_search_page import _LOW_CONTRAST, _UNNAMED_CONTROLS, _page_url

try:
    from playwright.sync_api import expect
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("the browser tests need the Python package playwright: pip install -e '.[dev]'", allow_module_level=True)

TROMSO = (69.6492, 18.9553)
ALTA = (69.9689, 23.2716)


def make_token(scope: str, sub: str, secret: str = SECRET) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "scope": scope, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")


def north_url(day: dt.date) -> str:
    return "/?" + urlencode({"from": f"{TROMSO[0]},{TROMSO[1]}", "from_name": "Tromsø", "to": f"{ALTA[0]},{ALTA[1]}", "to_name": "Alta", "date": day.isoformat()})


def publish(server: PageServer, trip_id: str, day: dt.date, hour: int) -> None:
    """Store a trip from Tromsø to Alta leaving at ``hour`` (UTC+1) on ``day``, through the API, as a driver's app would."""
    leave = dt.datetime(day.year, day.month, day.day, hour, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    trip = {
        "id": trip_id,
        "version": 1,
        "departure_time": leave.isoformat(),
        "stops": [
            {"name": "Tromsø", "lat": TROMSO[0], "lon": TROMSO[1], "time": leave.isoformat()},
            {"name": "Alta", "lat": ALTA[0], "lon": ALTA[1], "time": (leave + dt.timedelta(hours=5)).isoformat()},
        ],
        "seats_total": 3,
        "seats_available": 3,
        "price": {"amount": 40.0, "currency": "NOK"},
    }
    response = httpx.put(f"{server.url}/v1/trips/{trip_id}", json=trip, headers={"Authorization": f"Bearer {make_token('trips:write', 'driver')}"}, timeout=30)
    assert response.status_code == 200, response.text


def api_alerts(server: PageServer, owner: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/v1/alerts", headers={"Authorization": f"Bearer {make_token('alerts:write', owner)}"}, timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["alerts"])


def test_alert_me_on_an_empty_search_then_its_matches_in_my_alerts(open_page: Any, page_server: PageServer, screenshot: Any) -> None:
    owner = f"page-{uuid.uuid4().hex[:8]}"
    day = dt.date.today() + dt.timedelta(days=20)
    page = open_page(north_url(day))
    expect(page.locator("#results-heading")).to_have_text("No trips from Tromsø to Alta")
    expect(page.locator("#alert-me-button")).to_be_hidden()  # the prominent one of the message stands for it

    # Alert me: the dialog says what is saved; the first time, the token is asked for, with the command that makes one.
    page.get_by_role("button", name="Alert me when a trip is published").click()
    dialog = page.get_by_role("dialog", name="Alert me of new trips")
    expect(dialog).to_contain_text("Tromsø to Alta")
    expect(dialog.get_by_label("Days")).to_be_focused()
    dialog.get_by_label("Days").select_option("3")
    dialog.get_by_role("button", name="Save alert").click()
    ask = page.get_by_role("dialog", name="Your alerts token")
    expect(ask).to_contain_text("tripsearch token --scope alerts:write --sub")
    expect(ask.get_by_label("Token")).to_be_focused()
    ask.get_by_role("button", name="Use this token").click()
    expect(ask.locator("#token-error")).to_have_text("Paste the token.")
    ask.get_by_label("Token").fill(make_token("alerts:write", owner))
    ask.get_by_role("button", name="Use this token").click()
    note = page.locator("#alert-note")
    expect(note).to_contain_text("Alert saved for Tromsø to Alta")
    expect(dialog).to_be_hidden()
    [saved] = api_alerts(page_server, owner)
    assert (saved["from"], saved["to"], saved["date_from"], saved["date_to"]) == (list(TROMSO), list(ALTA), day.isoformat(), (day + dt.timedelta(days=2)).isoformat())
    screenshot(page, "alerts-01-saved")

    # My alerts: the alert, no trip yet; the view listens to the stream.
    page.get_by_role("button", name="My alerts").click()
    view = page.get_by_role("dialog", name="My alerts")
    expect(view.locator(".alert-item")).to_have_count(1)
    expect(view.locator(".alert-title")).to_have_text("Tromsø to Alta")
    expect(view.locator("#alerts-owner")).to_have_text(f"Alerts of {owner}.")
    expect(view.locator(".match-none")).to_be_visible()
    expect(view.locator("#alerts-list")).to_have_attribute("data-live", "on")

    # A driver publishes a matching trip: it shows while the view is open, as new, and the keyboard stays put.
    view.get_by_role("link", name="Search it now").focus()
    trip_id = f"north-{owner}"
    publish(page_server, trip_id, day + dt.timedelta(days=1), hour=10)
    match = view.locator(".match")
    expect(match).to_have_count(1, timeout=15_000)
    expect(match).to_have_attribute("data-trip-id", trip_id)
    expect(match.locator(".clock")).to_have_text(["10:00", "15:00"])
    expect(match.locator(".badge-new")).to_have_text("New")
    expect(view.locator(".alert-head .badge")).to_have_text("1 new")
    expect(view.get_by_role("link", name="Search it now")).to_be_focused()
    assert page.evaluate(_UNNAMED_CONTROLS) == [] and page.evaluate(_LOW_CONTRAST) == []
    screenshot(page, "alerts-02-match")
    view.get_by_role("button", name="Close").click()
    expect(view).to_be_hidden()

    # Another trip while the view is closed: the header counts it after a reload; the view marks only it as new.
    publish(page_server, f"{trip_id}-2", day + dt.timedelta(days=2), hour=8)
    page.reload()
    expect(page.locator("#alerts-badge")).to_have_text("1 new")
    page.get_by_role("button", name="My alerts").click()
    expect(view.locator(".match")).to_have_count(2)
    expect(view.locator(".match").first).to_have_attribute("data-trip-id", f"{trip_id}-2")  # newest first
    expect(view.locator(".match.is-new")).to_have_count(1)
    expect(page.locator("#alerts-badge")).to_be_hidden()
    link = view.locator(".match").first.get_by_role("link", name=re.compile("^See the trip"))
    assert f"date={(day + dt.timedelta(days=2)).isoformat()}" in (link.get_attribute("href") or "")

    # Delete: gone from the view and from the API.
    view.get_by_role("button", name="Delete the alert Tromsø to Alta").click()
    expect(view.locator(".alert-item")).to_have_count(0)
    expect(view.locator("#alerts-status")).to_contain_text("is deleted")
    assert api_alerts(page_server, owner) == []


def test_a_refused_token_is_asked_for_again_and_errors_name_the_field(open_page: Any, page_server: PageServer, journey: Journey, screenshot: Any) -> None:
    owner = f"page-{uuid.uuid4().hex[:8]}"
    bad = make_token("alerts:write", owner, secret="another-secret-of-at-least-32-bytes!!")
    # A platform hands its user's token over in the fragment: kept, and taken out of the address bar.
    page = open_page(_page_url(journey) + f"#alerts_token={bad}")
    expect(page.locator(".trip-card").first).to_be_visible()
    assert "alerts_token" not in page.url
    assert page.evaluate("localStorage.getItem('tripsearch.alerts.token')") == bad

    # With results, Alert me is the secondary button; the refused token is forgotten and asked for again.
    page.get_by_role("button", name="Alert me", exact=True).click()
    page.get_by_role("dialog", name="Alert me of new trips").get_by_role("button", name="Save alert").click()
    ask = page.get_by_role("dialog", name="Your alerts token")
    expect(ask.locator("#token-problem")).to_contain_text("The server refused the token: the token signature does not verify")
    assert page.evaluate("localStorage.getItem('tripsearch.alerts.token')") is None
    screenshot(page, "alerts-03-token-refused", full_page=False)
    ask.get_by_label("Token").fill(make_token("alerts:write", owner))
    ask.get_by_role("button", name="Use this token").click()
    # The journey's day may be over: either the alert is saved or the API's reason, naming the field, is shown.
    outcome = page.locator("#alert-note:not(:empty), #alert-error:not([hidden])")
    expect(outcome).to_have_count(1)

    # A search of a past day: the API refuses the alert, and the dialog says why, naming the field.
    page.goto(_page_url(journey, date="2020-01-06"))
    page.get_by_role("button", name="Alert me when a trip is published").click()
    dialog = page.get_by_role("dialog", name="Alert me of new trips")
    dialog.get_by_role("button", name="Save alert").click()
    expect(dialog.locator("#alert-error")).to_contain_text("The alert was not saved: date: 2020-01-06 has already passed")
    expect(dialog.get_by_label("Days")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("button", name="Cancel").click()

    # Forget token: My alerts asks again; cancelling says a token is needed.
    page.get_by_role("button", name="My alerts").click()
    view = page.get_by_role("dialog", name="My alerts")
    expect(view.locator("#alerts-owner")).to_have_text(f"Alerts of {owner}.")
    view.get_by_role("button", name="Forget token").click()
    assert page.evaluate("localStorage.getItem('tripsearch.alerts.token')") is None
    view.get_by_role("button", name="Use a token").click()
    ask.get_by_role("button", name="Cancel").click()
    expect(view.locator("#alerts-status")).to_contain_text("My alerts need a token.")


def test_my_alerts_fits_a_phone(open_page: Any, page_server: PageServer, screenshot: Any) -> None:
    owner = f"page-{uuid.uuid4().hex[:8]}"
    day = dt.date.today() + dt.timedelta(days=30)
    page = open_page(None, width=390, height=844, is_mobile=True, has_touch=True)
    page.goto(north_url(day) + f"#alerts_token={make_token('alerts:write', owner)}")
    page.get_by_role("button", name="Alert me when a trip is published").click()
    page.get_by_role("dialog", name="Alert me of new trips").get_by_role("button", name="Save alert").click()
    expect(page.locator("#alert-note")).to_contain_text("Alert saved")
    page.get_by_role("button", name="My alerts").click()
    view = page.get_by_role("dialog", name="My alerts")
    expect(view.locator(".alert-item")).to_have_count(1)
    box = view.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    delete = view.get_by_role("button", name=re.compile("^Delete the alert"))
    assert (delete.bounding_box() or {"height": 0})["height"] >= 40
    screenshot(page, "alerts-04-phone", full_page=False)


def test_a_regular_trip_matches_with_its_occurrence(open_page: Any, page_server: PageServer) -> None:
    owner = f"page-{uuid.uuid4().hex[:8]}"
    first = dt.date.today() + dt.timedelta(days=40)
    day = first + dt.timedelta(days=5)
    page = open_page(north_url(day) + f"#alerts_token={make_token('alerts:write', owner)}")
    page.get_by_role("button", name="Alert me when a trip is published").click()
    page.get_by_role("dialog", name="Alert me of new trips").get_by_role("button", name="Save alert").click()
    expect(page.locator("#alert-note")).to_contain_text("Alert saved")

    # A commuter's daily trip at 07:30 for two weeks: the alert's day is one occurrence of it.
    leave = dt.datetime.combine(first, dt.time(7, 30), tzinfo=dt.timezone(dt.timedelta(hours=1)))
    trip_id = f"north-daily-{owner}"
    trip = {
        "id": trip_id, "version": 1, "departure_time": leave.isoformat(),
        "stops": [{"name": "Tromsø", "lat": TROMSO[0], "lon": TROMSO[1], "time": leave.isoformat()},
                  {"name": "Alta", "lat": ALTA[0], "lon": ALTA[1], "time": (leave + dt.timedelta(hours=5)).isoformat()}],
        "seats_total": 3, "seats_available": 3, "price": {"amount": 30.0, "currency": "NOK"},
        "schedule": {"timezone": "Etc/GMT-1", "valid_from": first.isoformat(), "valid_to": (first + dt.timedelta(days=13)).isoformat(),
                     "times": dict.fromkeys(["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"], "07:30")},
    }  # fmt: skip
    response = httpx.put(f"{page_server.url}/v1/trips/{trip_id}", json=trip, headers={"Authorization": f"Bearer {make_token('trips:write', 'driver')}"}, timeout=30)
    assert response.status_code == 200, response.text

    page.get_by_role("button", name="My alerts").click()
    match = page.get_by_role("dialog", name="My alerts").locator(".match")
    expect(match).to_have_count(1)
    expect(match).to_have_attribute("data-occurrence", day.isoformat())
    expect(match.locator(".occurrence")).to_have_text(re.compile(r"^Regular trip · this one on \w{3}, \d{1,2} \w{3} \d{4}$"))
    expect(match.locator(".clock")).to_have_text(["07:30", "12:30"])
