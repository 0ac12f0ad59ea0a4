// The API client: the bearer token from the login lives in sessionStorage (gone when the tab closes).
const KEY = "smartwater.session";

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (s && s.token && (!s.expires_at || Date.parse(s.expires_at) > Date.now())) return s;
  } catch (_) { /* a damaged entry is no session */ }
  return null;
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

async function detailOf(resp) {
  try {
    const body = await resp.json();
    return typeof body.detail === "string" ? body.detail : resp.statusText;
  } catch (_) {
    return resp.statusText || `HTTP ${resp.status}`;
  }
}

export async function login(username, password) {
  const resp = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  const body = await resp.json();
  const s = { token: body.access_token, expires_at: body.expires_at, role: body.role, username: username.trim().toLowerCase() };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

export async function api(path, { method = "GET", body } = {}) {
  const s = session();
  if (!s) throw new AuthError("not logged in");
  const headers = { Authorization: `Bearer ${s.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 401) {
    clearSession();
    throw new AuthError(await detailOf(resp));
  }
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  return resp.json();
}

// Public endpoints (the bulletin): no token; null when the server does not have the endpoint (yet).
export async function publicGet(path) {
  const resp = await fetch(path);
  if (resp.status === 404) return null;
  if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
  return resp.json();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.append(k, v);
  return q.toString();
}
