// A regular trip's weekly schedule in words: "Mon–Fri 07:45, Sat 09:00 · 4 Jan 2027 to 30 Jun 2027", and its exceptions.

import { longDate } from "./format.js";

const WEEKDAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
const DAY_LABELS = { MON: "Mon", TUE: "Tue", WED: "Wed", THU: "Thu", FRI: "Fri", SAT: "Sat", SUN: "Sun" };

/** Return "HH:MM" of a schedule time "HH:MM" or "HH:MM:SS". */
function hm(time) {
  return time.slice(0, 5);
}

/**
 * Return the weekly times in words: consecutive days at the same time join ("Mon–Fri 07:45"), days at one time
 * share it ("Mon, Wed 07:45, Sat 09:00"), in weekday order.
 */
export function weeklyTimes(times) {
  const runs = []; // [{from, to, time}] of consecutive weekdays with the same time
  for (const day of WEEKDAYS) {
    const time = times[day] ? hm(times[day]) : null;
    const last = runs[runs.length - 1];
    if (time && last && last.time === time && WEEKDAYS.indexOf(last.to) === WEEKDAYS.indexOf(day) - 1) last.to = day;
    else if (time) runs.push({ from: day, to: day, time });
  }
  const byTime = new Map(); // time -> labels of its runs, in the order the times first come
  for (const run of runs) {
    const span = WEEKDAYS.indexOf(run.to) - WEEKDAYS.indexOf(run.from);
    const label = span === 0 ? DAY_LABELS[run.from] : span === 1 ? `${DAY_LABELS[run.from]}, ${DAY_LABELS[run.to]}` : `${DAY_LABELS[run.from]}–${DAY_LABELS[run.to]}`;
    byTime.set(run.time, [...(byTime.get(run.time) ?? []), label]);
  }
  return [...byTime].map(([time, labels]) => `${labels.join(", ")} ${time}`).join(", ");
}

/** Return the schedule's one-line summary: "Mon–Fri 07:45, Sat 09:00 · 4 Jan 2027 to 30 Jun 2027". */
export function scheduleSummary(schedule) {
  return `${weeklyTimes(schedule.times)} · ${longDate(schedule.valid_from, { weekdayless: true })} to ${longDate(schedule.valid_to, { weekdayless: true })}`;
}

/** Return each exception in words, by date: "Fri 8 Jan: no trip", "Mon 11 Jan: at 08:15", "Tue 12 Jan: 1 seat left". */
export function exceptionLines(schedule) {
  return [...(schedule.exceptions ?? [])]
    .sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : 0))
    .map((exception) => {
      const day = longDate(exception.date, { year: false });
      if (exception.skip) return `${day}: no trip`;
      const parts = [];
      if (exception.time) parts.push(`at ${hm(exception.time)}`);
      if (exception.seats_available !== undefined && exception.seats_available !== null) {
        parts.push(`${exception.seats_available} ${exception.seats_available === 1 ? "seat" : "seats"} left`);
      }
      return `${day}: ${parts.join(", ")}`;
    });
}
