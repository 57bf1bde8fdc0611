// The search as a value: read from the page URL, written back to it, and turned into API parameters.
// The URL uses the API's own parameter names, so a shared link reads like the request it makes.

import { tomorrow } from "./format.js";

export const DEFAULTS = Object.freeze({
  from: null, // {name, value: "LAT,LON", lat, lon}
  to: null,
  date: null, // YYYY-MM-DD; tomorrow when absent
  seats: 1,
  fromRadiusKm: 10,
  toRadiusKm: 10,
  timeFrom: null, // "HH:MM"
  timeTo: null,
  maxPrice: null,
  options: Object.freeze([]),
  minRating: null,
  sort: "relevance",
  limit: 20,
  priceInterval: null, // null: the API's default width of price buckets
  shown: null, // how many trips the page had loaded with "More results"; a reload loads as many
});

export const SORTS = ["relevance", "departure", "price", "pickup_distance"];
export const MAX_LIMIT = 100;

// The facets the page shows; the cell facets are left to the API's other clients.
export const PAGE_FACETS = ["departure_hour", "time_of_day", "price", "options", "driver_rating", "dates"];

/** Return the state a page URL's query string describes; missing or malformed fields take their default. */
export function readState(search, today = new Date()) {
  const params = new URLSearchParams(search);
  const number = (key, fallback) => {
    const raw = params.get(key);
    const value = raw === null || raw.trim() === "" ? NaN : Number(raw);
    return Number.isFinite(value) ? value : fallback;
  };
  const options = (params.get("options") ?? "").split(",").map((o) => o.trim()).filter(Boolean);
  const sort = params.get("sort");
  return {
    ...DEFAULTS,
    from: readPoint(params.get("from"), params.get("from_name")),
    to: readPoint(params.get("to"), params.get("to_name")),
    date: /^\d{4}-\d{2}-\d{2}$/.test(params.get("date") ?? "") ? params.get("date") : tomorrow(today),
    seats: number("seats", DEFAULTS.seats),
    fromRadiusKm: number("from_radius_km", DEFAULTS.fromRadiusKm),
    toRadiusKm: number("to_radius_km", DEFAULTS.toRadiusKm),
    timeFrom: params.get("time_from") || null,
    timeTo: params.get("time_to") || null,
    maxPrice: number("max_price", null),
    options: [...new Set(options)].sort(),
    minRating: number("min_rating", null),
    sort: SORTS.includes(sort) ? sort : DEFAULTS.sort,
    limit: Math.min(MAX_LIMIT, Math.max(1, Math.round(number("limit", DEFAULTS.limit)))),
    priceInterval: number("price_interval", null),
    shown: number("shown", null),
  };
}

/**
 * Return a point of the state from "LAT,LON" and a name; null when there is no point.
 * A value that is not coordinates is a place name (a link like ?from=Paris&to=Lyon): the point is
 * {name, value: null, unresolved: true} until the page looks the name up in /v1/places.
 */
export function readPoint(value, name) {
  if (!value) return null;
  const parts = value.split(",").map((part) => part.trim());
  const [lat, lon] = parts.map(Number);
  if (parts.length !== 2 || parts.some((part) => part === "") || !Number.isFinite(lat) || !Number.isFinite(lon)) {
    return { name: name || value, value: null, lat: null, lon: null, unresolved: true };
  }
  return { name: name || value, value, lat, lon };
}

/** Tell whether a point of the state is a name still to look up. */
export function isUnresolved(point) {
  return Boolean(point?.unresolved);
}

/** Return a point of the state from a place of /v1/places. */
export function placePoint(place) {
  return { name: place.name, value: `${round(place.lat)},${round(place.lon)}`, lat: place.lat, lon: place.lon, country: place.country };
}

/** Tell whether the state has all a search needs. */
export function isComplete(state) {
  return Boolean(state.from?.value && state.to?.value && state.date);
}

/** Return the page URL's query string of a state: the fields that differ from the defaults, in a stable order. */
export function stateToQuery(state) {
  const params = new URLSearchParams();
  if (state.from) params.set("from", state.from.value);
  if (state.from) params.set("from_name", state.from.name);
  if (state.to) params.set("to", state.to.value);
  if (state.to) params.set("to_name", state.to.name);
  if (state.date) params.set("date", state.date);
  for (const [key, value] of filterEntries(state)) params.set(key, value);
  if (state.shown !== null && state.shown > state.limit) params.set("shown", String(state.shown));
  return params.toString();
}

