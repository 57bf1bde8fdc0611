// The search page: the form, the URL, the calls to the API and the drawing of what comes back.
//
// The state (state.js) is the single source of truth: every change makes a new state, writes it to the URL
// and asks the API; each answer is drawn from the state that asked for it. An answer that comes back after
// a newer request was made is dropped.

import { initAlerts } from "./alerts.js";
import { ApiError, findPlaces, searchTrips } from "./api.js";
import { PlaceCombobox } from "./combobox.js";
import { h } from "./dom.js";
import { renderDates, renderFilters } from "./facets.js";
import { count, longDate } from "./format.js";
import { niceStep } from "./geo.js";
import { RouteMap } from "./map.js";
import { tripCard } from "./results.js";
import { activeFilterCount, isComplete, isUnresolved, MAX_LIMIT, placePoint, readState, searchParams, stateToQuery, withoutFilters } from "./state.js";
import { takeTokenFromFragment } from "./token.js";

const $ = (id) => document.getElementById(id);
const RADII = [2, 5, 10, 25, 50, 100];

const ui = {
  form: $("search-form"),
  date: $("date-input"),
  seats: $("seats-input"),
  fromRadius: $("from-radius"),
  toRadius: $("to-radius"),
  swap: $("swap-button"),
  sortField: $("sort-field"),
  sort: $("sort-select"),
  heading: $("results-heading"),
  status: $("status"),
  message: $("message"),
  list: $("trip-list"),
  more: $("more"),
  moreButton: $("more-button"),
  filters: $("filters"),
  filtersActive: $("filters-active"),
  filtersPanel: $("filters-panel"),
  dates: $("dates-strip"),
  apiCall: $("api-call"),
  apiCallLink: $("api-call-link"),
  apiCallTiming: $("api-call-timing"),
  mapCaption: $("map-caption"),
  results: document.querySelector(".results"),
};

let state = readState(location.search);
// The answer on screen: {state, hits, total, facets, nextCursor}.
let shown = null;
let controller = null;
let generation = 0;

const boxes = {
  from: new PlaceCombobox({ input: $("from-input"), listbox: $("from-listbox"), hint: $("from-hint"), error: $("from-error"), findPlaces }),
  to: new PlaceCombobox({ input: $("to-input"), listbox: $("to-listbox"), hint: $("to-hint"), error: $("to-error"), findPlaces }),
};

const map = new RouteMap($("map"), { onHover: (id) => highlight(id) });
map.loadOutlines("static/map/countries.json");

// A platform that embeds the page may hand over its user's alerts token in the fragment (#alerts_token=JWT).
takeTokenFromFragment();
// "Alert me" saves the search whose answer is on screen.
const alerts = initAlerts({ getSearch: () => shown?.state ?? null });

// -- the form ------------------------------------------------------------------------------------------------

function fillForm(s) {
  setBox(boxes.from, s.from);
  setBox(boxes.to, s.to);
  ui.date.value = s.date;
  setSelect(ui.seats, s.seats);
  setSelect(ui.fromRadius, s.fromRadiusKm);
  setSelect(ui.toRadius, s.toRadiusKm);
  ui.sort.value = s.sort;
}

// A place name from a link is typed into the box, not picked: the search looks it up like a typed name.
function setBox(box, point) {
  box.set(isUnresolved(point) ? null : point);
  if (isUnresolved(point)) box.input.value = point.name;
}

// A value from a shared URL that the select does not offer is added, so the form shows what is searched.
function setSelect(select, value) {
  const text = String(value);
  if (![...select.options].some((o) => o.value === text)) select.append(h("option", { value: text }, select === ui.seats ? text : `${text} km`));
  select.value = text;
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  submitForm();
});

