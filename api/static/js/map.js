// The route map: an SVG in Web Mercator over country outlines shipped with the page, with no tiles and no network.
//
// Everything is drawn once in projected degrees; zooming and panning only change the viewBox. Strokes keep
// their width in pixels (vector-effect), and the few things sized in pixels (markers, labels, the grid) are
// updated when the view changes.

import { h, icon, s } from "./dom.js";
import { circle, decodeRings, haversineKm, nearestVertex, niceStep, pathOf, project, unproject } from "./geo.js";

const EUROPE = [
  [-11, 35],
  [42, 62],
];
const MIN_WIDTH = 0.05; // degrees of longitude across the view: about 3.5 km in Europe
const MAX_WIDTH = 360;
const PAD = 0.12; // share of the view left around what a fit shows
const INSET = { left: 24, right: 64, edge: 32 }; // pixels a fit leaves free: the zoom buttons are on the right
const MARKER_PX = { place: 7, pickup: 5, dropoff: 5, stop: 3.5 };
const LABEL_PX = 13;
const STOP_LABEL_PX = 12;
const SAME_PLACE_KM = 2;

export class RouteMap {
  /** Build the map inside container; onHover(tripId | null) tells when the pointer is over a route. */
  constructor(container, { onHover = () => {} } = {}) {
    this.container = container;
    this.onHover = onHover;
    this.routes = new Map();
    this.places = [];
    this.bounds = null;
    this.view = null;
    this.layers = {
      land: s("g", { class: "map-land" }),
      graticule: s("g", { class: "map-graticule" }),
      radii: s("g", { class: "map-radii" }),
      routes: s("g", { class: "map-routes" }),
      places: s("g", { class: "map-places" }),
    };
    this.svg = s(
      "svg",
      { class: "map-svg", role: "img", "aria-labelledby": "map-caption", preserveAspectRatio: "xMidYMid meet" },
      s("rect", { class: "map-sea", x: -720, y: -720, width: 1440, height: 1440 }),
      Object.values(this.layers),
    );
    this.scaleBar = h("span", { class: "map-scale-bar" });
    this.scaleLabel = h("span", { class: "map-scale-label" });
    this.notice = h("p", { class: "map-notice", hidden: true });
    const button = (name, label, action) => h("button", { type: "button", class: "map-button", "aria-label": label, title: label, onclick: action }, icon(name));
    container.replaceChildren(
      this.svg,
      h(
        "div",
        { class: "map-controls", role: "group", "aria-label": "Map view" },
        button("plus", "Zoom in", () => this.zoom(1 / 1.6)),
        button("minus", "Zoom out", () => this.zoom(1.6)),
        button("fit", "Show the whole search", () => this.fit()),
      ),
      h("div", { class: "map-scale", "aria-hidden": "true" }, this.scaleBar, this.scaleLabel),
      this.notice,
    );
    this.listen();
    new ResizeObserver(() => this.resize()).observe(container);
    this.fitBounds(boundsOf(EUROPE));
  }

