// Ride alerts on the page: "Alert me" saves the search on screen (POST /v1/alerts), and "My alerts" lists the
// alerts of the token's owner with their newest matches, live from the stream while it is open.
//
// The API keeps an alert's coordinates, not the names typed: the names are kept in this browser (NAMES_KEY),
// and an alert saved elsewhere shows its coordinates. What was seen is kept too (SEEN_KEY), to mark new matches.

import { alertMatches, ApiError, createAlert, deleteAlert, listAlerts, streamAlerts } from "./api.js";
import { h } from "./dom.js";
import { clockTime, coordinates, count, longDate, optionLabel } from "./format.js";
import { addDays, alertFields, alertQuery, isComplete } from "./state.js";
import { forgetToken, getToken, setToken, tokenSubject } from "./token.js";

const NAMES_KEY = "tripsearch.alerts.names"; // {alertId: {from, to}}
const SEEN_KEY = "tripsearch.alerts.seen"; // {alertId: seq of the newest event shown}
const MATCHES_SHOWN = 10;
const BADGE_ALERTS = 20; // the header's count of new matches reads the feeds of this many alerts at most
const DAY_CHOICES = [1, 3, 7, 14, 30];
const CANCELLED = Symbol("no token");

const $ = (id) => document.getElementById(id);