/** Search what the form holds, looking up typed names (the first match is shown in the box, to change). */
async function submitForm({ history = "push", focusResults = true } = {}) {
  const [from, to] = await Promise.all([resolvePlace(boxes.from, "From"), resolvePlace(boxes.to, "To")]);
  const date = ui.date.value;
  setDateError(date ? null : "Choose the day you travel.");
  const invalid = [!from && boxes.from.input, !to && boxes.to.input, !date && ui.date].find(Boolean);
  if (invalid) {
    invalid.focus();
    return;
  }
  const fromPoint = placePoint(from);
  const toPoint = placePoint(to);
  const sameRoute = state.from?.value === fromPoint.value && state.to?.value === toPoint.value;
  search(
    {
      ...state,
      from: fromPoint,
      to: toPoint,
      date,
      seats: Number(ui.seats.value),
      fromRadiusKm: Number(ui.fromRadius.value),
      toRadiusKm: Number(ui.toRadius.value),
      // Price bands are chosen for the prices of a route; another route starts from the API's default.
      priceInterval: sameRoute ? state.priceInterval : null,
      shown: null,
    },
    { history, focusResults },
  );
}

async function resolvePlace(box, label) {
  try {
    const place = await box.resolve();
    box.setError(place ? null : box.input.value.trim() ? `No place called “${box.input.value.trim()}”. Pick one from the list.` : label === "From" ? "Type the city you leave from." : "Type the city you go to.");
    return place;
  } catch (error) {
    box.setError(`Places could not be looked up: ${describe(error)}`);
    return null;
  }
}

function setDateError(message) {
  const error = $("date-error");
  error.hidden = !message;
  error.textContent = message ?? "";
  if (message) ui.date.setAttribute("aria-invalid", "true");
  else ui.date.removeAttribute("aria-invalid");
}

ui.swap.addEventListener("click", () => {
  const from = boxes.from.place;
  const to = boxes.to.place;
  const fromText = boxes.from.input.value;
  const toText = boxes.to.input.value;
  boxes.from.set(to);
  boxes.to.set(from);
  if (!to) boxes.from.input.value = toText;
  if (!from) boxes.to.input.value = fromText;
  const radius = ui.fromRadius.value;
  setSelect(ui.fromRadius, ui.toRadius.value);
  setSelect(ui.toRadius, radius);
  // With results on screen, show the way back at once.
  if (shown && from && to) ui.form.requestSubmit();
});

ui.sort.addEventListener("change", () => search({ ...state, sort: ui.sort.value, shown: null }));
ui.moreButton.addEventListener("click", () => loadMore());

window.addEventListener("popstate", () => {
  if (location.search.slice(1) === stateToQuery(state)) return; // only the #fragment changed (the skip link)
  state = readState(location.search);
  showState("none");
});

/** Fill the form from the state and search it; a link that names places has them looked up first. */
function showState(how) {
  fillForm(state);
  if (isUnresolved(state.from) || isUnresolved(state.to)) submitForm({ history: "replace", focusResults: false });
  else if (isComplete(state)) search(state, { history: how });
  else showIntro();
}

// -- searching -----------------------------------------------------------------------------------------------

/** Search for a state: write it to the URL, ask the API, draw the answer. */
async function search(next, { history: how = "push", focusResults = false } = {}) {
  state = next;
  writeUrl(how);
  controller?.abort();
  controller = new AbortController();
  const mine = ++generation;
  setLoading(true);
  if (!shown || !sameArea(shown.state, state)) {
    // Nothing of this route on screen yet: show where the search looks while the API answers.
    ui.heading.textContent = `Trips from ${state.from.name} to ${state.to.name}`;
    drawMap([]);
  }
  const limit = Math.min(MAX_LIMIT, Math.max(state.limit, state.shown ?? 0));
  try {
    const { data, url, engineMs } = await searchTrips(searchParams(state, { limit }), { signal: controller.signal });
    if (mine !== generation) return;
    shown = { state, hits: data.trips, total: data.total, facets: data.facets ?? {}, nextCursor: data.next_cursor };
    drawAnswer({ url, engineMs });
    if (focusResults) ui.heading.focus();
    await refinePriceBands(mine);
  } catch (error) {
    if (error.name === "AbortError" || mine !== generation) return;
    drawError(error);
  } finally {
    if (mine === generation) setLoading(false);
  }
}