  /** Load the country outlines (static/map/countries.json) and draw them. */
  async loadOutlines(url) {
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${response.status}`);
      const data = await response.json();
      const paths = data.countries.map((country) =>
        s("path", { d: pathOf(country.rings.map((ring) => decodeRings(ring, data.quantum)), { ring: true, decimals: 3 }) }, s("title", {}, country.name)),
      );
      this.layers.land.replaceChildren(...paths);
    } catch {
      this.notice.textContent = "The country outlines could not be loaded; the routes are drawn on the grid alone.";
      this.notice.hidden = false;
    }
  }

  /** Draw a search: its two places with their radii, and the routes of its hits. Fits the view to it. */
  show({ from, to, fromRadiusKm, toRadiusKm, hits = [] }) {
    this.routes.clear();
    this.places = [from, to].filter((place) => place && Math.abs(place.lat) <= 90 && Math.abs(place.lon) <= 180);
    this.layers.routes.replaceChildren();
    this.layers.radii.replaceChildren();
    this.layers.places.replaceChildren();
    const points = [];
    for (const [place, radiusKm, kind] of [
      [from, fromRadiusKm, "from"],
      [to, toRadiusKm, "to"],
    ]) {
      if (!place || !(Math.abs(place.lat) <= 90 && Math.abs(place.lon) <= 180)) continue; // NaN fails too
      const ring = circle(place.lat, place.lon, radiusKm);
      points.push(...ring);
      this.layers.radii.append(s("path", { class: `map-radius map-radius-${kind}`, d: pathOf([ring], { ring: true }) }));
      const [x, y] = project(place.lon, place.lat);
      this.layers.places.append(
        s("g", { class: `map-place map-place-${kind}` }, s("circle", { cx: x, cy: y, "data-px": MARKER_PX.place }), label(x, y, place.name, LABEL_PX, { above: true })),
      );
    }
    this.addHits(hits, { refit: false });
    for (const route of this.routes.values()) points.push(...route.ride);
    this.bounds = points.length ? boundsOf(points) : boundsOf(EUROPE);
    this.fit();
  }

  /** Draw more hits (the next page) without moving the view. */
  addHits(hits, { refit = false } = {}) {
    for (const hit of hits) {
      if (this.routes.has(hit.id)) continue;
      const line = routeLine(hit.trip);
      const start = nearestVertex(line, hit.pickup.lat, hit.pickup.lon);
      const end = nearestVertex(line, hit.dropoff.lat, hit.dropoff.lon, start);
      const ride = [[hit.pickup.lon, hit.pickup.lat], ...line.slice(start + 1, end), [hit.dropoff.lon, hit.dropoff.lat]];
      const [px, py] = project(hit.pickup.lon, hit.pickup.lat);
      const [dx, dy] = project(hit.dropoff.lon, hit.dropoff.lat);
      const size = MARKER_PX.dropoff;
      const group = s(
        "g",
        { class: "map-route", "data-trip-id": hit.id },
        s("path", { class: "map-route-hit", d: pathOf([line]) }),
        s("path", { class: "map-route-line", d: pathOf([line]) }),
        s("path", { class: "map-route-ride", d: pathOf([ride]) }),
        hit.trip.stops.map((stop) => {
          const [sx, sy] = project(stop.lon, stop.lat);
          // A stop at a searched place already has the place's label.
          const named = !this.places.some((place) => haversineKm(place.lat, place.lon, stop.lat, stop.lon) < SAME_PLACE_KM);
          return s("g", { class: "map-stop" }, s("circle", { cx: sx, cy: sy, "data-px": MARKER_PX.stop }), named ? label(sx, sy, stop.name, STOP_LABEL_PX) : null);
        }),
        s("circle", { class: "map-pickup", cx: px, cy: py, "data-px": MARKER_PX.pickup }),
        s("rect", { class: "map-dropoff", "data-x": dx, "data-y": dy, "data-px": size }),
      );
      group.addEventListener("pointerenter", () => this.onHover(hit.id));
      group.addEventListener("pointerleave", () => this.onHover(null));
      this.layers.routes.append(group);
      this.routes.set(hit.id, { group, ride });
    }
    if (refit) this.fit();
    this.updatePixelSizes();
  }

  /** Emphasise one route (null: none), drawing it above the others. */
  highlight(tripId) {
    for (const [id, route] of this.routes) route.group.classList.toggle("is-active", id === tripId);
    const route = this.routes.get(tripId);
    this.svg.classList.toggle("has-active", Boolean(route));
    if (route) this.layers.routes.append(route.group);
  }

  /** Show the whole of the last search. */
  fit() {
    this.fitBounds(this.bounds ?? boundsOf(EUROPE));
  }

  fitBounds([minX, minY, maxX, maxY]) {
    const { width: pxWidth, height: pxHeight } = this.container.getBoundingClientRect();
    const width = Math.max(maxX - minX, MIN_WIDTH);
    const height = Math.max(maxY - minY, MIN_WIDTH / 2);
    if (!(pxWidth > INSET.left + INSET.right && pxHeight > 2 * INSET.edge)) {
      this.setView((minX + maxX) / 2, (minY + maxY) / 2, Math.max(width, height * this.aspect()) * (1 + 2 * PAD));
      return;
    }
    // Units per pixel that fit the bounds inside the insets, which keep them clear of the buttons and the scale.
    const upp = Math.max(width / (pxWidth - INSET.left - INSET.right), height / (pxHeight - 2 * INSET.edge)) * (1 + PAD);
    const cx = (minX + maxX) / 2 + ((INSET.right - INSET.left) / 2) * upp;
    this.setView(cx, (minY + maxY) / 2, upp * pxWidth);
  }

  /** Zoom by factor (below 1 zooms in) around a point in SVG units (the centre by default). */
  zoom(factor, around = null) {
    const { cx, cy, w } = this.view;
    const width = clamp(w * factor, MIN_WIDTH, MAX_WIDTH);
    const [ax, ay] = around ?? [cx, cy];
    const k = width / w;
    this.setView(ax + (cx - ax) * k, ay + (cy - ay) * k, width);
  }

  aspect() {
    const { width, height } = this.container.getBoundingClientRect();
    return width > 0 && height > 0 ? width / height : 1.5;
  }

  setView(cx, cy, w) {
    w = clamp(w, MIN_WIDTH, MAX_WIDTH);
    const hgt = w / this.aspect();
    this.view = { cx, cy, w, h: hgt };
    this.svg.setAttribute("viewBox", `${cx - w / 2} ${cy - hgt / 2} ${w} ${hgt}`);
    this.drawGraticule();
    this.updatePixelSizes();
    this.updateScaleBar();
  }

  resize() {
    if (this.view && this.container.clientWidth > 0) this.setView(this.view.cx, this.view.cy, this.view.w);
  }

  unitsPerPixel() {
    return this.view.w / Math.max(1, this.container.clientWidth);
  }

  updatePixelSizes() {
    if (!this.view) return;
    const upp = this.unitsPerPixel();
    for (const marker of this.svg.querySelectorAll("circle[data-px], rect[data-px]")) {
      const size = Number(marker.dataset.px) * upp;
      if (marker.tagName === "rect") {
        marker.setAttribute("x", Number(marker.dataset.x) - size);
        marker.setAttribute("y", Number(marker.dataset.y) - size);
        marker.setAttribute("width", 2 * size);
        marker.setAttribute("height", 2 * size);
      } else {
        marker.setAttribute("r", size);
      }
    }
    for (const text of this.svg.querySelectorAll("text[data-x]")) {
      const px = Number(text.dataset.px);
      const above = text.dataset.above === "true";
      text.setAttribute("x", Number(text.dataset.x) + (above ? 0 : 0.8 * px) * upp);
      text.setAttribute("y", Number(text.dataset.y) + (above ? -px : 0.3 * px) * upp);
      text.setAttribute("font-size", px * upp);
      text.setAttribute("stroke-width", 0.27 * px * upp);
    }
  }

  drawGraticule() {
    const { cx, cy, w, h: hgt } = this.view;
    const [west, north] = unproject(cx - w / 2, cy - hgt / 2);
    const [east, south] = unproject(cx + w / 2, cy + hgt / 2);
    const step = niceStep(Math.max(east - west, north - south) / 6);
    const lines = [];
    for (let lon = Math.floor(west / step) * step; lon <= east + step; lon += step) {
      lines.push([
        [lon, Math.max(-85, south - step)],
        [lon, Math.min(85, north + step)],
      ]);
    }
    for (let lat = Math.max(-85, Math.floor(south / step) * step); lat <= Math.min(85, north + step); lat += step) {
      lines.push([
        [west - step, lat],
        [east + step, lat],
      ]);
    }
    this.layers.graticule.replaceChildren(s("path", { d: pathOf(lines.slice(0, 400)) }));
  }

  updateScaleBar() {
    const latitude = unproject(this.view.cx, this.view.cy)[1];
    const kmPerPx = this.unitsPerPixel() * 111.32 * Math.cos((latitude * Math.PI) / 180);
    const km = niceStep(kmPerPx * 90);
    this.scaleBar.style.width = `${Math.round(km / kmPerPx)}px`;
    this.scaleLabel.textContent = km >= 1 ? `${km} km` : `${Math.round(km * 1000)} m`;
  }

  listen() {
    let drag = null;
    const toSvg = (event) => {
      const rect = this.svg.getBoundingClientRect();
      const { cx, cy, w, h: hgt } = this.view;
      return [cx - w / 2 + ((event.clientX - rect.left) / rect.width) * w, cy - hgt / 2 + ((event.clientY - rect.top) / rect.height) * hgt];
    };
    this.svg.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "mouse" || event.button !== 0) return; // touch scrolls the page; the buttons zoom
      drag = { x: event.clientX, y: event.clientY, view: { ...this.view } };
      this.svg.setPointerCapture(event.pointerId);
      this.svg.classList.add("is-dragging");
    });
    this.svg.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const upp = drag.view.w / Math.max(1, this.svg.getBoundingClientRect().width);
      this.setView(drag.view.cx - (event.clientX - drag.x) * upp, drag.view.cy - (event.clientY - drag.y) * upp, drag.view.w);
    });
    const stop = () => {
      drag = null;
      this.svg.classList.remove("is-dragging");
    };
    this.svg.addEventListener("pointerup", stop);
    this.svg.addEventListener("pointercancel", stop);
    this.svg.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        this.zoom(Math.exp(Math.max(-1, Math.min(1, event.deltaY / 300))), toSvg(event));
      },
      { passive: false },
    );
  }
}

/** Return the [lon, lat] line a trip is drawn with: its route, or straight lines through its stops. */
export function routeLine(trip) {
  const coordinates = trip.route?.coordinates;
  if (Array.isArray(coordinates) && coordinates.length >= 2) return coordinates;
  return trip.stops.map((stop) => [stop.lon, stop.lat]);
}

/** Return the stop of a trip nearest to a point, with its distance in km. */
export function nearestStop(trip, lat, lon) {
  let best = null;
  for (const stop of trip.stops) {
    const km = haversineKm(lat, lon, stop.lat, stop.lon);
    if (!best || km < best.km) best = { stop, km };
  }
  return best;
}

// A label beside (or centred above) a point, sized in pixels: font and offset follow the zoom in updatePixelSizes.
function label(x, y, text, px, { above = false } = {}) {
  return s("text", { "data-x": x, "data-y": y, "data-px": px, "data-above": String(above), "text-anchor": above ? "middle" : "start" }, text);
}

function boundsOf(lonLats) {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const [lon, lat] of lonLats) {
    const [x, y] = project(lon, lat);
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
    maxX = Math.max(maxX, x);
    maxY = Math.max(maxY, y);
  }
  return [minX, minY, maxX, maxY];
}

function clamp(value, low, high) {
  return Math.max(low, Math.min(high, value));
}
