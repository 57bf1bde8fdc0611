// The bearer token of the alerts (scope alerts:write; its sub owns the alerts), kept in this browser.
//
// The page itself is anonymous: a person pastes a token the first time alerts are used, and a platform that
// embeds the page hands its user's token over in the URL fragment (#alerts_token=JWT), which never reaches
// a server and is removed from the address bar at once. Either way the token is kept in localStorage under
// TOKEN_KEY until "Forget token", or until the API refuses it (401 or 403).

export const TOKEN_KEY = "tripsearch.alerts.token";
const FRAGMENT_KEY = "alerts_token";

/** Return the stored token, or null. */
export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || null;
  } catch {
    return null; // storage blocked: the token is asked for each time
  }
}

/** Keep a token (trimmed; a pasted "Bearer " prefix is dropped). */
export function setToken(token) {
  const clean = token.trim().replace(/^Bearer\s+/i, "");
  try {
    localStorage.setItem(TOKEN_KEY, clean);
  } catch {
    // storage blocked: nothing to keep
  }
  return clean;
}

/** Forget the stored token. */
export function forgetToken() {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage blocked: nothing was kept
  }
}

/** Keep a token handed over in the URL fragment (#alerts_token=JWT) and take it out of the address bar. */
export function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get(FRAGMENT_KEY);
  if (!token) return;
  setToken(token);
  fragment.delete(FRAGMENT_KEY);
  const rest = fragment.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
}

/** Return the subject (sub) a JWT names, read without checking it (only to show whose alerts these are), or null. */
export function tokenSubject(token) {
  try {
    const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    const claims = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}
