"""The search page in a real browser (Debian's Chromium) against a real server over the fixture trips.

Every count the page shows is compared with what the API answers for the
search the page's URL holds. Screenshots of the main states go to
``test-output/page/``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from .conftest import PAGE_SIZE, REGULAR_TRIP, Journey, PageServer

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("the browser tests need the Python package playwright: pip install -e '.[dev]'", allow_module_level=True)

# Page URL fields that are not API fields: the names shown in the boxes and how many trips were loaded.
PAGE_ONLY = {"from_name", "to_name", "shown"}
PAGE_FACETS = "departure_hour,time_of_day,price,options,driver_rating,dates"


def test_a_person_searches_pages_filters_and_shares_the_search(open_page: Any, page_server: PageServer, journey: Journey, screenshot: Any) -> None:
    page = open_page(f"/?limit={PAGE_SIZE}")
    expect(page.get_by_role("heading", name="Find a ride")).to_be_visible()
    assert page.get_by_label("Date").input_value() == (dt.date.today() + dt.timedelta(days=1)).isoformat()
    expect(page.locator("#map .map-land path").first).to_be_attached()
    screenshot(page, "01-start")

    # From: type a prefix, wait for the suggestions, walk to the city with the arrow keys, Enter.
    from_box = page.get_by_role("combobox", name="From")
    from_box.press_sequentially(journey.origin.name[:3], delay=40)
    expect(page.locator("#from-listbox")).to_be_visible()
    expect(from_box).to_have_attribute("aria-expanded", "true")
    first = page.locator("#from-listbox [role=option]").first
    expect(first).to_have_accessible_name(re.compile(r"^.+, [A-Z][\w .'()-]+$"))  # the city, then its country's name
    screenshot(page, "02-autocomplete", full_page=False)
    _choose_with_keyboard(page, from_box, journey.origin.name)
    expect(from_box).to_have_value(journey.origin.name)
    expect(from_box).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#from-hint")).not_to_be_empty()

    # To: type a prefix and click the city.
    to_box = page.get_by_role("combobox", name="To")
    to_box.press_sequentially(journey.destination.name[:3], delay=40)
    page.locator("#to-listbox [role=option]").filter(has=page.locator(".option-name", has_text=re.compile(f"^{re.escape(journey.destination.name)}$"))).first.click()
    expect(to_box).to_have_value(journey.destination.name)

    page.get_by_label("Date").fill(journey.date)
    page.get_by_role("button", name="Search", exact=True).click()
    answer = _expect_page_matches_api(page, page_server, journey)
    assert answer["total"] == journey.total
    query = _api_query(page)
    assert (query["from"], query["to"], query["date"]) == (journey.origin.point, journey.destination.point, journey.date)
    _expect_cards_show_hits(page, answer["trips"])
    screenshot(page, "03-results")

    # More results, through the cursor, until the last page: every trip once, in the API's order.
    all_ids = _all_ids(page_server, _api_query(page))
    more = page.get_by_role("button", name=re.compile(r"^More results"))
    while more.is_visible():
        shown = page.locator(".trip-card").count()
        more.click()
        expect(page.locator(".trip-card")).to_have_count(min(shown + PAGE_SIZE, len(all_ids)))
    assert _card_ids(page) == all_ids
    expect(page.locator("#map .map-route")).to_have_count(len(all_ids))
    assert dict(parse_qsl(urlsplit(page.url).query))["shown"] == str(len(all_ids))
    screenshot(page, "04-more-results")

    # Pointing at a result emphasises its route on the map.
    second = page.locator(".trip-card").nth(1)
    second.hover()
    expect(second).to_have_class(re.compile(r"\bis-active\b"))
    expect(page.locator(f"#map .map-route.is-active[data-trip-id='{all_ids[1]}']")).to_have_count(1)
    screenshot(page, "05-route-highlighted", full_page=False)

    # Reloading the page (or opening its URL anywhere) shows the same trips, the extra pages included.
    page.reload()
    expect(page.locator(".trip-card")).to_have_count(len(all_ids))
    assert _card_ids(page) == all_ids
    shared = open_page(urlsplit(page.url).path + "?" + urlsplit(page.url).query)
    expect(shared.locator(".trip-card")).to_have_count(len(all_ids))
    assert _card_ids(shared) == all_ids
    shared.close()

    # A facet filter: the list and the other counts change, and they are the API's.
    before = _page_counts(page)
    key = _narrowing_choice(answer)
    page.locator(f"[data-key='{key}']").check()
    expect(page).to_have_url(re.compile("time_from=|options="))
    filtered = _expect_page_matches_api(page, page_server, journey)
    assert 0 < filtered["total"] < answer["total"]
    after = _page_counts(page)
    assert after != before
    expect(page.locator(f"[data-key='{key}']")).to_be_checked()
    screenshot(page, "06-filtered")

    # The filtered search survives a reload.
    filtered_ids = _card_ids(page)
    page.reload()
    expect(page.locator(f"[data-key='{key}']")).to_be_checked()
    _expect_page_matches_api(page, page_server, journey)
    assert _card_ids(page) == filtered_ids

    # Back to any time, then jump to a neighbouring day from the dates facet.
    if key.startswith("time:"):
        page.locator("[data-key='time:any']").check()
    else:
        page.locator(f"[data-key='{key}']").uncheck()
    _expect_page_matches_api(page, page_server, journey)
    dates = {d["date"]: d["count"] for d in page_server.search(**_api_query(page))["facets"]["dates"]}
    other = max((d for d in dates if d != journey.date), key=lambda d: (dates[d] > 0, -abs(dt.date.fromisoformat(d) - dt.date.fromisoformat(journey.date)).days))
    page.locator(f"[data-key='date:{other}']").click()
    expect(page.get_by_label("Date")).to_have_value(other)
    day = _expect_page_matches_api(page, page_server, journey)
    assert day["total"] == dates[other]
    screenshot(page, "07-other-day")

    # The browser's Back button returns to the day before.
    page.go_back()
    expect(page.get_by_label("Date")).to_have_value(journey.date)
    _expect_page_matches_api(page, page_server, journey)


def test_empty_error_and_loading_states_say_what_happened(open_page: Any, journey: Journey, screenshot: Any) -> None:
    far_day = (dt.date.fromisoformat(journey.date) + dt.timedelta(days=200)).isoformat()
    page = open_page(_page_url(journey, date=far_day))
    heading = page.locator("#results-heading")
    expect(heading).to_have_text(f"No trips from {journey.origin.name} to {journey.destination.name}")
    expect(page.locator("#message")).to_contain_text("matches your search")
    expect(page.locator("#message").get_by_role("button", name=re.compile("^Search within"))).to_be_visible()
    screenshot(page, "08-empty")

    # A search the API refuses: its problem detail, naming the field, is shown, and the field is marked.
    page.goto(_page_url(journey, **{"from": "91,0", "from_name": "Nowhere"}))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The server did not accept this search.")
    expect(alert).to_contain_text("from.lat")
    expect(page.get_by_role("combobox", name="From")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "09-error")

    # While the API has not answered, the page says it is searching.
    held: list[Any] = []
    page.route("**/v1/search?*", lambda route: route.fallback() if held else held.append(route))
    page.goto(_page_url(journey))
    expect(page.locator("#status")).to_have_text("Searching trips…")
    expect(page.locator(".results")).to_have_attribute("aria-busy", "true")
    screenshot(page, "10-loading", full_page=False)
    assert len(held) == 1
    held[0].fallback()
    expect(heading).to_have_text(re.compile(rf"^{journey.total} trips from "))
    expect(page.locator(".results")).to_have_attribute("aria-busy", "false")
    page.unroute("**/v1/search?*")

    # No answer at all: the page says the server could not be reached, and Try again works.
    page.route("**/v1/search?*", lambda route: route.abort())
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("The server could not be reached.")
    screenshot(page, "11-no-answer", full_page=False)
    page.unroute("**/v1/search?*")
    page.get_by_role("button", name="Try again").click()
    expect(heading).to_have_text(re.compile(rf"^{journey.total} trips from "))


def test_the_page_fits_a_phone(open_page: Any, journey: Journey, screenshot: Any) -> None:
    page = open_page(_page_url(journey), width=390, height=844, is_mobile=True, has_touch=True)
    expect(page.locator(".trip-card").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator("#filters-panel")).not_to_have_attribute("open", "")
    form = page.locator("#search-form").bounding_box()
    assert form is not None and form["width"] <= 390
    for control in ("From", "To", "Date", "Seats"):
        box = page.get_by_label(control, exact=True).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, control
        assert box["height"] >= 40, f"{control} is too small to tap"
    screenshot(page, "12-phone")
    page.locator("#filters-panel summary").click()
    expect(page.locator("#filters-panel")).to_have_attribute("open", "")
    expect(page.locator("#facet-time")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "13-phone-filters")


def test_the_page_is_accessible(open_page: Any, journey: Journey) -> None:
    page = open_page(_page_url(journey))
    expect(page.locator(".trip-card").first).to_be_visible()

    unnamed = page.evaluate(_UNNAMED_CONTROLS)
    assert unnamed == [], f"controls without an accessible name: {unnamed}"
    low = page.evaluate(_LOW_CONTRAST)
    assert low == [], f"text below the WCAG AA contrast: {low}"

    # The keyboard goes through the form in reading order.
    page.locator("body").focus()
    order: list[str] = []
    for _ in range(14):
        page.keyboard.press("Tab")
        name = page.evaluate("document.activeElement.id || document.activeElement.className || document.activeElement.tagName")
        if not order or order[-1] != name:  # a date input has a stop per part of the date
            order.append(name)
    assert order[:10] == ["skip-link", "api-docs-link", "my-alerts-button", "from-input", "swap-button", "to-input", "date-input", "seats-input", "search-button", "from-radius"]

    # The suggestions close with Escape; a second Escape clears the box.
    to_box = page.get_by_role("combobox", name="To")
    to_box.fill("")
    to_box.press_sequentially(journey.destination.name[:3])
    expect(page.locator("#to-listbox")).to_be_visible()
    to_box.press("ArrowDown")
    expect(to_box).to_have_attribute("aria-activedescendant", "to-listbox-0")
    to_box.press("Escape")
    expect(page.locator("#to-listbox")).to_be_hidden()
    to_box.press("Escape")
    expect(to_box).to_have_value("")

    # The skip link moves to the results.
    page.locator(".skip-link").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#results-heading")).to_be_focused()


def test_sort_and_swap(open_page: Any, page_server: PageServer, journey: Journey) -> None:
    page = open_page(_page_url(journey))
    expect(page.locator(".trip-card").first).to_be_visible()
    page.get_by_label("Sort by").select_option(label="Lowest price")
    expect(page).to_have_url(re.compile("sort=price"))
    answer = _expect_page_matches_api(page, page_server, journey)
    prices = [hit["trip"]["price"]["amount"] for hit in answer["trips"]]
    assert prices == sorted(prices)

    # Swap: From and To change places, and the way back is searched at once.
    page.get_by_role("button", name="Swap From and To").click()
    expect(page.get_by_role("combobox", name="From")).to_have_value(journey.destination.name)
    expect(page.get_by_role("combobox", name="To")).to_have_value(journey.origin.name)
    expect(page).to_have_url(re.compile(f"from={re.escape(journey.destination.point.replace(',', '%2C'))}"))
    _expect_page_matches_api(page, page_server, journey)


def test_a_link_that_names_places_looks_them_up(open_page: Any, page_server: PageServer, journey: Journey) -> None:
    page = open_page("/?" + urlencode({"from": journey.origin.name, "to": journey.destination.name, "date": journey.date}))
    # The first match of each name is shown in its box, and the URL keeps its coordinates from then on.
    expect(page.get_by_role("combobox", name="From")).to_have_value(journey.origin.name)
    expect(page.get_by_role("combobox", name="To")).to_have_value(journey.destination.name)
    expect(page).to_have_url(re.compile(r"from=-?[\d.]+%2C-?[\d.]+&from_name="))
    expect(page.locator("#from-error")).to_be_hidden()
    answer = _expect_page_matches_api(page, page_server, journey)
    assert answer["total"] > 0
    _expect_cards_show_hits(page, answer["trips"])


def test_the_page_modules_keep_the_search_and_the_geometry_right(open_page: Any) -> None:
    page = open_page("/?from=48.85341,2.3488&from_name=Paris&to=45.74846,4.84671&to_name=Lyon&date=2026-12-05")
    result = page.evaluate(
        """async () => {
            const state = await import("./static/js/state.js");
            const geo = await import("./static/js/geo.js");
            const s = state.readState("?from=48.85,2.35&from_name=Paris&to=45.75,4.85&to_name=Lyon&date=2026-12-05&options=pets,instant_booking&sort=price&limit=5&time_from=06:00&time_to=11:59");
            const again = state.readState("?" + state.stateToQuery(s));
            const ring = geo.circle(48.85, 2.35, 10);
            const radii = ring.map(([lon, lat]) => geo.haversineKm(48.85, 2.35, lat, lon));
            const [x, y] = geo.project(2.35, 48.85);
            return {
                same: JSON.stringify(s) === JSON.stringify(again),
                api: state.searchParams(s).toString(),
                radius: [Math.min(...radii), Math.max(...radii)],
                back: geo.unproject(x, y),
            };
        }"""
    )
    assert result["same"]
    assert result["api"] == (
        "from=48.85%2C2.35&to=45.75%2C4.85&date=2026-12-05&time_from=06%3A00&time_to=11%3A59&options=instant_booking%2Cpets&sort=price&limit=5"
        "&facets=departure_hour%2Ctime_of_day%2Cprice%2Coptions%2Cdriver_rating%2Cdates"
    )
    assert result["radius"] == pytest.approx([10, 10], abs=1e-6)
    assert result["back"] == pytest.approx([2.35, 48.85])


# -- helpers ------------------------------------------------------------------------------------------------


def _choose_with_keyboard(page: Page, box: Any, name: str) -> None:
    """Press ArrowDown until the active suggestion is the city called name, then Enter."""
    options = page.locator("#from-listbox .option-name")
    expect(options.first).to_be_visible()
    names = options.all_text_contents()
    assert name in names, f"{name} is not among the suggestions {names}"
    for _ in range(names.index(name) + 1):
        box.press("ArrowDown")
    active = box.get_attribute("aria-activedescendant")
    assert active and page.locator(f"#{active} .option-name").text_content() == name
    expect(page.locator(f"#{active}")).to_have_attribute("aria-selected", "true")
    box.press("Enter")


def _api_query(page: Page) -> dict[str, str]:
    """Return the API query of the search the page's URL holds, as the page sends it (with its facets)."""
    params = {k: v for k, v in parse_qsl(urlsplit(page.url).query) if k not in PAGE_ONLY}
    shown = dict(parse_qsl(urlsplit(page.url).query)).get("shown")
    params["limit"] = str(max(int(params.get("limit", 20)), int(shown or 0)))
    params["facets"] = PAGE_FACETS
    return params


