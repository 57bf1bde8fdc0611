"""``/v1/alerts`` on a real server: owners, scopes, validation, limits, and the match feed of trip writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import httpx
import orjson
import pytest

from tripsearch.alerts.delivery import verify
from tripsearch.client import AsyncTripSearchClient, TripSearchClient
from tripsearch.errors import AlertNotFound, InvalidAlert

from .conftest import Server
from .support import REYKJAVIK, SELFOSS, iceland_query, make_token, make_trip

DAY = dt.date(2027, 6, 10)  # Iceland in June 2027: no fixture trip, no other test's trip
LIMIT = 3
GIVE_UP_S = 3.0
ALERT = {"from": list(REYKJAVIK), "to": list(SELFOSS), "date_from": DAY.isoformat(), "date_to": (DAY + dt.timedelta(days=2)).isoformat(), "time_from": "08:00", "time_to": "10:00"}


def auth(sub: str, scope: str = "alerts:write") -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(scope, sub=sub)}"}


WRITER = {"Authorization": f"Bearer {make_token('trips:write')}"}


@pytest.fixture(scope="module")
def server(start_api: Callable[..., Server]) -> Server:
    return start_api(
        TRIPSEARCH_ALERTS_MAX_PER_OWNER=str(LIMIT), TRIPSEARCH_WEBHOOK_RETRY_FIRST_S="0.1", TRIPSEARCH_WEBHOOK_GIVE_UP_S=str(GIVE_UP_S),
        TRIPSEARCH_WEBHOOK_ALLOW_PRIVATE="1",  # the test receivers listen on 127.0.0.1
    )


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def feed(client: httpx.Client, sub: str, alert_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/alerts/{alert_id}/matches", params=params, headers=auth(sub))
    assert response.status_code == 200, response.text
    matches: list[dict[str, Any]] = response.json()["matches"]
    return matches


def test_alerts_need_a_token_with_the_alerts_scope(client: httpx.Client) -> None:
    assert client.get("/v1/alerts").status_code == 401
    response = client.post("/v1/alerts", json=ALERT, headers=auth("alice", "trips:write"))
    assert response.status_code == 403 and "alerts:write" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"date_from": None, "date_to": None}, "date", "is required"),
        ({"date_to": (DAY + dt.timedelta(days=90)).isoformat()}, "date_to", "at most 90"),
        ({"date_to": (DAY - dt.timedelta(days=1)).isoformat()}, "date_to", "before date_from"),
        ({"date_from": "2020-01-01", "date_to": "2020-01-02"}, "date_to", "has already passed"),
        ({"date": DAY.isoformat()}, "date", "not both"),
        ({"from_radius_km": 101}, "from_radius_km", "at most 100"),
        ({"time_from": "25:00"}, "time_from", "00:00 to 23:59"),
        ({"sort": "price"}, "sort", "is not an alert field"),
        ({"to": [95, 0]}, "to.lat", "at most 90"),
    ],
)
def test_a_bad_alert_gets_400_naming_the_field(client: httpx.Client, change: dict[str, Any], field: str, words: str) -> None:
    body = {k: v for k, v in {**ALERT, **change}.items() if v is not None}
    response = client.post("/v1/alerts", json=body, headers=auth("alice"))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["field"] == field and words in problem["detail"] and problem["code"] == "invalid_alert"


def test_owners_see_only_their_alerts_and_the_count_is_limited(client: httpx.Client) -> None:
    made = []
    for _ in range(LIMIT):
        response = client.post("/v1/alerts", json=ALERT, headers=auth("carol"))
        assert response.status_code == 201, response.text
        assert response.headers["location"] == f"/v1/alerts/{response.json()['id']}"
        made.append(response.json())
    assert made[0]["owner"] == "carol" and made[0]["status"] == "active" and made[0]["date_to"] == ALERT["date_to"]
    over = client.post("/v1/alerts", json=ALERT, headers=auth("carol"))
    assert over.status_code == 409 and over.json()["code"] == "alert_limit_reached" and str(LIMIT) in over.json()["detail"]

    listed = client.get("/v1/alerts", headers=auth("carol")).json()["alerts"]
    assert {a["id"] for a in listed} == {a["id"] for a in made}
    assert client.get("/v1/alerts", headers=auth("dave")).json()["alerts"] == []
    alert_id = made[0]["id"]
    assert client.get(f"/v1/alerts/{alert_id}", headers=auth("carol")).json() == made[0]
    for method in ("GET", "DELETE"):
        assert client.request(method, f"/v1/alerts/{alert_id}", headers=auth("dave")).status_code == 404
    assert client.get(f"/v1/alerts/{alert_id}/matches", headers=auth("dave")).status_code == 404

    assert client.delete(f"/v1/alerts/{alert_id}", headers=auth("carol")).status_code == 204
    assert client.get(f"/v1/alerts/{alert_id}", headers=auth("carol")).status_code == 404
    assert client.post("/v1/alerts", json=ALERT, headers=auth("carol")).status_code == 201  # the deleted one freed a place


def test_trip_writes_fill_the_match_feed_once_per_change(client: httpx.Client) -> None:
    alert_id = client.post("/v1/alerts", json=ALERT, headers=auth("erin")).json()["id"]
    day = DAY + dt.timedelta(days=1)

    def put(version: int, hour: int, **change: Any) -> None:
        trip = {**make_trip("alert-feed-1", version, day=day, hour=hour), **change}
        assert client.put("/v1/trips/alert-feed-1", json=trip, params={"refresh": "wait_for"}, headers=WRITER).status_code == 200

    put(1, 9)
    hits = client.get("/v1/search", params={**iceland_query(day), "time_from": "08:00", "time_to": "10:00"}).json()["trips"]
    assert [h["id"] for h in hits] == ["alert-feed-1"]
    [match] = feed(client, "erin", alert_id)
    assert match["kind"] == "match" and match["trip_id"] == "alert-feed-1" and match["version"] == 1
    assert match["pickup"] == hits[0]["pickup"] and match["dropoff"] == hits[0]["dropoff"] and match["date"] == day.isoformat()

    put(2, 9, price={"amount": 15.0, "currency": "ISK"})  # still matches: nothing new
    assert len(feed(client, "erin", alert_id)) == 1
    put(3, 12)  # outside 08:00-10:00 now
    assert [(m["kind"], m["version"], m.get("reason")) for m in feed(client, "erin", alert_id)][0] == ("unmatch", 3, "changed")
    put(4, 8)  # matches again: told again
    assert feed(client, "erin", alert_id)[0]["kind"] == "match"
    assert client.delete("/v1/trips/alert-feed-1", params={"refresh": "wait_for"}, headers=WRITER).status_code == 200
    events = feed(client, "erin", alert_id)
    assert [(m["kind"], m["version"]) for m in events] == [("cancel", 4), ("match", 4), ("unmatch", 3), ("match", 1)]
    assert events[0]["reason"] == "deleted"

    first = client.get(f"/v1/alerts/{alert_id}/matches", params={"limit": 3}, headers=auth("erin")).json()
    rest = client.get(f"/v1/alerts/{alert_id}/matches", params={"limit": 3, "cursor": first["next_cursor"]}, headers=auth("erin")).json()
    assert [m["seq"] for m in first["matches"] + rest["matches"]] == [m["seq"] for m in events] and rest["next_cursor"] is None
    bad = client.get(f"/v1/alerts/{alert_id}/matches", params={"cursor": "nope"}, headers=auth("erin"))
    assert bad.status_code == 400 and bad.json()["field"] == "cursor"


def test_a_cancelled_trip_cancels_only_where_it_matched(client: httpx.Client) -> None:
    told = client.post("/v1/alerts", json=ALERT, headers=auth("frank")).json()["id"]
    other = client.post("/v1/alerts", json={**ALERT, "time_from": "18:00", "time_to": "20:00"}, headers=auth("frank")).json()["id"]
    trip = make_trip("alert-cancel-1", 1, day=DAY, hour=9)
    # each version matched before the next is written (wait_for): a follower that reaches both at once matches only the latest
    assert client.put("/v1/trips/alert-cancel-1", json=trip, params={"refresh": "wait_for"}, headers=WRITER).status_code == 200
    assert client.put("/v1/trips/alert-cancel-1", json={**trip, "version": 2, "status": "cancelled"}, params={"refresh": "wait_for"}, headers=WRITER).status_code == 200
    assert [(m["kind"], m.get("reason")) for m in feed(client, "frank", told)] == [("cancel", "cancelled"), ("match", None)]
    assert feed(client, "frank", other) == []


def read_events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    """Return the next ``count`` Server-Sent Events of a streaming response (id, event, data)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = value.strip()
        elif line == "" and "data" in current:
            events.append({**current, "data": orjson.loads(current["data"])})
            current = {}
            if len(events) == count:
                return events
    raise AssertionError(f"the stream ended after {len(events)} events")


