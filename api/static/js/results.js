// The result list: one card per hit, with the times and places of the pick-up and drop-off, price, seats,
// driver and options.

import { h, icon, srOnly } from "./dom.js";
import { clockTime, count, daysAfter, distance, duration, longDate, money, optionLabel, OPTION_NAMES } from "./format.js";
import { nearestStop } from "./map.js";
import { exceptionLines, scheduleSummary } from "./schedule.js";

const STOP_NAME_KM = 3; // a pick-up this close to a stop is named after the stop

/** Return the list item of one hit; from and to are the searched places ({name}). */
export function tripCard(hit, { from, to }) {
  const trip = hit.trip;
  const pickup = placeName(trip, hit.pickup, from);
  const dropoff = placeName(trip, hit.dropoff, to);
  const price = money(trip.price.amount, trip.price.currency);
  const plusDays = daysAfter(hit.pickup.time, hit.dropoff.time);
  const titleId = `trip-${cssId(hit.occurrence ? `${hit.id}-${hit.occurrence}` : hit.id)}-title`;
  const stops = trip.stops;
  return h(
    "li",
    { class: "trip-card", dataset: hit.occurrence ? { tripId: hit.id, occurrence: hit.occurrence } : { tripId: hit.id } },
    h(
      "article",
      { "aria-labelledby": titleId },
      h("h3", { class: "visually-hidden", id: titleId }, `${clockTime(hit.pickup.time)} ${pickup} to ${clockTime(hit.dropoff.time)} ${dropoff}, ${price}`),
      h(
        "div",
        { class: "trip-main" },
        h(
          "ol",
          { class: "timeline", "aria-label": "Pick-up and drop-off" },
          h(
            "li",
            { class: "timeline-stop timeline-pickup" },
            h("time", { class: "clock", datetime: hit.pickup.time }, clockTime(hit.pickup.time)),
            h(
              "div",
              { class: "timeline-place" },
              h("span", { class: "place-name" }, srOnly("Pick-up: "), pickup),
              h("span", { class: "walk" }, icon("walk"), `${distance(hit.pickup.distance_km)} from ${from.name}`),
            ),
          ),
          h("li", { class: "timeline-leg", "aria-label": `Ride: ${duration(hit.pickup.time, hit.dropoff.time)}` }, duration(hit.pickup.time, hit.dropoff.time)),
          h(
            "li",
            { class: "timeline-stop timeline-dropoff" },
            h(
              "time",
              { class: "clock", datetime: hit.dropoff.time },
              clockTime(hit.dropoff.time),
              plusDays > 0 ? h("sup", { class: "plus-days", title: `${count(plusDays, "day")} later` }, `+${plusDays}`) : null,
            ),
            h(
              "div",
              { class: "timeline-place" },
              h("span", { class: "place-name" }, srOnly("Drop-off: "), dropoff),
              h("span", { class: "walk" }, icon("walk"), `${distance(hit.dropoff.distance_km)} to ${to.name}`),
            ),
          ),
        ),
        h("p", { class: "price" }, h("strong", {}, price), h("span", { class: "per-seat" }, "per seat")),
      ),
      h(
        "p",
        { class: "trip-line" },
        `${stops[0].name} → ${stops[stops.length - 1].name}`,
        stops.length > 2 ? ` via ${stops.slice(1, -1).map((stop) => stop.name).join(", ")}` : "",
        ` · leaves ${clockTime(trip.departure_time)}`,
      ),
      h(
        "div",
        { class: "trip-meta" },
        rating(trip.driver),
        trip.driver?.verified ? h("span", { class: "meta verified" }, icon("verified"), "Verified driver") : null,
        h("span", { class: "meta seats" }, icon("seat"), `${count(trip.seats_available, "seat")} left`, srOnly(` of ${trip.seats_total}`)),
      ),
      options(trip.options),
      hit.occurrence && trip.schedule ? regular(hit.occurrence, trip.schedule) : null,
      h("a", { class: "trip-json", href: `v1/trips/${encodeURIComponent(trip.id)}` }, "Trip data (JSON)", srOnly(` for ${pickup} at ${clockTime(hit.pickup.time)}`)),
    ),
  );
}

// A regular trip's occurrence: which date this is, and the week's plan behind a disclosure.
function regular(occurrence, schedule) {
  const exceptions = exceptionLines(schedule);
  return h(
    "div",
    { class: "trip-regular" },
    h("p", { class: "occurrence" }, "Regular trip · this one on ", h("time", { datetime: occurrence }, longDate(occurrence))),
    h(
      "details",
      { class: "trip-schedule" },
      h("summary", {}, "Weekly schedule"),
      h("p", { class: "schedule-summary" }, scheduleSummary(schedule)),
      exceptions.length ? h("ul", { class: "schedule-exceptions", "aria-label": "Exceptions" }, exceptions.map((line) => h("li", {}, line))) : null,
      h("p", { class: "schedule-zone" }, `Times in ${schedule.timezone}`),
    ),
  );
}

function rating(driver) {
  if (driver?.rating === null || driver?.rating === undefined) return h("span", { class: "meta rating" }, "New driver, no rating yet");
  return h("span", { class: "meta rating" }, icon("star", "icon icon-star"), srOnly("Driver rating "), driver.rating.toFixed(1), srOnly(" out of 5"));
}

function options(values = {}) {
  const on = OPTION_NAMES.filter((name) => values[name]);
  if (!on.length) return null;
  return h("ul", { class: "trip-options", "aria-label": "Options" }, on.map((name) => h("li", { class: `chip chip-${name}` }, icon(name), optionLabel(name))));
}

// The name of a pick-up or drop-off: the stop it is at, or the city nearest to it (the API's place).
function placeName(trip, point, searched) {
  const nearest = nearestStop(trip, point.lat, point.lon);
  if (nearest && nearest.km <= STOP_NAME_KM) return nearest.stop.name;
  return `On the way, near ${point.place?.name ?? searched.name}`;
}

function cssId(id) {
  return String(id).replace(/[^A-Za-z0-9_-]/g, "_");
}