def _expect_page_matches_api(page: Page, server: PageServer, journey: Journey) -> dict[str, Any]:
    """Wait until the page shows what the API answers for the page's URL, and return the answer."""
    expect(page.locator(".results")).to_have_attribute("aria-busy", "false")
    answer = server.search(**_api_query(page))
    total = answer["total"]
    origin, destination = page.get_by_role("combobox", name="From").input_value(), page.get_by_role("combobox", name="To").input_value()
    heading = f"{total} trip{'s' if total != 1 else ''} from {origin} to {destination}" if total else f"No trips from {origin} to {destination}"
    expect(page.locator("#results-heading")).to_have_text(heading)
    expect(page.locator(".trip-card")).to_have_count(len(answer["trips"]))
    assert _card_ids(page) == [hit["id"] for hit in answer["trips"]]
    if total:
        assert _page_counts(page) == _api_counts(answer["facets"]), "the filter counts are not the API's"
    return answer


def _expect_cards_show_hits(page: Page, hits: list[dict[str, Any]]) -> None:
    for card, hit in zip(page.locator(".trip-card").all(), hits, strict=True):
        clocks = card.locator(".clock").all_text_contents()
        assert [c[:5] for c in clocks] == [hit["pickup"]["time"][11:16], hit["dropoff"]["time"][11:16]]
        amount = hit["trip"]["price"]["amount"]
        expect(card.locator(".price strong")).to_contain_text(f"{amount:,.0f}" if amount == int(amount) and amount >= 100 else f"{amount:,.2f}")
        expect(card.locator(".seats")).to_contain_text(f"{hit['trip']['seats_available']} seat")
        rating = hit["trip"]["driver"]["rating"]
        expect(card.locator(".rating")).to_contain_text(f"{rating:.1f}" if rating is not None else "no rating")
        expect(card.locator(".walk").first).to_contain_text("from")
        # Where: the trip's stop there, or the city nearest to the point, which the API names.
        stops = {stop["name"] for stop in hit["trip"]["stops"]}
        for place, point in zip(card.locator(".place-name").all_text_contents(), (hit["pickup"], hit["dropoff"]), strict=True):
            name = place.split(": ", 1)[-1]
            assert name in stops or name == f"On the way, near {point['place']['name']}", (name, point)
        labels = card.locator(".trip-options li").all_text_contents()
        assert len(labels) == sum(bool(v) for v in hit["trip"]["options"].values())