/** Append the next page of the answer on screen. */
async function loadMore() {
  if (!shown?.nextCursor) return;
  const mine = ++generation;
  controller?.abort();
  controller = new AbortController();
  ui.moreButton.disabled = true;
  ui.moreButton.textContent = "Loading more trips…";
  setLoading(true);
  try {
    const params = searchParams(shown.state, { cursor: shown.nextCursor, facets: [] });
    const { data, url, engineMs } = await searchTrips(params, { signal: controller.signal });
    if (mine !== generation) return;
    const firstNew = shown.hits.length;
    shown = { ...shown, hits: [...shown.hits, ...data.trips], nextCursor: data.next_cursor };
    state = { ...state, shown: shown.hits.length };
    writeUrl("replace");
    ui.list.append(...data.trips.map((hit) => tripCard(hit, state)));
    map.addHits(data.trips);
    drawMapCaption(shown.hits.length, shown.total);
    drawMore();
    drawApiCall(url, engineMs);
    announce(`${count(data.trips.length, "more trip")} shown, ${shown.hits.length} of ${shown.total}.`);
    ui.list.children[firstNew]?.querySelector("a")?.focus();
  } catch (error) {
    if (error.name === "AbortError" || mine !== generation) return;
    announce(`More trips could not be loaded: ${describe(error)}`);
    ui.moreButton.textContent = "Try again: more results";
  } finally {
    if (mine === generation) {
      setLoading(false);
      ui.moreButton.disabled = false;
    }
  }
}

// Price bands of the API's default width (5) are too wide for a short trip and too narrow for a long one.
// When the histogram has too few or too many bars, ask for the price facet alone with a better width; the
// width then stays in the URL, so filtering and reloading keep the same bars.
async function refinePriceBands(mine) {
  const main = shown.facets.price?.currencies?.[0];
  if (!main || main.max <= main.min) return;
  const width = shown.facets.price.interval;
  const bars = Math.round(main.buckets[main.buckets.length - 1].to / width) - Math.round(main.buckets[0].from / width); // empty ones too
  if (bars >= 4 && bars <= 16) return;
  const interval = Math.max(0.5, niceStep((main.max - main.min) / 8));
  if (interval === shown.facets.price.interval) return;
  const next = { ...state, priceInterval: interval };
  try {
    const { data } = await searchTrips(searchParams(next, { limit: 1, facets: ["price"] }), { signal: controller.signal });
    if (mine !== generation) return;
    state = next;
    shown = { ...shown, state: next, facets: { ...shown.facets, price: data.facets.price } };
    writeUrl("replace");
    renderFilters(ui.filters, shown.facets, state, applyFilter);
  } catch {
    // The histogram of the default width stays: it is still right, only coarser.
  }
}

function applyFilter(patch) {
  search({ ...state, ...patch, shown: null });
}

