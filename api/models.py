"""Request and response models of the HTTP API, kept apart from the domain model.

They describe the wire format in the OpenAPI schema (for ``/docs``, client
generators and schemathesis). They do not validate on the hot path: the
engine's own parsers (:func:`tripsearch.parse_query`,
:func:`tripsearch.parse_trip`) are the one validator, so the API, the
command line and the library accept and refuse the same inputs with the
same messages. Bounds and names come from the engine's constants, so the
schema cannot drift from what the engine checks.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from tripsearch.alerts.model import MAX_DAYS as MAX_ALERT_DAYS
from tripsearch.model import CURRENCY_PATTERN, ID_PATTERN, MAX_PRICE_AMOUNT, MAX_RATING, MAX_SCHEDULE_DAYS, MAX_SEATS, MAX_STOP_NAME_LENGTH, MAX_STOPS, OPTION_NAMES, STATUSES, WEEKDAYS
from tripsearch.query.model import (
    DEFAULT_TIME_DELTA,
    FACET_NAMES,
    MAX_CELL_RESOLUTION,
    MAX_CURSOR_LENGTH,
    MAX_DAYS,
    MAX_LIMIT,
    MAX_PRICE,
    MAX_RADIUS_KM,
    MAX_TIME_DELTA,
    MIN_PRICE_INTERVAL,
    QUERY_DEFAULTS,
    SORTS,
)

__all__ = [
    "TripFilters",
    "SearchRequest",
    "SearchResponse",
    "Hit",
    "HitPoint",
    "NearPlace",
    "Facets",
    "Trip",
    "Stop",
    "Route",
    "Price",
    "TripOptions",
    "Driver",
    "Schedule",
    "ScheduleException",
    "OccurrenceTrip",
    "OccurrenceSeats",
    "PlacesResponse",
    "PlaceItem",
    "WriteResult",
    "BulkItem",
    "BulkResponse",
    "Health",
    "Ready",
    "ProblemDetails",
    "AlertRequest",
    "Alert",
    "AlertList",
    "AlertMatch",
    "AlertMatches",
    "search_parameters",
    "register_schemas",
    "DOCUMENTED_MODELS",
]

_NUMBER = r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?"
POINT_PATTERN = rf"^\s*{_NUMBER}\s*,\s*{_NUMBER}\s*$"
TIME_PATTERN = r"^\d{1,2}:\d{2}$"
TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"
OPTIONS_PATTERN = rf"^(({'|'.join(OPTION_NAMES)})(,({'|'.join(OPTION_NAMES)}))*)?$"
FACETS_PATTERN = rf"^(all|(({'|'.join(FACET_NAMES)})(,({'|'.join(FACET_NAMES)}))*)?)$"


def _enum(values: Iterable[str]) -> dict[str, Any]:
    return {"enum": list(values)}


# -- search -------------------------------------------------------------------

PointText = Annotated[str, Field(pattern=POINT_PATTERN)]
LatLonPair = Annotated[list[float], Field(min_length=2, max_length=2)]
OptionsText = Annotated[str, Field(pattern=OPTIONS_PATTERN)]
OptionName = Annotated[str, Field(json_schema_extra=_enum(OPTION_NAMES))]
FacetsText = Annotated[str, Field(pattern=FACETS_PATTERN)]
FacetName = Annotated[str, Field(json_schema_extra=_enum(FACET_NAMES))]


class TripFilters(BaseModel):
    """The fields of a search that select trips, shared by searches and alerts (saved searches)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: PointText | LatLonPair = Field(
        alias="from",
        description="Where the passenger starts: `LAT,LON` (or `[lat, lon]` in a JSON body).",
        json_schema_extra={"examples": ["48.8566,2.3522"]},
    )
    to: PointText | LatLonPair = Field(
        description="Where the passenger goes: `LAT,LON` (or `[lat, lon]` in a JSON body).",
        json_schema_extra={"examples": ["45.764,4.8357"]},
    )
    date: dt.date | None = Field(None, description="The day of departure, `YYYY-MM-DD`, in the trip's local time.")
    from_radius_km: float = Field(QUERY_DEFAULTS["from_radius_km"], ge=0, le=MAX_RADIUS_KM, description="How far from `from` the pickup may be.")
    to_radius_km: float = Field(QUERY_DEFAULTS["to_radius_km"], ge=0, le=MAX_RADIUS_KM, description="How far from `to` the dropoff may be.")
    seats: int = Field(QUERY_DEFAULTS["seats"], ge=1, le=MAX_SEATS, description="Seats needed.")
    time_from: str | None = Field(None, pattern=TIME_PATTERN, description="Earliest pickup time, local `HH:MM`.")
    time_to: str | None = Field(None, pattern=TIME_PATTERN, description="Latest pickup time, local `HH:MM`.")
    max_price: float | None = Field(None, ge=0, le=MAX_PRICE, description="Highest price per seat.")
    options: OptionsText | list[OptionName] | None = Field(
        None,
        description=f"Options every trip must have, a comma list of: {', '.join(OPTION_NAMES)}.",
    )
    min_rating: float | None = Field(None, ge=0, le=MAX_RATING, description="Lowest driver rating.")