/** Return the parameters of GET /v1/search for a state. */
export function searchParams(state, { cursor = null, limit = state.limit, facets = PAGE_FACETS } = {}) {
  const params = new URLSearchParams();
  params.set("from", state.from.value);
  params.set("to", state.to.value);
  params.set("date", state.date);
  for (const [key, value] of filterEntries(state)) params.set(key, value);
  params.set("limit", String(limit));
  params.set("facets", facets.join(","));
  if (cursor) params.set("cursor", cursor);
  return params;
}

/** Return how many filters of the facet panel are set (seats and radii are part of the search form). */
export function activeFilterCount(state) {
  return (state.timeFrom !== null || state.timeTo !== null ? 1 : 0) + (state.maxPrice !== null ? 1 : 0) + state.options.length + (state.minRating !== null ? 1 : 0);
}

/** Return the state without the filters of the facet panel. */
export function withoutFilters(state) {
  return { ...state, timeFrom: null, timeTo: null, maxPrice: null, options: [], minRating: null, shown: null };
}

// Every field but the places, the date and the page size, as API parameters, in the API's order.
function filterEntries(state) {
  const entries = [];
  if (state.fromRadiusKm !== DEFAULTS.fromRadiusKm) entries.push(["from_radius_km", String(state.fromRadiusKm)]);
  if (state.toRadiusKm !== DEFAULTS.toRadiusKm) entries.push(["to_radius_km", String(state.toRadiusKm)]);
  if (state.seats !== DEFAULTS.seats) entries.push(["seats", String(state.seats)]);
  if (state.timeFrom !== null) entries.push(["time_from", state.timeFrom]);
  if (state.timeTo !== null) entries.push(["time_to", state.timeTo]);
  if (state.maxPrice !== null) entries.push(["max_price", String(state.maxPrice)]);
  if (state.options.length) entries.push(["options", state.options.join(",")]);
  if (state.minRating !== null) entries.push(["min_rating", String(state.minRating)]);
  if (state.sort !== DEFAULTS.sort) entries.push(["sort", state.sort]);
  if (state.limit !== DEFAULTS.limit) entries.push(["limit", String(state.limit)]);
  if (state.priceInterval !== null) entries.push(["price_interval", String(state.priceInterval)]);
  return entries;
}

function round(degrees) {
  return Math.round(degrees * 1e5) / 1e5;
}

/** Return the body of POST /v1/alerts for a state: its search on its date, or on its date and the days - 1 days after. */
export function alertFields(state, days = 1) {
  const fields = {
    from: [state.from.lat, state.from.lon],
    to: [state.to.lat, state.to.lon],
    from_radius_km: state.fromRadiusKm,
    to_radius_km: state.toRadiusKm,
    seats: state.seats,
  };
  if (days > 1) {
    fields.date_from = state.date;
    fields.date_to = addDays(state.date, days - 1);
  } else {
    fields.date = state.date;
  }
  if (state.timeFrom !== null) fields.time_from = state.timeFrom;
  if (state.timeTo !== null) fields.time_to = state.timeTo;
  if (state.maxPrice !== null) fields.max_price = state.maxPrice;
  if (state.options.length) fields.options = [...state.options];
  if (state.minRating !== null) fields.min_rating = state.minRating;
  return fields;
}

/** Return the page URL's query string of an alert's search on one of its days (the page URL uses the API's names). */
export function alertQuery(alert, names, date) {
  const params = new URLSearchParams();
  params.set("from", alert.from.join(","));
  params.set("from_name", names.from);
  params.set("to", alert.to.join(","));
  params.set("to_name", names.to);
  params.set("date", date);
  for (const key of ["from_radius_km", "to_radius_km", "seats", "time_from", "time_to", "max_price", "min_rating"]) {
    if (alert[key] !== null && alert[key] !== undefined) params.set(key, String(alert[key]));
  }
  const options = Array.isArray(alert.options) ? alert.options : alert.options ? String(alert.options).split(",") : [];
  if (options.length) params.set("options", options.join(","));
  return params.toString();
}

/** Return the date days after an ISO date (YYYY-MM-DD). */
export function addDays(isoDate, days) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}
