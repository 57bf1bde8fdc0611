// The API calls the page makes (search, places, alerts), and what their errors mean to a person.

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

/** Return the caller's alerts (GET /v1/alerts), newest first. */
export async function listAlerts(token, { signal } = {}) {
  const response = await request("v1/alerts", signal, { token });
  return (await response.json()).alerts;
}

/** Save an alert (POST /v1/alerts) and return it as the API stored it. */
export async function createAlert(fields, token) {
  const response = await request("v1/alerts", null, { token, method: "POST", body: fields });
  return response.json();
}

/** Delete one of the caller's alerts (DELETE /v1/alerts/{id}). */
export async function deleteAlert(id, token) {
  await request(`v1/alerts/${encodeURIComponent(id)}`, null, { token, method: "DELETE" });
}

/** Return the newest page of an alert's feed: {matches, next_cursor}. */
export async function alertMatches(id, token, { limit = 10, signal } = {}) {
  const response = await request(`v1/alerts/${encodeURIComponent(id)}/matches?${new URLSearchParams({ limit: String(limit) })}`, signal, { token });
  return response.json();
}

/**
 * Read the Server-Sent Events of the caller's alerts (GET /v1/alerts/stream) until signal aborts, calling
 * onEvent({id, event, data}) for each; return the last event's id when the server ends the stream. EventSource
 * cannot send a bearer token, so this reads the stream with fetch.
 */
export async function streamAlerts(token, onEvent, { signal, lastEventId = null, onOpen = null } = {}) {
  const headers = lastEventId ? { "Last-Event-ID": String(lastEventId) } : {};
  const response = await request("v1/alerts/stream", signal, { token, headers, accept: "text/event-stream" });
  onOpen?.();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return lastEventId;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: null, event: "message", data: "" };
      for (const line of block.split("\n")) {
        const [key, ...rest] = line.split(":");
        const text = rest.join(":").replace(/^ /, "");
        if (key === "id") event.id = text;
        else if (key === "event") event.event = text;
        else if (key === "data") event.data += text;
      }
      if (event.id === null) continue; // the retry line, or a keep-alive comment
      lastEventId = event.id;
      onEvent({ ...event, data: JSON.parse(event.data) });
    }
  }
}

async function request(url, signal, { token = null, method = "GET", body = undefined, headers = {}, accept = "application/json" } = {}) {
  const init = { signal, method, headers: { Accept: accept, ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
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