def _card_ids(page: Page) -> list[str]:
    return list(page.locator(".trip-card").evaluate_all("cards => cards.map(card => card.dataset.tripId)"))


def _all_ids(server: PageServer, query: dict[str, str]) -> list[str]:
    ids: list[str] = []
    params = {**query, "limit": str(PAGE_SIZE), "facets": ""}
    while True:
        answer = server.search(**params)
        ids += [hit["id"] for hit in answer["trips"]]
        if not answer["next_cursor"]:
            return ids
        params["cursor"] = answer["next_cursor"]


def _page_counts(page: Page) -> dict[str, int]:
    """Return every count the filters and the dates strip show, by control."""
    rows = page.evaluate(
        """() => [
            ...[...document.querySelectorAll('#filters .choice')].filter(c => c.querySelector('.count'))
                .map(c => [c.querySelector('input').dataset.key, c.querySelector('.count').textContent]),
            ...[...document.querySelectorAll('#filters .bar')].map(b => [b.dataset.key, b.querySelector('.bar-count').textContent]),
            ...[...document.querySelectorAll('#dates-strip button')].map(b => [b.dataset.key, b.getAttribute('aria-label')]),
        ]"""
    )
    return {key: int(re.findall(r"\d+", text.replace(",", " ").split(":")[-1])[0]) for key, text in rows}


