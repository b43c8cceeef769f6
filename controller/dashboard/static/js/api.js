// The operator API with the bearer token from the login (kept in sessionStorage: gone when
// the tab closes, not sent anywhere automatically, so no CSRF exposure).

const KEY = "streetpole.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

export const auth = {
  get token() { return sessionStorage.getItem(KEY); },
  set token(t) { t ? sessionStorage.setItem(KEY, t) : sessionStorage.removeItem(KEY); },
};

export async function login(username, password) {
  const body = new URLSearchParams({ username, password, grant_type: "password" });
  const r = await fetch("/api/auth/token", { method: "POST", body });
  if (!r.ok) {
    const d = await r.json().catch(() => ({}));
    throw new ApiError(r.status, d.detail || "login failed");
  }
  auth.token = (await r.json()).access_token;
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${auth.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) {
    auth.token = null;
    window.dispatchEvent(new CustomEvent("sp-logged-out"));
  }
  if (!r.ok) {
    const d = await r.json().catch(() => ({}));
    let detail = d.detail ?? r.statusText;
    if (Array.isArray(detail)) detail = detail.map((x) => `${(x.loc || []).slice(1).join(".")}: ${x.msg}`).join("; ");
    throw new ApiError(r.status, detail);
  }
  return r.status === 204 ? null : r.json();
}

export const get = (p) => api("GET", p);
export const post = (p, b) => api("POST", p, b ?? {});
export const put = (p, b) => api("PUT", p, b);

/** Live events: a ticket per connection (the token never goes in a URL). */
export class LiveEvents {
  constructor(handlers, onState) {
    this.handlers = handlers;
    this.onState = onState;
    this.source = null;
    this.stopped = false;
    this.failures = 0;
  }

  async start() {
    this.stopped = false;
    if (this.source) this.source.close();
    try {
      const t = await post("/api/events/ticket");
      if (this.stopped) return;
      const es = new EventSource(t.stream);
      this.source = es;
      es.addEventListener("hello", (e) => { this.failures = 0; this.onState("on"); this.handlers.hello?.(JSON.parse(e.data)); });
      for (const kind of ["node", "alarm", "resync"]) {
        es.addEventListener(kind, (e) => this.handlers[kind]?.(JSON.parse(e.data)));
      }
      es.addEventListener("bye", () => this.restart(0));
      es.onerror = () => this.restart(Math.min(30000, 1000 * 2 ** this.failures++));
    } catch (e) {
      if (e.status === 401) return;
      this.restart(Math.min(30000, 1000 * 2 ** this.failures++));
    }
  }

  restart(delay) {
    if (this.source) this.source.close();
    this.source = null;
    this.onState("off");
    if (!this.stopped) setTimeout(() => this.start(), delay);
  }

  stop() {
    this.stopped = true;
    if (this.source) this.source.close();
    this.source = null;
    this.onState("off");
  }
}