/** Wire the alert dialogs; getSearch() returns the search on screen (a state of state.js) or null. */
export function initAlerts({ getSearch }) {
  const ui = {
    myAlerts: $("my-alerts-button"),
    badge: $("alerts-badge"),
    alertMe: $("alert-me-button"),
    note: $("alert-note"),
    alertDialog: $("alert-dialog"),
    alertForm: $("alert-form"),
    alertSummary: $("alert-summary"),
    alertDays: $("alert-days"),
    alertError: $("alert-error"),
    alertSave: $("alert-save"),
    tokenDialog: $("token-dialog"),
    tokenForm: $("token-form"),
    tokenInput: $("token-input"),
    tokenError: $("token-error"),
    tokenProblem: $("token-problem"),
    view: $("alerts-view"),
    ownerLine: $("alerts-owner-line"),
    owner: $("alerts-owner"),
    status: $("alerts-status"),
    list: $("alerts-list"),
  };
  let saving = null; // the search the alert dialog saves
  let pendingToken = null; // resolves the token dialog's promise
  let live = null; // AbortController of the stream while My alerts is open
  const alertsById = new Map();

  // -- the token ---------------------------------------------------------------------------------------------

  function askToken(problem) {
    ui.tokenProblem.hidden = !problem;
    ui.tokenProblem.textContent = problem ?? "";
    ui.tokenInput.value = "";
    setTokenError(null);
    ui.tokenDialog.showModal();
    ui.tokenInput.focus();
    return new Promise((resolve) => {
      pendingToken = resolve;
    });
  }

  function setTokenError(message) {
    ui.tokenError.hidden = !message;
    ui.tokenError.textContent = message ?? "";
    if (message) ui.tokenInput.setAttribute("aria-invalid", "true");
    else ui.tokenInput.removeAttribute("aria-invalid");
  }

  ui.tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = ui.tokenInput.value.trim().replace(/^Bearer\s+/i, "");
    if (!value) return tokenRefused("Paste the token.");
    if (value.split(".").length !== 3) return tokenRefused("This is not a token: a JWT is three parts separated by dots.");
    const resolve = pendingToken;
    pendingToken = null;
    ui.tokenDialog.close();
    resolve?.(setToken(value));
  });
  $("token-cancel").addEventListener("click", () => ui.tokenDialog.close());
  ui.tokenDialog.addEventListener("close", () => {
    const resolve = pendingToken;
    pendingToken = null;
    resolve?.(null);
  });

  function tokenRefused(message) {
    setTokenError(message);
    ui.tokenInput.focus();
  }

  /** Run action(token) with the stored token, asking for one when there is none or the API refuses it. */
  async function withToken(action) {
    let token = getToken();
    let problem = null;
    for (;;) {
      token ??= await askToken(problem);
      if (!token) return CANCELLED;
      try {
        return await action(token);
      } catch (error) {
        if (!(error instanceof ApiError) || (error.status !== 401 && error.status !== 403)) throw error;
        forgetToken();
        token = null;
        problem = `The server refused the token: ${error.detail || error.title}. Paste another one.`;
      }
    }
  }

  // -- alert me ------------------------------------------------------------------------------------------------

  function openAlertDialog() {
    const search = getSearch();
    if (!search || !isComplete(search)) return;
    saving = search;
    ui.alertSummary.replaceChildren(
      h("strong", {}, `${search.from.name} to ${search.to.name}`),
      h("br"),
      searchFilters({
        seats: search.seats,
        from_radius_km: search.fromRadiusKm,
        to_radius_km: search.toRadiusKm,
        time_from: search.timeFrom,
        time_to: search.timeTo,
        max_price: search.maxPrice,
        options: search.options,
        min_rating: search.minRating,
      }),
    );
    ui.alertDays.replaceChildren(
      ...DAY_CHOICES.map((n) =>
        h("option", { value: String(n) }, n === 1 ? `Only ${longDate(search.date)}` : `${longDate(search.date, { year: false })} to ${longDate(addDays(search.date, n - 1))} (${n} days)`),
      ),
    );
    showAlertError(null);
    ui.alertSave.disabled = false;
    ui.alertDialog.showModal();
    ui.alertDays.focus();
  }

  // The dialog's one field is the days: a refused date marks it.
  function showAlertError(message, field = null) {
    ui.alertError.hidden = !message;
    ui.alertError.textContent = message ?? "";
    if (field && field.startsWith("date")) ui.alertDays.setAttribute("aria-invalid", "true");
    else ui.alertDays.removeAttribute("aria-invalid");
  }

  ui.alertForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const search = saving;
    const fields = alertFields(search, Number(ui.alertDays.value));
    ui.alertSave.disabled = true;
    ui.alertSave.textContent = "Saving…";
    showAlertError(null);
    try {
      const alert = await withToken((token) => createAlert(fields, token));
      if (alert === CANCELLED) {
        showAlertError("No alert was saved: alerts need a token.");
        return;
      }
      remember(NAMES_KEY, alert.id, { from: search.from.name, to: search.to.name });
      ui.alertDialog.close();
      // The note is a live region of its own: it says it once, and stays until the next search.
      ui.note.textContent = `Alert saved for ${search.from.name} to ${search.to.name}, ${dayRange(alert)}: new trips will be listed in My alerts.`;
    } catch (error) {
      const field = error instanceof ApiError ? error.field : null;
      const detail = error instanceof ApiError ? (error.status ? error.detail || error.title : "the server could not be reached") : String(error.message ?? error);
      showAlertError(`The alert was not saved: ${detail}${field && !detail.includes(field) ? ` (field “${field}”)` : ""}.`, field);
    } finally {
      ui.alertSave.disabled = false;
      ui.alertSave.textContent = "Save alert";
    }
  });
  $("alert-cancel").addEventListener("click", () => ui.alertDialog.close());
  ui.alertMe.addEventListener("click", openAlertDialog);

  // -- my alerts -----------------------------------------------------------------------------------------------

  ui.myAlerts.addEventListener("click", () => {
    ui.view.showModal();
    loadView();
  });
  $("alerts-close").addEventListener("click", () => ui.view.close());
  ui.view.addEventListener("close", () => {
    live?.abort();
    live = null;
    ui.list.removeAttribute("data-live");
  });
  $("token-forget").addEventListener("click", () => {
    forgetToken();
    live?.abort();
    ui.list.replaceChildren();
    ui.ownerLine.hidden = true;
    drawBadge(0);
    ui.status.replaceChildren("The token is forgotten. ", h("button", { type: "button", class: "link-button", onclick: () => loadView() }, "Use a token"), " to see alerts again.");
    ui.status.querySelector("button").focus();
  });

  async function loadView() {
    ui.status.textContent = "Loading your alerts…";
    ui.list.setAttribute("aria-busy", "true");
    try {
      const answer = await withToken(async (token) => {
        const alerts = await listAlerts(token);
        const feeds = await Promise.all(alerts.map((a) => alertMatches(a.id, token, { limit: MATCHES_SHOWN })));
        return { token, alerts, feeds };
      });
      if (answer === CANCELLED) {
        ui.list.replaceChildren();
        ui.ownerLine.hidden = true;
        ui.status.replaceChildren("My alerts need a token. ", h("button", { type: "button", class: "link-button", onclick: () => loadView() }, "Use a token"));
        return;
      }
      if (!ui.view.open) return;
      const { token, alerts, feeds } = answer;
      alertsById.clear();
      alerts.forEach((a) => alertsById.set(a.id, a));
      ui.owner.textContent = `Alerts of ${tokenSubject(token) ?? "this token"}.`;
      ui.ownerLine.hidden = false;
      ui.list.replaceChildren(...alerts.map((a, i) => alertItem(a, feeds[i].matches)));
      ui.status.textContent = alerts.length
        ? `${count(alerts.length, "alert")}.`
        : "No alerts yet. Search a trip, then choose Alert me to be told of the trips published for it.";
      alerts.forEach((a, i) => markSeen(a.id, feeds[i].matches));
      drawBadge(0);
      listen(token, Math.max(0, ...feeds.flatMap((f) => f.matches.map((m) => m.seq))));
    } catch (error) {
      ui.status.textContent = `Your alerts could not be loaded: ${error instanceof ApiError ? error.detail || error.title || "no answer from the server" : error.message}`;
    } finally {
      ui.list.setAttribute("aria-busy", "false");
    }
  }

  function alertItem(alert, matches) {
    const names = namesOf(alert);
    const title = `${names.from} to ${names.to}`;
    const titleId = `alert-${alert.id}-title`;
    const seen = recall(SEEN_KEY, alert.id) ?? 0;
    const fresh = matches.filter((m) => m.kind === "match" && m.seq > seen).length;
    return h(
      "li",
      { class: "alert-item", dataset: { alertId: alert.id } },
      h(
        "article",
        { "aria-labelledby": titleId },
        h(
          "div",
          { class: "alert-head" },
          h("h3", { class: "alert-title", id: titleId }, title),
          fresh ? h("span", { class: "badge" }, `${fresh} new`) : null,
          alert.status === "expired" ? h("span", { class: "alert-expired" }, "Ended") : null,
        ),
        h("p", { class: "alert-days" }, dayRange(alert)),
        h("p", { class: "alert-filters" }, searchFilters(alert)),
        matches.length
          ? h("ol", { class: "match-list", "aria-label": `Newest trips for ${title}` }, matches.map((m) => matchItem(m, alert, names, m.seq > seen)))
          : h("p", { class: "muted match-none" }, "No trip yet. Trips published from now on that this search finds will be listed here."),
        h(
          "div",
          { class: "alert-actions" },
          h("a", { href: `?${alertQuery(alert, names, alert.date_from)}` }, "Search it now"),
          h("button", { type: "button", class: "secondary-button", "aria-label": `Delete the alert ${title}`, onclick: () => remove(alert, title) }, "Delete"),
        ),
      ),
    );
  }

  function matchItem(match, alert, names, fresh) {
    const newTag = fresh ? h("span", { class: "badge badge-new" }, "New") : null;
    if (match.kind !== "match") {
      const what = match.kind === "cancel" ? `was ${match.reason ?? "cancelled"}` : match.reason === "full" ? "is full" : "changed and no longer matches";
      return h("li", { class: "match match-gone", dataset: { tripId: match.trip_id, kind: match.kind } }, newTag, `Trip ${match.trip_id} ${what}.`);
    }
    const day = match.occurrence ?? match.date;
    return h(
      "li",
      { class: `match${fresh ? " is-new" : ""}`, dataset: { tripId: match.trip_id, kind: match.kind, ...(match.occurrence ? { occurrence: match.occurrence } : {}) } },
      newTag,
      h("span", { class: "match-day" }, longDate(day)),
      h(
        "span",
        { class: "match-route" },
        h("time", { class: "clock", datetime: match.pickup.time }, clockTime(match.pickup.time)),
        ` ${pointName(match.pickup)} → `,
        h("time", { class: "clock", datetime: match.dropoff.time }, clockTime(match.dropoff.time)),
        ` ${pointName(match.dropoff)}`,
      ),
      match.occurrence ? h("span", { class: "occurrence" }, `Regular trip · this one on ${longDate(match.occurrence)}`) : null,
      h("a", { class: "match-link", href: `?${alertQuery(alert, names, day)}`, "aria-label": `See the trip of ${longDate(day)} at ${clockTime(match.pickup.time)}` }, "See the trip"),
    );
  }

  async function remove(alert, title) {
    try {
      const done = await withToken((token) => deleteAlert(alert.id, token));
      if (done === CANCELLED) return;
      const item = ui.list.querySelector(`[data-alert-id="${CSS.escape(alert.id)}"]`);
      const next = item?.nextElementSibling ?? item?.previousElementSibling;
      item?.remove();
      forget(NAMES_KEY, alert.id);
      forget(SEEN_KEY, alert.id);
      alertsById.delete(alert.id);
      ui.status.textContent = `The alert ${title} is deleted.${ui.list.children.length ? "" : " No alerts left."}`;
      (next?.querySelector("button") ?? $("alerts-close")).focus();
    } catch (error) {
      ui.status.textContent = `The alert could not be deleted: ${error instanceof ApiError ? error.detail || error.title || "no answer from the server" : error.message}`;
    }
  }

  // While My alerts is open, each new event of the stream redraws its alert.
  async function listen(token, lastSeq) {
    live?.abort();
    const controller = new AbortController();
    live = controller;
    let last = lastSeq || null;
    while (!controller.signal.aborted) {
      try {
        ui.list.dataset.live = "connecting";
        last = await streamAlerts(token, (event) => onEvent(token, event), { signal: controller.signal, lastEventId: last, onOpen: () => (ui.list.dataset.live = "on") });
      } catch (error) {
        if (controller.signal.aborted || (error instanceof ApiError && (error.status === 401 || error.status === 403))) return;
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  }

  async function onEvent(token, event) {
    const alert = alertsById.get(event.data.alert_id);
    if (!alert || !ui.view.open) return;
    let matches;
    try {
      ({ matches } = await alertMatches(alert.id, token, { limit: MATCHES_SHOWN }));
    } catch {
      return; // the next event, or reopening the view, redraws it
    }
    const item = ui.list.querySelector(`[data-alert-id="${CSS.escape(alert.id)}"]`);
    if (!item || !ui.view.open) return;
    // Keep the keyboard where it was: on the same link or button of the redrawn alert.
    const focused = item.contains(document.activeElement) ? document.activeElement : null;
    const redrawn = alertItem(alert, matches);
    item.replaceWith(redrawn);
    if (focused) {
      const same = [...redrawn.querySelectorAll(focused.tagName)].find((el) => el.textContent === focused.textContent && el.getAttribute("aria-label") === focused.getAttribute("aria-label"));
      (same ?? redrawn.querySelector("a, button"))?.focus();
    }
    markSeen(alert.id, matches);
    const names = namesOf(alert);
    if (event.event === "match") ui.status.textContent = `A new trip for ${names.from} to ${names.to}.`;
  }

  // -- the count of new matches in the header -------------------------------------------------------------------

  function drawBadge(n) {
    ui.badge.hidden = !n;
    ui.badge.textContent = n ? `${n} new` : "";
  }

  async function countNew() {
    const token = getToken();
    if (!token) return;
    try {
      const alerts = (await listAlerts(token)).filter((a) => a.status === "active").slice(0, BADGE_ALERTS);
      const feeds = await Promise.all(alerts.map((a) => alertMatches(a.id, token, { limit: MATCHES_SHOWN })));
      const fresh = feeds.reduce((n, f, i) => n + f.matches.filter((m) => m.kind === "match" && m.seq > (recall(SEEN_KEY, alerts[i].id) ?? 0)).length, 0);
      if (!ui.view.open) drawBadge(fresh);
    } catch {
      // The count is a hint; My alerts says what went wrong when opened.
    }
  }

  function markSeen(alertId, matches) {
    if (matches.length) remember(SEEN_KEY, alertId, Math.max(recall(SEEN_KEY, alertId) ?? 0, ...matches.map((m) => m.seq)));
  }

  countNew();

  return {
    /** Show the Alert me actions for the answer on screen: prominent when it found nothing. */
    offer(total) {
      ui.alertMe.hidden = total === null || total === 0;
      ui.note.textContent = "";
    },
    /** Return the prominent Alert me button of the no-trips message. */
    prominentButton() {
      return h(
        "button",
        { type: "button", class: "primary-button", "aria-haspopup": "dialog", onclick: openAlertDialog },
        "Alert me when a trip is published",
      );
    },
  };
}

// -- words --------------------------------------------------------------------------------------------------------

function namesOf(alert) {
  return recall(NAMES_KEY, alert.id) ?? { from: coordinates(...alert.from), to: coordinates(...alert.to) };
}

function dayRange(alert) {
  if (alert.date_from === alert.date_to) return longDate(alert.date_from);
  return `${longDate(alert.date_from, { year: false })} to ${longDate(alert.date_to)}`;
}

function searchFilters(f) {
  const parts = [count(f.seats ?? 1, "seat"), `pick-up within ${f.from_radius_km} km, drop-off within ${f.to_radius_km} km`];
  if (f.time_from || f.time_to) parts.push(`leaving ${f.time_from ?? "00:00"}–${f.time_to ?? "23:59"}`);
  if (f.max_price !== null && f.max_price !== undefined) parts.push(`at most ${f.max_price} a seat`);
  const options = Array.isArray(f.options) ? f.options : f.options ? String(f.options).split(",") : [];
  parts.push(...options.map(optionLabel));
  if (f.min_rating !== null && f.min_rating !== undefined) parts.push(`driver rated ${f.min_rating}+`);
  return parts.join(" · ");
}

function pointName(point) {
  return point.place?.name ? `near ${point.place.name}` : coordinates(point.lat, point.lon);
}

// -- what this browser keeps --------------------------------------------------------------------------------------

function recall(key, id) {
  try {
    return JSON.parse(localStorage.getItem(key) ?? "{}")[id] ?? null;
  } catch {
    return null;
  }
}

function remember(key, id, value) {
  try {
    const all = JSON.parse(localStorage.getItem(key) ?? "{}");
    all[id] = value;
    localStorage.setItem(key, JSON.stringify(all));
  } catch {
    // storage blocked or full: names fall back to coordinates, and every match shows as new
  }
}

function forget(key, id) {
  try {
    const all = JSON.parse(localStorage.getItem(key) ?? "{}");
    delete all[id];
    localStorage.setItem(key, JSON.stringify(all));
  } catch {
    // nothing kept
  }
}