def _api_counts(facets: dict[str, Any]) -> dict[str, int]:
    counts = {"time:any": sum(b["count"] for b in facets["time_of_day"])}
    counts |= {f"time:{b['key']}": b["count"] for b in facets["time_of_day"]}
    counts |= {f"options:{name}": n for name, n in facets["options"].items()}
    counts |= {f"rating:{'any' if b['min'] is None else _js_number(b['min'])}": b["count"] for b in facets["driver_rating"]}
    currencies = facets["price"]["currencies"]
    if currencies:
        # The histogram also draws the empty bands between the first and the last the API lists.
        interval, buckets = facets["price"]["interval"], currencies[0]["buckets"]
        first, end = round(buckets[0]["from"] / interval), round(buckets[-1]["to"] / interval)
        by_band = {round(b["from"] / interval): b["count"] for b in buckets}
        counts |= {f"price:{_js_number(round((k + 1) * interval, 10))}": by_band.get(k, 0) for k in range(first, end)}
    counts |= {f"date:{d['date']}": d["count"] for d in facets["dates"]}
    return counts


def _js_number(value: float) -> str:
    """Return a number as JavaScript writes it (5, not 5.0)."""
    return str(int(value)) if value == int(value) else repr(value)


def _narrowing_choice(answer: dict[str, Any]) -> str:
    """Return the key of a time of day (else an option) that keeps some of the trips but not all."""
    total = answer["total"]
    for bucket in answer["facets"]["time_of_day"]:
        if 0 < bucket["count"] < total:
            return f"time:{bucket['key']}"
    for name, n in answer["facets"]["options"].items():
        if 0 < n < total:
            return f"options:{name}"
    raise AssertionError(f"no filter narrows the search: {answer['facets']}")