class SearchRequest(TripFilters):
    """The fields of a search. ``GET /v1/search`` takes them as query parameters, ``POST /v1/search`` as a JSON object."""

    date: dt.date | None = Field(None, description="The day of departure, `YYYY-MM-DD`, in the trip's local time; or give `date_from` and `date_to`.")
    date_from: dt.date | None = Field(None, description="First day of a search over several days (with `date_to`, instead of `date`): one ranked list across the days.")
    date_to: dt.date | None = Field(None, description=f"Last day of a search over several days (at most {MAX_DAYS} days from `date_from`, counting both).")
    departure_time: str | None = Field(
        None,
        pattern=TIME_PATTERN,
        description="Search around a local time `HH:MM` (instead of `time_from`/`time_to`): pickups at most `time_delta` from it, even across midnight, on each day searched.",
    )
    time_delta: int | None = Field(
        None,
        ge=0,
        le=MAX_TIME_DELTA,
        description=f"Seconds either side of `departure_time` (counted in whole minutes; default {DEFAULT_TIME_DELTA} with `departure_time`).",
    )
    sort: str = Field(
        QUERY_DEFAULTS["sort"],
        json_schema_extra=_enum(SORTS),
        description="Order of the trips; `time_distance` (with `departure_time`) puts the pickup closest to `departure_time` first.",
    )
    limit: int = Field(QUERY_DEFAULTS["limit"], ge=1, le=MAX_LIMIT, description="Trips per page.")
    cursor: str | None = Field(None, max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page of the same search.")
    facets: FacetsText | list[FacetName] = Field(
        QUERY_DEFAULTS["facets"],
        description=f"Facets to compute: `all`, empty for none, or a comma list of: {', '.join(FACET_NAMES)}.",
    )
    price_interval: float = Field(QUERY_DEFAULTS["price_interval"], ge=MIN_PRICE_INTERVAL, le=MAX_PRICE, description="Width of the price facet's buckets.")
    cell_resolution: int = Field(QUERY_DEFAULTS["cell_resolution"], ge=0, le=MAX_CELL_RESOLUTION, description="H3 resolution of the pickup and dropoff cell facets.")


class NearPlace(BaseModel):
    """The known city nearest to a point (the same table as `/v1/places`)."""

    name: str
    country: str = Field(description="ISO 3166-1 alpha-2 code.")


class HitPoint(BaseModel):
    """Where a passenger is picked up or dropped off: a point of the route, its distance from what was asked, when, and the city nearest to it."""

    lat: float
    lon: float
    distance_km: float
    time: str = Field(description="ISO 8601 with the trip's UTC offset.")
    place: NearPlace | None = Field(None, description="The known city nearest to the point; always given in search hits.")


class Stop(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_STOP_NAME_LENGTH)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    time: dt.datetime = Field(description="With a UTC offset, never earlier than the stop before.")


class Route(BaseModel):
    """A GeoJSON LineString of ``[lon, lat]`` points from the first stop to the last."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["LineString"]
    coordinates: list[tuple[float, float]] = Field(min_length=2)


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: float = Field(ge=0, le=MAX_PRICE_AMOUNT)
    currency: str = Field("EUR", pattern=CURRENCY_PATTERN)


# One flag per option name of the engine, all false by default.
TripOptions = create_model("TripOptions", __config__=ConfigDict(extra="forbid"), **{name: (bool, False) for name in OPTION_NAMES})  # type: ignore[call-overload]


class Driver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    rating: float | None = Field(None, ge=0, le=MAX_RATING)
    verified: bool = False


TimeOfDay = Annotated[str, Field(pattern=TIME_OF_DAY_PATTERN, description="A local wall-clock time `HH:MM` or `HH:MM:SS`.")]


class ScheduleException(BaseModel):
    """One date of a schedule that differs: skipped, at another time, or with other seats available."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date = Field(description="Between `valid_from` and `valid_to`; one exception per date.")
    skip: bool = Field(False, description="The trip does not run on this date (then no `time` nor `seats_available`).")
    time: TimeOfDay | None = Field(None, description="The local departure time of this date; on a weekday without a time, it adds a trip.")
    seats_available: int | None = Field(None, ge=0, le=MAX_SEATS, description="The seats left on this date (at most `seats_total`); other dates keep the trip's.")


class Schedule(BaseModel):
    """When a regular trip runs: a local departure time per weekday, between two dates, with exceptions.

    Times are wall-clock times in `timezone`: 07:45 stays 07:45 local across a
    daylight-saving change. A time a spring change skips is read with the
    offset before the change (02:30 becomes 03:30+02:00); a time an autumn
    change repeats is the first of the two.
    """

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(description="An IANA time zone name, e.g. `Europe/Paris`.", json_schema_extra={"examples": ["Europe/Paris"]})
    valid_from: dt.date = Field(description="The first date the schedule may run.")
    valid_to: dt.date = Field(description=f"The last date (inclusive), less than {MAX_SCHEDULE_DAYS} days after `valid_from`.")
    times: dict[str, TimeOfDay] = Field(
        description=f"The local departure time per weekday: keys among {', '.join(WEEKDAYS)}.",
        json_schema_extra={"propertyNames": {"enum": list(WEEKDAYS)}, "examples": [{"MON": "07:45", "FRI": "07:45", "SAT": "09:00"}]},
    )
    exceptions: list[ScheduleException] = Field([], description="Dates that differ from the weekly plan.")


class Trip(BaseModel):
    """A trip document, stored as given. In ``PUT /v1/trips/{trip_id}`` the ``id`` may be left out; if given it must be the path's.

    With a `schedule` it is a regular trip: its stops' times give only the
    durations from the first stop (their date does not matter), the schedule
    gives the dates and local departure times; search finds its occurrences.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    version: int = Field(ge=0, description="A write is applied only if its version is higher than the stored one.")
    departure_time: dt.datetime = Field(description="The time of the first stop, with a UTC offset.")
    stops: list[Stop] = Field(min_length=2, max_length=MAX_STOPS)
    seats_total: int = Field(ge=1, le=MAX_SEATS)
    seats_available: int = Field(ge=0, le=MAX_SEATS)
    price: Price
    options: TripOptions | None = None  # type: ignore[valid-type]  # built from the engine's option names
    driver: Driver | None = None
    status: str = Field("published", json_schema_extra=_enum(STATUSES))
    route: Route | None = None
    schedule: Schedule | None = Field(None, description="Makes the trip a regular trip (see `Schedule`).")


class OccurrenceTrip(Trip):
    """A trip document as search returns it: for a regular trip, the document of one date (its times and seats) with `occurrence`."""

    occurrence: dt.date | None = Field(None, description="The date of a regular trip's occurrence; absent for a one-off trip.")


class OccurrenceSeats(BaseModel):
    """The body of `PATCH /v1/trips/{trip_id}/occurrences/{date}`."""

    model_config = ConfigDict(extra="forbid")

    seats_available: int = Field(ge=0, le=MAX_SEATS, description="The seats left on that date, from 0 to the trip's `seats_total`.")


class Hit(BaseModel):
    id: str = Field(description="The trip's id (for a regular trip, the same for all its occurrences).")
    score: float
    pickup: HitPoint
    dropoff: HitPoint
    trip: OccurrenceTrip
    occurrence: dt.date | None = Field(None, description="For a regular trip: the date of the occurrence found (local, `YYYY-MM-DD`); absent for a one-off trip.")


class HourCount(BaseModel):
    hour: int
    count: int


class TimeOfDayCount(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    key: str
    from_: str = Field(alias="from")
    to: str
    count: int


class PriceBucket(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: float = Field(alias="from")
    to: float
    count: int


class CurrencyPrices(BaseModel):
    currency: str
    count: int
    min: float
    max: float
    avg: float
    buckets: list[PriceBucket]


class PriceFacet(BaseModel):
    interval: float
    currencies: list[CurrencyPrices]


class SeatsCount(BaseModel):
    seats: int
    count: int


class RatingCount(BaseModel):
    min: float | None = Field(description="Trips whose driver is rated at least this; null counts every trip.")
    count: int


class DateCount(BaseModel):
    date: dt.date
    count: int


class CellCount(BaseModel):
    cell: str
    count: int
    lat: float
    lon: float


class Facets(BaseModel):
    """Counts beside the filters; each facet ignores its own filter. Only the facets asked for are present."""

    departure_hour: list[HourCount] | None = None
    time_of_day: list[TimeOfDayCount] | None = None
    price: PriceFacet | None = None
    options: dict[str, int] | None = None
    seats_available: list[SeatsCount] | None = None
    driver_rating: list[RatingCount] | None = None
    dates: list[DateCount] | None = None
    pickup_cells: list[CellCount] | None = None
    dropoff_cells: list[CellCount] | None = None


class SearchResponse(BaseModel):
    total: int = Field(description="How many trips match (all pages).")
    trips: list[Hit]
    facets: Facets
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


# -- places -------------------------------------------------------------------


class PlaceItem(BaseModel):
    name: str
    country: str = Field(description="ISO 3166-1 alpha-2 code.")
    lat: float
    lon: float
    population: int


class PlacesResponse(BaseModel):
    places: list[PlaceItem]


# -- writes -------------------------------------------------------------------


class WriteResult(BaseModel):
    """What one write did: ``stored``, ``unchanged`` (a version at least as high is stored), ``deleted``, or ``not_found`` (a versioned delete that found no live trip)."""

    id: str
    result: Literal["stored", "unchanged", "deleted", "not_found"]
    version: int | None = None
    reason: str | None = None


class BulkItem(BaseModel):
    """The fate of one line of a bulk request."""

    line: int = Field(description="Line number in the request body, from 1.")
    id: str | None = None
    result: Literal["stored", "unchanged", "rejected"]
    version: int | None = None
    field: str | None = Field(None, description="The field at fault, for rejected lines.")
    reason: str | None = None


class BulkResponse(BaseModel):
    stored: int
    unchanged: int
    rejected: int
    items: list[BulkItem] = Field(description="One per non-blank line, in order.")


# -- operations ---------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]
    pid: int = Field(description="The worker process that answered.")


class Ready(BaseModel):
    status: Literal["ready"]
    backend: str | None = None
    trips: int | None = None
    refresh_lag_s: float | None = None


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str = Field(description="What is wrong, for a person; names the field.")
    code: str = Field(description="A stable short name of the error, e.g. `invalid_query`.")
    field: str | None = Field(None, description="The input field at fault.")


# Models the routes document by hand (bodies the engine parses, problem documents): see register_schemas.
# -- alerts -------------------------------------------------------------------


class AlertRequest(TripFilters):
    """A saved search: the fields of a search that select trips, over one date or a range of dates (see `date_to`)."""

    date: dt.date | None = Field(None, description="One day (`YYYY-MM-DD`, the trip's local time); or give `date_from` and `date_to`.")
    date_from: dt.date | None = Field(None, description="First day of the range.")
    date_to: dt.date | None = Field(None, description=f"Last day of the range (at most {MAX_ALERT_DAYS} days after `date_from`, counting both).")
    webhook_url: str | None = Field(None, max_length=2000, description="http(s) URL to POST every event of the alert to, signed (see docs/alerts.md).")


class Webhook(BaseModel):
    """An alert's webhook and how its deliveries fare; `secret` only in the answer to `POST /v1/alerts`."""

    model_config = ConfigDict(extra="allow")

    url: str
    secret: str | None = Field(None, description="The HMAC-SHA256 key of the signatures; returned once, when the alert is saved.")
    status: Literal["ok", "failing", "failed"] | None = Field(None, description="`failing`: an event is being retried; `failed`: the last event given up.")
    delivered: int | None = None
    pending: int | None = None
    failed: int | None = None


class Alert(BaseModel):
    """A stored alert: its id, owner, fields (dates as a range), and whether it is still active."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    owner: str = Field(description="The `sub` of the token that saved it.")
    from_: LatLonPair = Field(alias="from")
    to: LatLonPair
    date_from: dt.date
    date_to: dt.date
    created_at: str
    expires_at: str = Field(description="When the last day has ended in every UTC offset; the alert is then `expired` (purged 7 days later).")
    status: Literal["active", "expired"]
    webhook: Webhook | None = None


class AlertList(BaseModel):
    alerts: list[Alert]


class AlertMatch(BaseModel):
    """One event of an alert's feed."""

    model_config = ConfigDict(extra="allow")

    seq: int = Field(description="Position in the feed of all alerts (increasing).")
    alert_id: str
    trip_id: str
    version: int = Field(description="The trip version the event is about.")
    kind: Literal["match", "unmatch", "cancel"]
    at: str
    date: dt.date | None = Field(None, description="`match`: the day the alert's search finds the trip (local pickup date).")
    score: float | None = None
    pickup: HitPoint | None = None
    dropoff: HitPoint | None = None
    reason: str | None = Field(None, description="`unmatch`: `changed` or `full`; `cancel`: `cancelled` or `deleted`.")


class AlertMatches(BaseModel):
    matches: list[AlertMatch]
    next_cursor: str | None


DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (SearchRequest, AlertRequest, Trip, OccurrenceSeats, ProblemDetails)


def search_parameters() -> list[dict[str, Any]]:
    """Return the OpenAPI query parameters of ``GET /v1/search``: the fields of :class:`SearchRequest` in their text form."""
    schema = SearchRequest.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        variants = [v for v in prop.pop("anyOf", [prop]) if v.get("type") != "null"]
        # A query parameter is text: of "string or array", keep the string form.
        chosen = next((v for v in variants if v.get("type") == "string"), variants[0])
        param_schema = {**prop, **chosen}
        if param_schema.get("default", "") is None:
            del param_schema["default"]
        out.append({"name": name, "in": "query", "required": name in required, "description": description, "schema": param_schema})
    return out


def register_schemas(openapi: dict[str, Any], models: Iterable[type[BaseModel]] = DOCUMENTED_MODELS) -> None:
    """Add the schemas of ``models`` (and the models they use) to ``openapi``'s components."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(model.__name__, schema)
