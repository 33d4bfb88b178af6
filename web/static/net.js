// Talking to the camnode web server: commands (POST /api/<command>), GET helpers and the
// live WebSocket. Everything the page changes goes through `api()`, so XSRF, login
// redirects and error envelopes are handled in one place.
"use strict";

// Tornado checks the X-XSRFToken header against the `_xsrf` cookie. The page template also
// carries the token in a hidden input, which is used when the cookie cannot be read.
export function xsrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
  if (m) return decodeURIComponent(m[1]);
  const input = document.querySelector('input[name="_xsrf"]');
  return input ? input.value : "";
}

// Sent to the login page when the session ends (auth on and the cookie expired/cleared).
export function goLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

function errorEnvelope(command, code, message) {
  return { id: null, command, status: "error", error: { code, message, details: [] } };
}

// POST a command; always resolves to an envelope ({status:"ok",data} or {status:"error",
// error:{code,message,details}}), also when the server or the network failed, so callers
// have one shape to handle.
export async function api(command, payload = {}) {
  let res;
  try {
    res = await fetch(`/api/${command}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrfToken() },
      body: JSON.stringify(payload),
    });
  } catch (e) {
    return errorEnvelope(command, "network", "web server not reachable");
  }
  if (res.status === 401) {
    goLogin();
    return errorEnvelope(command, "unauthorized", "logged out");
  }
  try {
    const reply = await res.json();
    if (reply && (reply.status === "ok" || reply.status === "error")) return reply;
  } catch (e) { /* not JSON: e.g. Tornado's HTML page for a refused XSRF token */ }
  const hint = res.status === 403 ? " (session expired? reload the page)" : "";
  return errorEnvelope(command, `http_${res.status}`, `HTTP ${res.status}${hint}`);
}

// GET JSON; null when it is not there (older server, network error), login on 401.
export async function getJSON(url) {
  try {
    const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (res.status === 401) { goLogin(); return null; }
    if (!res.ok) return null;
    return await res.json();
  } catch (e) {
    return null;
  }
}

// The /ws WebSocket with reconnection. The server pushes {"type", "data"} messages; when
// the socket drops we retry with exponential back-off (0.5 s doubling up to 15 s, with
// jitter so many open pages do not hammer a node that just came back all at once).
export class LiveSocket {
  constructor(path, { onMessage, onStatus }) {
    this.path = path;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.delay = 0.5;
    this.ws = null;
    this.timer = null;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${this.path}`;
  }

  start() {
    clearTimeout(this.timer);
    this.onStatus("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 0.5;
      this.onStatus("open");
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg && typeof msg.type === "string") this.onMessage(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.retry();
    };
  }

  retry() {
    const wait = this.delay * (0.8 + Math.random() * 0.4);
    this.delay = Math.min(this.delay * 2, 15);
    this.onStatus("lost", wait);
    this.timer = setTimeout(() => this.start(), wait * 1000);
  }
}