def _page_url(journey: Journey, **fields: str) -> str:
    params = {"from": journey.origin.point, "from_name": journey.origin.name, "to": journey.destination.point, "to_name": journey.destination.name, "date": journey.date, **fields}
    return "/?" + urlencode(params)


# Controls (inputs, selects, buttons, links) that are shown but have no accessible name.
_UNNAMED_CONTROLS = """() => [...document.querySelectorAll('input, select, button, a[href], [role=combobox]')]
    .filter(el => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden')
    .filter(el => !((el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.textContent.trim()))
    .map(el => el.outerHTML.slice(0, 120))"""

# Text whose contrast with its background is below WCAG AA (4.5:1, or 3:1 for large text); disabled controls are exempt.
_LOW_CONTRAST = """() => {
    const parse = c => { const m = c.match(/[\\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
    const lum = ({r, g, b}) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
    const background = el => {
        for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
            const c = parse(getComputedStyle(node).backgroundColor);
            if (c.a > 0.5) return c;
        }
        return {r: 255, g: 255, b: 255, a: 1};
    };
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (!node.textContent.trim() || el.closest('svg, .visually-hidden, [hidden], :disabled, label:has(> :disabled), input:disabled + label')) continue;
        if (!el.getClientRects().length) continue;
        const style = getComputedStyle(el);
        const fg = parse(style.color), bg = background(el);
        const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
        const ratio = (hi + 0.05) / (lo + 0.05);
        const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
        const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
        if (ratio < need) out.push(`${node.textContent.trim().slice(0, 40)}: ${ratio.toFixed(2)}`);
    }
    return out;
}"""


