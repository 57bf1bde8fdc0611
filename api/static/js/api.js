// The two API calls the page makes, and what their errors mean to a person.

/** An answer that was not a success: an RFC 9457 problem from the API, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, { title = "", detail = "", code = "", field = null } = {}, retryAfter = null, url = null) {
    super(detail || title || `the server answered ${status}`);
    this.url = url;
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

/** Return the URL of a search, relative to the page (so the page works under any path prefix). */
export function searchUrl(params) {
  return `v1/search?${params}`;
}

/** Return {data, url, engineMs} of GET /v1/search, or throw ApiError. */
export async function searchTrips(params, { signal } = {}) {
  const url = searchUrl(params);
  const response = await request(url, signal);
  const timing = /engine;dur=([\d.]+)/.exec(response.headers.get("Server-Timing") ?? "");
  return { data: await response.json(), url, engineMs: timing ? Number(timing[1]) : null };
}

/** Return the places whose name starts with what was typed: [{name, country, lat, lon, population}]. */
export async function findPlaces(q, { limit = 8, signal } = {}) {
  const response = await request(`v1/places?${new URLSearchParams({ q, limit: String(limit) })}`, signal);
  const data = await response.json();
  // The API wraps the list ({"places": [...]}); a bare list is read too.
  return Array.isArray(data) ? data : data.places ?? [];
}

async function request(url, signal) {
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "No answer", detail: "the server could not be reached" }, null, url);
  }
  if (!response.ok) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      problem = { title: response.statusText };
    }
    const retryAfter = Number(response.headers.get("Retry-After")) || null;
    throw new ApiError(response.status, problem, retryAfter, url);
  }
  return response;
}
