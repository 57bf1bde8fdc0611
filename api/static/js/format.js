// How values from the API read on the page. Times stay in the trip's own local time, as the API gives them.

const LOCALE = "en-GB";

const OPTION_LABELS = {
  instant_booking: "Instant booking",
  pets: "Pets allowed",
  smoking: "Smoking allowed",
  women_only: "Women only",
  max_two_back: "Max. 2 in the back",
};

const TIME_OF_DAY_LABELS = { night: "Night", morning: "Morning", afternoon: "Afternoon", evening: "Evening" };

/** Return the label of an option name ("pets" -> "Pets allowed"). */
export function optionLabel(name) {
  return OPTION_LABELS[name] ?? name.replaceAll("_", " ");
}

export const OPTION_NAMES = Object.keys(OPTION_LABELS);

/** Return the label of a time-of-day key ("morning" -> "Morning"). */
export function timeOfDayLabel(key) {
  return TIME_OF_DAY_LABELS[key] ?? key;
}

/** Return "HH:MM" of an ISO 8601 time with offset, in that offset (the trip's local time). */
export function clockTime(iso) {
  return iso.slice(11, 16);
}

/** Return how many calendar days (in local time) the second time is after the first. */
export function daysAfter(isoA, isoB) {
  return Math.round((Date.UTC(...ymd(isoB.slice(0, 10))) - Date.UTC(...ymd(isoA.slice(0, 10)))) / 86400000);
}

/** Return a duration between two ISO times: "45 min", "2 h 05". */
export function duration(isoA, isoB) {
  const minutes = Math.max(0, Math.round((Date.parse(isoB) - Date.parse(isoA)) / 60000));
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")}`;
}

/**
 * Return a price with its currency: "£4.00", "£4.50", "RUB 3,280". Whole amounts of 100 or more, and with
 * short (axis labels) every whole amount, go without decimals.
 */
export function money(amount, currency, { short = false } = {}) {
  const digits = Number.isInteger(amount) && (short || amount >= 100) ? 0 : 2;
  try {
    return new Intl.NumberFormat(LOCALE, { style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: 2 }).format(amount);
  } catch {
    return `${amount.toFixed(digits)} ${currency}`;
  }
}

/** Return a distance: "350 m", "1.2 km", "25 km". */
export function distance(km) {
  if (km < 1) return `${Math.round(km * 1000 / 10) * 10} m`;
  if (km < 10) return `${km.toFixed(1)} km`;
  return `${Math.round(km)} km`;
}

/** Return a date the way people say it: "Sun 13 Dec 2026" (or "Sunday 13 December 2026" with long; "13 Dec 2026" with weekdayless). */
export function longDate(isoDate, { long = false, year = true, weekdayless = false } = {}) {
  const options = { day: "numeric", month: long ? "long" : "short", timeZone: "UTC" };
  if (!weekdayless) options.weekday = long ? "long" : "short";
  if (year) options.year = "numeric";
  return new Intl.DateTimeFormat(LOCALE, options).format(new Date(Date.UTC(...ymd(isoDate))));
}

/** Return a day in a strip of days: "Sun 13". */
export function shortDay(isoDate) {
  return new Intl.DateTimeFormat(LOCALE, { weekday: "short", day: "numeric", timeZone: "UTC" }).format(new Date(Date.UTC(...ymd(isoDate))));
}

/** Return tomorrow's date in the browser's time zone, as YYYY-MM-DD. */
export function tomorrow(now = new Date()) {
  const next = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
  return `${next.getFullYear()}-${String(next.getMonth() + 1).padStart(2, "0")}-${String(next.getDate()).padStart(2, "0")}`;
}

let regionNames = null;

/** Return a country's name from its ISO code ("GB" -> "United Kingdom"), or the code itself. */
export function countryName(code) {
  if (!code) return "";
  try {
    regionNames ??= new Intl.DisplayNames([LOCALE], { type: "region" });
    return regionNames.of(code) ?? code;
  } catch {
    return code;
  }
}

/** Return "1 trip" / "3 trips". */
export function count(n, one, many = `${one}s`) {
  return `${n.toLocaleString(LOCALE)} ${n === 1 ? one : many}`;
}

/** Return coordinates the way maps print them: "51.51° N, 0.13° W". */
export function coordinates(lat, lon) {
  return `${Math.abs(lat).toFixed(2)}° ${lat >= 0 ? "N" : "S"}, ${Math.abs(lon).toFixed(2)}° ${lon >= 0 ? "E" : "W"}`;
}

function ymd(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return [y, m - 1, d];
}