def test_a_regular_trip_shows_its_date_and_its_weekly_schedule(open_page: Any, screenshot: Any) -> None:
    stops = REGULAR_TRIP["stops"]
    url = "/?" + urlencode({"from": f"{stops[0]['lat']},{stops[0]['lon']}", "from_name": "Akureyri", "to": f"{stops[1]['lat']},{stops[1]['lon']}", "to_name": "Husavik", "date": "2027-01-11"})
    page = open_page(url)
    card = page.locator(f".trip-card[data-trip-id='{REGULAR_TRIP['id']}']")
    expect(card).to_have_attribute("data-occurrence", "2027-01-11")
    expect(card.locator(".timeline-pickup .clock")).to_have_text("08:15")  # the date's moved time
    expect(card.locator(".occurrence")).to_have_text("Regular trip · this one on Mon, 11 Jan 2027")
    summary = card.get_by_text("Weekly schedule")
    expect(card.locator(".schedule-summary")).to_be_hidden()  # closed until asked
    summary.click()
    expect(card.locator(".schedule-summary")).to_have_text("Mon–Fri 07:45, Sat 09:00 · 4 Jan 2027 to 30 Jun 2027")
    expect(card.get_by_role("list", name="Exceptions").locator("li")).to_have_text(["Fri 8 Jan: no trip", "Mon 11 Jan: at 08:15", "Tue 12 Jan: 1 seat left"])
    expect(card.locator(".schedule-zone")).to_have_text("Times in Europe/Paris")
    assert page.evaluate(_LOW_CONTRAST) == [] and page.evaluate(_UNNAMED_CONTROLS) == []
    screenshot(page, "regular-trip")
    # another date: the same trip, its own occurrence and seats
    page.goto(url.replace("2027-01-11", "2027-01-12"))
    expect(card).to_have_attribute("data-occurrence", "2027-01-12")
    expect(card.locator(".seats")).to_contain_text("1 seat left")

    weekly = page.evaluate(
        """async () => {
            const { weeklyTimes } = await import("./static/js/schedule.js");
            return [
                weeklyTimes({MON: "07:45", TUE: "07:45", WED: "07:45", THU: "07:45", FRI: "07:45", SAT: "09:00"}),
                weeklyTimes({MON: "07:45", WED: "07:45:30", FRI: "07:45"}),
                weeklyTimes({SAT: "10:00", SUN: "10:00"}),
                weeklyTimes({MON: "08:00", TUE: "08:00", WED: "09:00", THU: "08:00", FRI: "08:00", SUN: "08:00"}),
            ];
        }"""
    )
    assert weekly == ["Mon–Fri 07:45, Sat 09:00", "Mon, Wed, Fri 07:45", "Sat, Sun 10:00", "Mon, Tue, Thu, Fri, Sun 08:00, Wed 09:00"]
