// A place box with suggestions from /v1/places: the WAI-ARIA combobox pattern (list autocomplete, manual selection).
//
// Typing asks the API after a pause (debounced; an older request is cancelled), Arrow keys move through the
// list, Enter or a click picks, Escape closes the list (and clears the box when it is already closed).

import { ApiError } from "./api.js";
import { h, srOnly } from "./dom.js";
import { coordinates, countryName } from "./format.js";

const DEBOUNCE_MS = 150;
const COORDINATES = /^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$/;

export class PlaceCombobox {
  /**
   * @param {object} parts - input, listbox, hint and error elements, and
   *   findPlaces(q, {signal}) returning places, onPick(place) called when the user picks one.
   */
  constructor({ input, listbox, hint, error, findPlaces, onPick = () => {} }) {
    Object.assign(this, { input, listbox, hint, error, findPlaces, onPick });
    this.place = null;
    this.options = [];
    this.active = -1;
    this.timer = null;
    this.controller = null;
    this.cache = new Map();
    input.addEventListener("input", () => this.onInput());
    input.addEventListener("keydown", (event) => this.onKeyDown(event));
    input.addEventListener("blur", () => this.close());
    input.addEventListener("focus", () => input.select());
    // mousedown, not click: picking must happen before the input loses focus.
    listbox.addEventListener("mousedown", (event) => {
      const option = event.target.closest("[role=option]");
      event.preventDefault();
      if (option && option.getAttribute("aria-disabled") !== "true") this.pick(Number(option.dataset.index));
    });
  }

  /** Show a place (or nothing) in the box, as if it had been picked. */
  set(place) {
    this.place = place;
    this.input.value = place ? place.name : "";
    this.showHint();
    this.setError(null);
  }

  /** Return the place picked, or the best match of what was typed (null if there is none). */
  async resolve() {
    if (this.place) return this.place;
    const text = this.input.value.trim();
    if (!text) return null;
    const numbers = COORDINATES.exec(text);
    if (numbers) return { name: text, lat: Number(numbers[1]), lon: Number(numbers[2]) };
    const places = await this.lookup(text);
    if (!places.length) return null;
    this.set(places[0]);
    return places[0];
  }

  /** Show an error under the box (null removes it). */
  setError(message) {
    this.error.hidden = !message;
    this.error.textContent = message ?? "";
    if (message) this.input.setAttribute("aria-invalid", "true");
    else this.input.removeAttribute("aria-invalid");
  }

  showHint() {
    const place = this.place;
    this.hint.textContent = place && Number.isFinite(place.lat) ? [countryName(place.country), coordinates(place.lat, place.lon)].filter(Boolean).join(" · ") : "";
  }

  onInput() {
    this.place = null;
    this.showHint();
    this.setError(null);
    clearTimeout(this.timer);
    const text = this.input.value.trim();
    if (!text || COORDINATES.test(text)) {
      this.controller?.abort();
      this.close();
      return;
    }
    this.timer = setTimeout(() => this.suggest(text), DEBOUNCE_MS);
  }

  async suggest(text) {
    let places;
    try {
      places = await this.lookup(text);
    } catch (error) {
      if (error.name === "AbortError") return;
      this.render([], error instanceof ApiError && error.status ? `Places could not be loaded: ${error.detail || error.title}` : "Places could not be loaded: no answer from the server");
      return;
    }
    if (this.input.value.trim() !== text || document.activeElement !== this.input) return;
    this.render(places, places.length ? null : `No city starts with “${text}”`);
  }

  async lookup(text) {
    const key = text.toLowerCase();
    if (this.cache.has(key)) return this.cache.get(key);
    this.controller?.abort();
    this.controller = new AbortController();
    const places = await this.findPlaces(text, { signal: this.controller.signal });
    this.cache.set(key, places);
    return places;
  }

  render(places, emptyMessage) {
    this.options = places;
    this.active = -1;
    const id = this.listbox.id;
    const items = places.map((place, index) =>
      h(
        "li",
        { role: "option", id: `${id}-${index}`, "aria-selected": "false", dataset: { index: String(index) }, class: "option" },
        h("span", { class: "option-name" }, place.name),
        srOnly(", "),
        h("span", { class: "option-country" }, countryName(place.country)),
      ),
    );
    if (emptyMessage) items.push(h("li", { role: "option", "aria-disabled": "true", class: "option option-empty" }, emptyMessage));
    this.listbox.replaceChildren(...items);
    this.listbox.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.input.removeAttribute("aria-activedescendant");
  }

  close() {
    clearTimeout(this.timer);
    this.listbox.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
    this.active = -1;
  }

  isOpen() {
    return !this.listbox.hidden;
  }

  move(step) {
    if (!this.options.length) return;
    const count = this.options.length;
    this.active = this.active < 0 ? (step > 0 ? 0 : count - 1) : (this.active + step + count) % count;
    for (const option of this.listbox.querySelectorAll("[role=option][data-index]")) {
      const selected = Number(option.dataset.index) === this.active;
      option.setAttribute("aria-selected", String(selected));
      if (selected) {
        this.input.setAttribute("aria-activedescendant", option.id);
        option.scrollIntoView({ block: "nearest" });
      }
    }
  }

  pick(index) {
    const place = this.options[index];
    if (!place) return;
    this.set(place);
    this.close();
    this.onPick(place);
  }

  onKeyDown(event) {
    switch (event.key) {
      case "ArrowDown":
      case "ArrowUp":
        event.preventDefault();
        if (!this.isOpen() && this.options.length) this.render(this.options, null);
        this.move(event.key === "ArrowDown" ? 1 : -1);
        break;
      case "Enter":
        if (this.isOpen() && this.active >= 0) {
          event.preventDefault();
          this.pick(this.active);
        } else {
          this.close();
        }
        break;
      case "Escape":
        if (this.isOpen()) {
          event.preventDefault();
          this.close();
        } else if (this.input.value) {
          event.preventDefault();
          this.input.value = "";
          this.onInput();
        }
        break;
      case "Tab":
        this.close();
        break;
      default:
    }
  }
}
