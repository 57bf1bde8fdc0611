// Filters built from the facets of the last answer. Each shows how many trips it would leave; the API counts
// each facet without its own filter, so the other choices of a group stay visible once one is applied.

import { h, icon, srOnly } from "./dom.js";
import { count, longDate, money, optionLabel, OPTION_NAMES, shortDay, timeOfDayLabel } from "./format.js";

const RATINGS = [4.5, 4.0, 3.5, 3.0];
const MAX_BARS = 60; // more price bands than this are drawn as the API gives them, without the empty ones

/** Draw the filter groups into container; onChange(patch) is called with the fields of the state to change. */
export function renderFilters(container, facets, state, onChange) {
  const focusKey = container.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  container.replaceChildren(
    timeGroup(facets.time_of_day ?? [], facets.departure_hour ?? [], state, onChange),
    priceGroup(facets.price, state, onChange),
    optionsGroup(facets.options ?? {}, state, onChange),
    ratingGroup(facets.driver_rating ?? [], state, onChange),
  );
  // The groups are drawn anew after each answer: give the keyboard focus back to the control that had it.
  if (focusKey) container.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
}

/** Draw the neighbouring days with their counts; onJump(date) is called when one is chosen. */
export function renderDates(nav, dates, state, onJump) {
  nav.hidden = !dates?.length;
  if (!dates?.length) return;
  const focusKey = nav.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  nav.replaceChildren(
    h(
      "ul",
      { class: "dates-list" },
      dates.map(({ date, count: n }) => {
        const current = date === state.date;
        return h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: `date-button${current ? " is-current" : ""}${n ? "" : " is-empty"}`,
              "aria-current": current ? "date" : null,
              "aria-label": `${longDate(date, { long: true, year: false })}: ${count(n, "trip")}`,
              dataset: { key: `date:${date}`, date },
              onclick: () => (current ? null : onJump(date)),
            },
            h("span", { class: "date-day" }, shortDay(date)),
            h("span", { class: "date-count" }, count(n, "trip")),
          ),
        );
      }),
    ),
  );
  if (focusKey) nav.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
}

function timeGroup(buckets, hours, state, onChange) {
  const window = (bucket) => ({ timeFrom: bucket.from, timeTo: minuteBefore(bucket.to) });
  const selected = buckets.find((b) => b.from === state.timeFrom && minuteBefore(b.to) === state.timeTo);
  const custom = (state.timeFrom !== null || state.timeTo !== null) && !selected;
  const total = buckets.reduce((sum, b) => sum + b.count, 0);
  const choices = [
    radio("time", "any", "Any time", null, total, !selected && !custom, () => onChange({ timeFrom: null, timeTo: null })),
    ...buckets.map((b) =>
      radio("time", b.key, timeOfDayLabel(b.key), `${b.from}–${b.to}`, b.count, selected === b, () => onChange(window(b))),
    ),
  ];
  if (custom) choices.push(radio("time", "custom", "Your hours", `${state.timeFrom ?? "00:00"}–${state.timeTo ?? "23:59"}`, null, true, () => {}));
  return fieldset("facet-time", "Departure time", choices, hourChart(hours, selected ?? null));
}

// A small chart of departures per hour under the time choices: the same counts as the API's departure_hour facet.
function hourChart(hours, selected) {
  if (!hours.length) return null;
  const top = Math.max(1, ...hours.map((x) => x.count));
  const inWindow = (hour) => selected && hour * 60 >= minutes(selected.from) && hour * 60 < minutes(selected.to);
  const bars = hours.map(({ hour, count: n }) => {
    const bar = h("span", { class: `hour-bar${inWindow(hour) ? " is-selected" : ""}`, title: `${String(hour).padStart(2, "0")}:00: ${count(n, "trip")}` });
    bar.style.height = `${Math.round((n / top) * 100)}%`;
    return bar;
  });
  return h(
    "div",
    { class: "hour-chart", "aria-hidden": "true" },
    h("p", { class: "facet-help" }, "Departures by hour"),
    h("div", { class: "hour-bars" }, bars),
    h("div", { class: "hour-axis" }, h("span", {}, "0h"), h("span", {}, "6h"), h("span", {}, "12h"), h("span", {}, "18h"), h("span", {}, "24h")),
  );
}