def test_the_event_stream_resumes_after_last_event_id_and_shows_only_the_owners_events(server: Server, client: httpx.Client) -> None:
    alert_id = client.post("/v1/alerts", json=ALERT, headers=auth("gina")).json()["id"]
    trip = make_trip("alert-stream-1", 1, day=DAY, hour=9)
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(30.0)) as streamer:
        with streamer.stream("GET", "/v1/alerts/stream", headers=auth("gina")) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            assert client.put("/v1/trips/alert-stream-1", json=trip, headers=WRITER).status_code == 200
            [first] = read_events(response, 1)
        assert first["event"] == "match" and first["data"]["alert_id"] == alert_id and first["data"]["trip_id"] == "alert-stream-1"
        assert first["data"] == feed(client, "gina", alert_id)[0] and first["id"] == str(first["data"]["seq"])

        # While nobody listens: a cancellation and a new match.
        assert client.put("/v1/trips/alert-stream-1", json={**trip, "version": 2, "status": "cancelled"}, headers=WRITER).status_code == 200
        assert client.put("/v1/trips/alert-stream-2", json=make_trip("alert-stream-2", 1, day=DAY, hour=8), headers=WRITER).status_code == 200
        with streamer.stream("GET", "/v1/alerts/stream", headers={**auth("gina"), "Last-Event-ID": first["id"]}) as response:
            missed = read_events(response, 2)
        assert [(e["event"], e["data"]["trip_id"]) for e in missed] == [("cancel", "alert-stream-1"), ("match", "alert-stream-2")]
        assert [e["data"] for e in missed] == feed(client, "gina", alert_id)[:2][::-1]

    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(30.0, read=2.0)) as other:
        with other.stream("GET", "/v1/alerts/stream", headers={**auth("hank"), "Last-Event-ID": "0"}) as response:
            with pytest.raises(httpx.ReadTimeout):
                read_events(response, 1)
    bad = client.get("/v1/alerts/stream", headers={**auth("gina"), "Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and bad.json()["field"] == "Last-Event-ID"


class Receiver:
    """A webhook receiver on loopback that answers 500 to its first ``failures`` requests (or all), then 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[int, dict[str, str], bytes]] = []  # (status answered, headers, body)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(receiver.requests) < receiver.failures else 204
                receiver.requests.append((status, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for status, h, b in self.requests if status == 204]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_failing_webhook_gets_every_event_in_order_signed(client: httpx.Client) -> None:
    receiver = Receiver(failures=3)
    try:
        made = client.post("/v1/alerts", json={**ALERT, "webhook_url": receiver.url}, headers=auth("ivan")).json()
        secret = made["webhook"]["secret"]
        assert secret.startswith("whsec_") and made["webhook"]["url"] == receiver.url
        trip = make_trip("alert-hook-1", 1, day=DAY, hour=9)
        for version, hour in ((1, 9), (2, 13), (3, 9)):  # match, unmatch, match; each matched before the next is written (wait_for)
            put = client.put("/v1/trips/alert-hook-1", json={**trip, **make_trip("alert-hook-1", version, day=DAY, hour=hour)}, params={"refresh": "wait_for"}, headers=WRITER)
            assert put.status_code == 200
        events = feed(client, "ivan", made["id"])[::-1]
        assert [e["kind"] for e in events] == ["match", "unmatch", "match"]
        wait_for(lambda: len(receiver.accepted()) == 3)
        got = [orjson.loads(body) for _, body in receiver.accepted()]
        assert got == events, "every event, in order, as the feed has it"
        for headers, body in receiver.accepted():
            assert verify(body, headers["tripsearch-signature"], secret) and headers["tripsearch-event-id"] == str(orjson.loads(body)["seq"])
        assert not verify(receiver.accepted()[0][1], receiver.accepted()[0][0]["tripsearch-signature"], "whsec_wrong")
        retried = [orjson.loads(b)["seq"] for status, _, b in receiver.requests]
        assert retried[:4] == [events[0]["seq"]] * 4, "the first event was retried until it got through, before the next"
        # the sender records the delivery just after the receiver answers
        wait_for(lambda: client.get(f"/v1/alerts/{made['id']}", headers=auth("ivan")).json()["webhook"]["delivered"] == 3)
        webhook = client.get(f"/v1/alerts/{made['id']}", headers=auth("ivan")).json()["webhook"]
        assert webhook["status"] == "ok" and webhook["pending"] == 0 and "secret" not in webhook
    finally:
        receiver.close()


def test_a_webhook_that_keeps_failing_is_given_up_and_shows_it(client: httpx.Client) -> None:
    receiver = Receiver(failures=10**9)
    try:
        made = client.post("/v1/alerts", json={**ALERT, "webhook_url": receiver.url}, headers=auth("judy")).json()
        assert client.put("/v1/trips/alert-hook-2", json=make_trip("alert-hook-2", 1, day=DAY, hour=9), headers=WRITER).status_code == 200
        wait_for(lambda: len(receiver.requests) >= 2)
        webhook = client.get(f"/v1/alerts/{made['id']}", headers=auth("judy")).json()["webhook"]
        assert webhook["status"] == "failing" and webhook["retrying"]["last_error"] == "HTTP 500"

        def given_up() -> bool:
            return client.get(f"/v1/alerts/{made['id']}", headers=auth("judy")).json()["webhook"]["status"] == "failed"

        wait_for(given_up, timeout_s=GIVE_UP_S + 20)
        webhook = client.get(f"/v1/alerts/{made['id']}", headers=auth("judy")).json()["webhook"]
        assert webhook["failed"] == 1 and webhook["pending"] == 0 and webhook["last_failure"]["error"] == "HTTP 500"
        attempts = len(receiver.requests)
        time.sleep(1.0)
        assert len(receiver.requests) == attempts, "given up: no more attempts"
    finally:
        receiver.close()


def test_a_webhook_url_must_be_http(client: httpx.Client) -> None:
    response = client.post("/v1/alerts", json={**ALERT, "webhook_url": "file:///etc/passwd"}, headers=auth("ivan"))
    assert response.status_code == 400 and response.json()["field"] == "webhook_url"


def test_the_python_clients_save_read_stream_and_delete_alerts(server: Server, client: httpx.Client) -> None:
    token = make_token("alerts:write", sub="kim")
    with TripSearchClient(server.url, token) as alerts:
        made = alerts.create_alert(ALERT)
        assert alerts.get_alert(made["id"]) == made and [a["id"] for a in alerts.alerts()] == [made["id"]]
        with pytest.raises(InvalidAlert) as bad:
            alerts.create_alert({**ALERT, "seats": 0})
        assert bad.value.field == "seats"
        stream = alerts.stream_alerts(last_event_id="0")  # kim's events from the first (a generator opens the stream at next())
        assert client.put("/v1/trips/alert-client-1", json=make_trip("alert-client-1", 1, day=DAY, hour=9), headers=WRITER).status_code == 200
        first = next(stream)
        stream.close()
        assert first["kind"] == "match" and first["trip_id"] == "alert-client-1"
        assert client.put("/v1/trips/alert-client-1", json={**make_trip("alert-client-1", 2, day=DAY, hour=9), "status": "full"}, headers=WRITER).status_code == 200
        resumed = next(alerts.stream_alerts(last_event_id=str(first["seq"])))
        assert (resumed["kind"], resumed["reason"]) == ("unmatch", "full")
        matches, cursor = alerts.alert_matches(made["id"], limit=1)
        assert [m["seq"] for m in matches] == [resumed["seq"]] and cursor is not None
        assert [m["seq"] for m in alerts.alert_matches(made["id"], cursor)[0]] == [first["seq"]]
        alerts.delete_alert(made["id"])
        with pytest.raises(AlertNotFound):
            alerts.get_alert(made["id"])

    async def use_async() -> None:
        async with AsyncTripSearchClient(server.url, token) as async_alerts:
            made = await async_alerts.create_alert({**ALERT, "date_from": None, "date_to": None, "date": DAY.isoformat()})
            assert (await async_alerts.get_alert(made["id"]))["date_to"] == DAY.isoformat()
            stream = async_alerts.stream_alerts(last_event_id="0")
            waiting = asyncio.ensure_future(stream.__anext__())
            trip = make_trip("alert-client-2", 1, day=DAY, hour=9)
            assert (await asyncio.to_thread(client.put, "/v1/trips/alert-client-2", json=trip, headers=WRITER)).status_code == 200
            event = await asyncio.wait_for(waiting, 30)
            await stream.aclose()
            assert event["alert_id"] == made["id"] and event["trip_id"] == "alert-client-2"
            await async_alerts.delete_alert(made["id"])
            assert await async_alerts.alerts() == []

    asyncio.run(use_async())
