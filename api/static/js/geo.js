// Geometry of the map: Web Mercator in degree units, great-circle distances and circles, the outline file's rings.

const RAD = Math.PI / 180;
export const EARTH_RADIUS_KM = 6371.0088; // the engine's radius, so circles match its matching rules
const MAX_LAT = 85;

/** Return [x, y] of a point in Web Mercator, in degrees (x = longitude; y grows southwards, as SVG's does). */
export function project(lon, lat) {
  const phi = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * RAD;
  return [lon, -Math.log(Math.tan(Math.PI / 4 + phi / 2)) / RAD];
}

/** Return [lon, lat] of a projected point. */
export function unproject(x, y) {
  return [x, (2 * Math.atan(Math.exp(-y * RAD)) - Math.PI / 2) / RAD];
}

/** Return the great-circle distance in km between two points. */
export function haversineKm(lat1, lon1, lat2, lon2) {
  const dLat = (lat2 - lat1) * RAD;
  const dLon = (lon2 - lon1) * RAD;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** Return [lon, lat] of the points at radiusKm around a centre: the search radius as the engine measures it. */
export function circle(lat, lon, radiusKm, steps = 72) {
  const delta = radiusKm / EARTH_RADIUS_KM;
  const phi1 = lat * RAD;
  const lambda1 = lon * RAD;
  const points = [];
  for (let i = 0; i < steps; i++) {
    const bearing = (2 * Math.PI * i) / steps;
    const phi2 = Math.asin(Math.sin(phi1) * Math.cos(delta) + Math.cos(phi1) * Math.sin(delta) * Math.cos(bearing));
    const lambda2 = lambda1 + Math.atan2(Math.sin(bearing) * Math.sin(delta) * Math.cos(phi1), Math.cos(delta) - Math.sin(phi1) * Math.sin(phi2));
    points.push([lambda2 / RAD, phi2 / RAD]);
  }
  return points;
}

/** Return the rings of the outline file as arrays of [lon, lat] (see static/map/README.md for its encoding). */
export function decodeRings(encoded, quantum) {
  const ring = [];
  let lon = 0;
  let lat = 0;
  for (let i = 0; i < encoded.length; i += 2) {
    lon += encoded[i];
    lat += encoded[i + 1];
    ring.push([lon / quantum, lat / quantum]);
  }
  return ring;
}

/** Return an SVG path of lon/lat lines (closed when ring is true), projected, with a fixed number of decimals. */
export function pathOf(lines, { ring = false, decimals = 4 } = {}) {
  const parts = [];
  for (const line of lines) {
    line.forEach(([lon, lat], i) => {
      const [x, y] = project(lon, lat);
      parts.push(`${i ? "L" : "M"}${x.toFixed(decimals)} ${y.toFixed(decimals)}`);
    });
    if (ring && line.length) parts.push("Z");
  }
  return parts.join("");
}

/** Return the index of the vertex of a [lon, lat] line closest to a point, searching from index start on. */
export function nearestVertex(line, lat, lon, start = 0) {
  let best = start;
  let bestKm = Infinity;
  for (let i = start; i < line.length; i++) {
    const km = haversineKm(lat, lon, line[i][1], line[i][0]);
    if (km < bestKm) {
      bestKm = km;
      best = i;
    }
  }
  return best;
}

/** Return a number of 1, 2 or 5 times a power of ten near value (steps of grids and scale bars). */
export function niceStep(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  const unit = value / power;
  return (unit < 1.5 ? 1 : unit < 3.5 ? 2 : unit < 7.5 ? 5 : 10) * power;
}