function priceGroup(price, state, onChange) {
  const currencies = price?.currencies ?? [];
  if (!currencies.length) return fieldset("facet-price", "Price per seat", [h("p", { class: "muted" }, "No prices to compare.")]);
  const main = currencies[0];
  const fmt = (amount) => money(amount, main.currency, { short: true });
  const buckets = withEmptyBuckets(main.buckets, price.interval);
  const top = Math.max(1, ...buckets.map((b) => b.count));
  const bars = buckets.map((b) => {
    const pressed = state.maxPrice !== null && Math.abs(state.maxPrice - b.to) < 1e-9;
    const inRange = state.maxPrice === null || b.to <= state.maxPrice + 1e-9;
    const fill = h("span", { class: "bar-fill" });
    fill.style.height = `${Math.max(4, Math.round((b.count / top) * 100))}%`;
    return h(
      "button",
      {
        type: "button",
        class: `bar${inRange ? " is-in-range" : ""}`,
        "aria-pressed": String(pressed),
        "aria-label": `Up to ${fmt(b.to)}: ${count(b.count, "trip")} from ${fmt(b.from)} to ${fmt(b.to)}`,
        title: `${fmt(b.from)}–${fmt(b.to)}: ${count(b.count, "trip")}`,
        dataset: { key: `price:${b.to}` },
        onclick: () => onChange({ maxPrice: pressed ? null : b.to }),
      },
      h("span", { class: "bar-count" }, String(b.count)),
      h("span", { class: "bar-track" }, fill),
    );
  });
  const first = buckets[0];
  const last = buckets[buckets.length - 1];
  const summary =
    main.min === main.max
      ? `All ${money(main.min, main.currency)}`
      : `${money(main.min, main.currency)} to ${money(main.max, main.currency)}, average ${money(main.avg, main.currency)}`;
  return fieldset(
    "facet-price",
    "Price per seat",
    [
      h("p", { class: "facet-summary" }, summary),
      h("p", { class: "facet-help", id: "price-help" }, state.maxPrice === null ? "Choose a bar to see trips up to its price." : `Up to ${money(state.maxPrice, main.currency)}.`),
      h("div", { class: "histogram", role: "group", "aria-describedby": "price-help", "aria-label": `Highest price, in trips per ${fmt(price.interval)} band` }, bars),
      h("div", { class: "histogram-axis", "aria-hidden": "true" }, h("span", {}, fmt(first.from)), h("span", {}, fmt(last.to))),
      currencies.length > 1 ? h("p", { class: "facet-help" }, `Also ${currencies.slice(1).map((c) => count(c.count, `trip in ${c.currency}`, `trips in ${c.currency}`)).join(", ")}; the highest price applies to every currency.`) : null,
      state.maxPrice !== null
        ? h("button", { type: "button", class: "link-button", dataset: { key: "price:any" }, onclick: () => onChange({ maxPrice: null }) }, "Any price")
        : null,
    ],
  );
}

// The API lists only the price bands that have trips; a histogram shows the empty ones between them too.
function withEmptyBuckets(buckets, interval) {
  if (!buckets.length) return buckets;
  const first = Math.round(buckets[0].from / interval);
  const end = Math.round(buckets[buckets.length - 1].to / interval);
  if (end - first > MAX_BARS) return buckets;
  const counts = new Map(buckets.map((b) => [Math.round(b.from / interval), b.count]));
  const edge = (k) => Math.round(k * interval * 1e10) / 1e10; // as the API rounds its band edges
  const out = [];
  for (let k = first; k < end; k++) out.push({ from: edge(k), to: edge(k + 1), count: counts.get(k) ?? 0 });
  return out;
}

function optionsGroup(counts, state, onChange) {
  const boxes = OPTION_NAMES.map((name) => {
    const checked = state.options.includes(name);
    const n = counts[name] ?? 0;
    const id = `option-${name}`;
    return h(
      "div",
      { class: "choice" },
      h("input", {
        type: "checkbox",
        id,
        name: "options",
        value: name,
        checked,
        disabled: !checked && n === 0,
        dataset: { key: `options:${name}` },
        onchange: (event) => onChange({ options: event.target.checked ? [...state.options, name].sort() : state.options.filter((o) => o !== name) }),
      }),
      h("label", { for: id }, icon(name), h("span", { class: "choice-label" }, optionLabel(name)), countBadge(n)),
    );
  });
  return fieldset("facet-options", "Options", boxes);
}

function ratingGroup(buckets, state, onChange) {
  const any = buckets.find((b) => b.min === null);
  const choices = [radio("rating", "any", "Any rating", null, any?.count ?? 0, state.minRating === null, () => onChange({ minRating: null }))];
  for (const threshold of RATINGS) {
    const bucket = buckets.find((b) => b.min === threshold);
    if (!bucket) continue;
    choices.push(
      radio("rating", String(threshold), `${threshold.toFixed(1)} and up`, null, bucket.count, state.minRating === threshold, () => onChange({ minRating: threshold }), "star"),
    );
  }
  if (state.minRating !== null && !RATINGS.includes(state.minRating)) {
    choices.push(radio("rating", "custom", `${state.minRating} and up`, null, null, true, () => {}, "star"));
  }
  return fieldset("facet-rating", "Driver rating", choices);
}

function fieldset(id, legend, children, after = null) {
  return h("fieldset", { class: "facet", id }, h("legend", {}, legend), h("div", { class: "facet-choices" }, children), after);
}

function radio(group, value, label, detail, n, checked, onSelect, iconName = null) {
  const id = `${group}-${value}`;
  return h(
    "div",
    { class: "choice" },
    h("input", {
      type: "radio",
      id,
      name: group,
      value,
      checked,
      disabled: !checked && n === 0,
      dataset: { key: `${group}:${value}` },
      onchange: onSelect,
    }),
    h(
      "label",
      { for: id },
      iconName ? icon(iconName, "icon icon-star") : null,
      h("span", { class: "choice-label" }, label, detail ? h("span", { class: "choice-detail" }, ` ${detail}`) : null),
      n === null ? null : countBadge(n),
    ),
  );
}

function countBadge(n) {
  return h("span", { class: "count" }, srOnly(", "), String(n), srOnly(n === 1 ? " trip" : " trips"));
}

function minuteBefore(hhmm) {
  const m = minutes(hhmm) - 1;
  return `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
}

function minutes(hhmm) {
  const [hh, mm] = hhmm.split(":").map(Number);
  return hh * 60 + mm;
}