function writeUrl(how) {
  if (how === "none") return;
  const url = `${location.pathname}?${stateToQuery(state)}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (how === "push") history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

// -- drawing -------------------------------------------------------------------------------------------------

function setLoading(loading) {
  ui.results.setAttribute("aria-busy", String(loading));
  ui.results.classList.toggle("is-loading", loading);
  if (loading) announce("Searching trips…");
}

function announce(text) {
  ui.status.textContent = text;
}

function drawAnswer({ url, engineMs }) {
  const { hits, total, facets } = shown;
  const route = `${state.from.name} to ${state.to.name}`;
  const day = longDate(state.date);
  ui.heading.textContent = total ? `${count(total, "trip")} from ${route}` : `No trips from ${route}`;
  document.title = `${state.from.name} → ${state.to.name}, ${longDate(state.date, { year: false })}: ${count(total, "trip")} · tripsearch`;
  announce(total ? `${count(total, "trip")} found on ${day}.` : `No trips found on ${day}.`);
  ui.sortField.hidden = total < 2;
  ui.sort.value = state.sort;
  alerts.offer(total);
  ui.list.replaceChildren(...hits.map((hit) => tripCard(hit, state)));
  drawMessage(total ? null : emptyMessage(facets));
  drawMore();
  renderFilters(ui.filters, facets, state, applyFilter);
  renderDates(ui.dates, facets.dates, state, (date) => {
    ui.date.value = date;
    search({ ...state, date, shown: null });
  });
  drawFilterCount();
  drawMap(hits, total);
  drawApiCall(url, engineMs);
}

function drawMap(hits, total = 0) {
  map.show({ from: state.from, to: state.to, fromRadiusKm: state.fromRadiusKm, toRadiusKm: state.toRadiusKm, hits });
  drawMapCaption(hits.length, total);
}

function drawMapCaption(routes, total) {
  const route = `${state.from.name} to ${state.to.name}`;
  const areas = `the pick-up area within ${state.fromRadiusKm} km of ${state.from.name} and the drop-off area within ${state.toRadiusKm} km of ${state.to.name}`;
  ui.mapCaption.textContent = routes
    ? `Map of ${count(routes, "route")} from ${route}${routes < total ? ` (${routes} of ${total} loaded)` : ""}, with ${areas}.`
    : `Map of ${route}, with ${areas}.`;
}

function sameArea(a, b) {
  return a.from.value === b.from.value && a.to.value === b.to.value && a.fromRadiusKm === b.fromRadiusKm && a.toRadiusKm === b.toRadiusKm;
}

function drawMore() {
  const more = Boolean(shown?.nextCursor);
  ui.more.hidden = !more;
  ui.moreButton.disabled = false;
  if (more) ui.moreButton.textContent = `More results (${shown.hits.length} of ${shown.total} shown)`;
}

function drawFilterCount() {
  const n = activeFilterCount(state);
  ui.filtersActive.textContent = n ? `(${n} on)` : "";
}

function drawApiCall(url, engineMs) {
  ui.apiCall.hidden = false;
  const absolute = new URL(url, document.baseURI).href;
  ui.apiCallLink.href = absolute;
  ui.apiCallLink.textContent = `GET ${decodeURIComponent(new URL(absolute).pathname + new URL(absolute).search)}`;
  ui.apiCallTiming.textContent = engineMs === null ? "" : `The engine took ${engineMs} ms (Server-Timing header).`;
}

function emptyMessage(facets) {
  const route = `${state.from.name} to ${state.to.name}`;
  const tips = [];
  const nearby = (facets.dates ?? []).filter((d) => d.count > 0 && d.date !== state.date);
  if (nearby.length) {
    const best = nearby.sort((a, b) => Math.abs(dayDiff(a.date)) - Math.abs(dayDiff(b.date)))[0];
    tips.push(
      h("li", {}, h("button", { type: "button", class: "link-button", onclick: () => jumpTo(best.date) }, `See ${longDate(best.date, { year: false })}`), `: ${count(best.count, "trip")}.`),
    );
  }
  const filters = activeFilterCount(state);
  if (filters) {
    tips.push(h("li", {}, h("button", { type: "button", class: "link-button", onclick: () => search(withoutFilters(state)) }, `Clear ${count(filters, "filter")}`), " and see every trip of the day."));
  }
  const wider = RADII.find((r) => r > Math.max(state.fromRadiusKm, state.toRadiusKm));
  if (wider) {
    tips.push(
      h(
        "li",
        {},
        h("button", { type: "button", class: "link-button", onclick: () => widen(wider) }, `Search within ${wider} km`),
        ` of ${state.from.name} and ${state.to.name}.`,
      ),
    );
  }
  return h(
    "div",
    { class: "message-empty" },
    h("p", { class: "message-title" }, `No trip from ${route} on ${longDate(state.date)} matches your search.`),
    h("p", { class: "alert-offer" }, alerts.prominentButton(), " Trips published later for this search are then listed in My alerts."),
    tips.length ? h("ul", { class: "tips" }, tips) : null,
  );
}

function jumpTo(date) {
  ui.date.value = date;
  search({ ...state, date, shown: null });
}

function widen(km) {
  setSelect(ui.fromRadius, km);
  setSelect(ui.toRadius, km);
  search({ ...state, fromRadiusKm: km, toRadiusKm: km, shown: null });
}

function dayDiff(date) {
  return (Date.parse(date) - Date.parse(state.date)) / 86400000;
}

function drawError(error) {
  shown = null;
  alerts.offer(null);
  ui.list.replaceChildren();
  ui.more.hidden = true;
  ui.sortField.hidden = true;
  ui.dates.hidden = true;
  ui.heading.textContent = "The search did not work";
  const field = error instanceof ApiError ? error.field : null;
  const retry = h("button", { type: "button", class: "secondary-button", onclick: () => search(state, { history: "none" }) }, "Try again");
  let title;
  let advice = null;
  if (!(error instanceof ApiError) || error.status === 0) {
    title = "The server could not be reached.";
    advice = "Check the connection, then try again.";
  } else if (error.status === 503) {
    title = "The trips are not ready to search yet.";
    advice = `The server says: ${error.detail}. Try again in ${error.retryAfter ?? "a few"} seconds.`;
  } else if (error.status === 401 || error.status === 403) {
    title = "This server only answers searches with a token.";
    advice = error.detail;
  } else if (error.status >= 400 && error.status < 500) {
    title = "The server did not accept this search.";
    advice = `${error.detail}${field && !error.detail.includes(field) ? ` (field “${field}”)` : ""}. Change the search and try again.`;
  } else {
    title = "The server failed to answer.";
    advice = error.detail || "Try again in a moment.";
  }
  drawMessage(h("div", { class: "message-error", role: "alert" }, h("p", { class: "message-title" }, title), advice ? h("p", {}, advice) : null, retry));
  announce(title);
  markField(field, error.detail);
  ui.filters.replaceChildren(h("p", { class: "muted" }, "Filters appear with the results."));
  drawMap([]);
  if (error instanceof ApiError && error.url) drawApiCall(error.url, null);
}

// Point at the form field the API named as wrong, when it is one of the form's.
function markField(field, detail) {
  if (!field) return;
  const name = field.split(".")[0];
  if (name === "from") boxes.from.setError(detail);
  else if (name === "to") boxes.to.setError(detail);
  else if (name === "date") setDateError(detail);
}

function drawMessage(content) {
  ui.message.hidden = !content;
  ui.message.replaceChildren(...(content ? [content] : []));
}

function showIntro() {
  shown = null;
  alerts.offer(null);
  ui.heading.textContent = "Find a ride";
  ui.list.replaceChildren();
  ui.more.hidden = true;
  ui.sortField.hidden = true;
  ui.dates.hidden = true;
  ui.apiCall.hidden = true;
  drawMessage(
    h(
      "div",
      { class: "message-intro" },
      h("p", { class: "message-title" }, "Where are you going?"),
      h("p", {}, "Type the city you leave from and the one you go to, pick them from the lists, choose a day and search. Trips that pass near both, in that order, are listed with where and when the driver picks you up."),
    ),
  );
  ui.filters.replaceChildren(h("p", { class: "muted" }, "Filters appear with the results, each with its number of trips."));
  map.show({ from: state.from, to: state.to, fromRadiusKm: state.fromRadiusKm, toRadiusKm: state.toRadiusKm, hits: [] });
}

function describe(error) {
  if (error instanceof ApiError) return error.status ? error.detail || error.title : "no answer from the server";
  return String(error.message ?? error);
}

// -- the route under the pointer or the keyboard ---------------------------------------------------------------

function highlight(tripId) {
  for (const card of ui.list.children) card.classList.toggle("is-active", card.dataset.tripId === tripId);
  map.highlight(tripId);
}

const cardOf = (event) => event.target.closest?.(".trip-card");
ui.list.addEventListener("pointerover", (event) => {
  const card = cardOf(event);
  if (card) highlight(card.dataset.tripId);
});
ui.list.addEventListener("pointerleave", () => highlight(null));
ui.list.addEventListener("focusin", (event) => {
  const card = cardOf(event);
  if (card) highlight(card.dataset.tripId);
});

// Filters fold away on a phone, where they would push the results below the screen.
const narrow = window.matchMedia("(max-width: 760px)");
const foldFilters = () => {
  ui.filtersPanel.open = !narrow.matches;
};
narrow.addEventListener("change", foldFilters);
foldFilters();

// -- start ---------------------------------------------------------------------------------------------------

showState("replace");
