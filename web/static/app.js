// camnode page: the live stream with the node's state beside it, controls, the module
// form, the ROI editor and recent events. State arrives over the /ws WebSocket (pushed by
// the node on every change); the page never polls. After each (re)connection it reads
// /api/state, the ROIs and /api/events once, so nothing missed while offline stays stale.
"use strict";
import { $, toast, describeError } from "./dom.js";
import { api, getJSON, goLogin, LiveSocket, xsrfToken } from "./net.js";
import { RoiEditor, setNamePattern } from "./roi-editor.js";
import { EventList } from "./events.js";
import { ModuleForm } from "./module-form.js";

const roiEditor = new RoiEditor();
const moduleForm = new ModuleForm();
const eventList = new EventList();
let state = {};
let socketOpen = false;
let everConnected = false;

// -- the state panel ------------------------------------------------------------------------
function setText(id, text, cls) {
  const node = $(id);
  node.textContent = text;
  if (cls !== undefined) node.className = cls;
}

function showState(s) {
  state = s;
  document.title = s.name ? `${s.name} — camnode` : "camnode";
  $("title").textContent = s.name || "camnode";
  const pipeline = s.pipeline || "unknown";
  setText("s-pipeline", pipeline, `v ${pipeline === "running" ? "good" : pipeline === "stopped" ? "warn" : "bad"}`);
  const kind = s.stream ? s.stream.frame_kind : null;
  setText("s-frame", { live: "live", nosignal: "no signal", stopped: "stopped" }[kind] || "none yet",
    `v ${kind === "live" ? "good" : kind === "stopped" ? "warn" : "bad"}`);
  setText("s-module", s.module ? s.module + (s.module_error ? ` (failed: ${s.module_error})` : "") : "–",
    s.module_error ? "v bad" : "v");
  const src = s.source || {};
  setText("s-source", src.spec ? `${src.spec}: ${src.status}${src.detail ? ` (${src.detail})` : ""}` : "–",
    `v ${src.status === "ok" ? "" : src.status === "stopped" ? "warn" : "bad"}`);
  setText("s-fps", typeof s.fps === "number" ? s.fps.toFixed(1) : "–");
  setText("s-viewers", s.viewers != null ? String(s.viewers) : "–");
  const mq = s.mqtt || {};
  setText("s-mqtt", mq.connected ? `connected${mq.broker ? ` to ${mq.broker}` : ""}`
    : mq.enabled ? `not connected${mq.broker ? ` to ${mq.broker}` : ""}${mq.last_error ? ` (${mq.last_error})` : ""}`
    : (mq.last_error || "off"), `v ${mq.connected ? "good" : mq.enabled ? "bad" : ""}`);
  if (s.detections) showMotion(Boolean(s.detections.tracking));
  setText("s-error", s.last_error || "–", s.last_error ? "v bad" : "v");

  // Controls: say what can be done now (both enabled when the node is not reachable).
  $("start").disabled = pipeline === "running";
  $("stop").disabled = pipeline === "stopped";

  if (s.width && s.height) $("frame").style.setProperty("--ar", String(s.width / s.height));
  showBadge();
  showAuth(s.auth);
  moduleForm.update(s);
  roiEditor.setColours(s.colours);
  if (s.rois) roiEditor.setServer(s.rois_version, s.rois);
  const occ = s.detections && s.detections.occupancy;
  if (occ) for (const [name, o] of Object.entries(occ)) roiEditor.setOccupancy(name, o.occupied);
  showHealth(s.health);
  showHeaderPill();
}

// The node's problems over the picture: dead or stalled parts (red: /healthz is 503),
// degraded conditions (amber: source lost, module failing or slow).
const DEGRADED = new Set(["source", "module"]);
function showHealth(health) {
  const problems = (health && Array.isArray(health.problems)) ? health.problems : [];
  const banner = $("health");
  banner.hidden = problems.length === 0;
  if (!problems.length) return;
  const failing = Array.isArray(health.failing) ? health.failing
    : [...new Set(problems.filter((p) => !DEGRADED.has(p.part)).map((p) => p.part))];
  banner.classList.toggle("failing", failing.length > 0);
  banner.dataset.parts = problems.map((p) => p.part).join(" ");
  $("health-title").textContent = failing.length
    ? `Node unhealthy: ${failing.join(", ")} not working`
    : "Working with problems";
  const list = $("health-list");
  list.replaceChildren(...problems.map((p) => {
    const li = document.createElement("li");
    const since = typeof p.since === "number" ? ` (since ${new Date(p.since * 1000).toLocaleTimeString()})` : "";
    li.textContent = `${p.part}: ${p.reason}${since}`;
    return li;
  }));
}

function showMotion(on) {
  setText("s-motion", on ? "motion" : "still", `v ${on ? "warn" : ""}`);
}

// The word over the picture when it is not the live camera.
function showBadge() {
  const badge = $("badge");
  const kind = state.stream ? state.stream.frame_kind : null;
  let text = "";
  let detail = "";
  if (!socketOpen && everConnected) text = "connection lost";
  else if (state.node_reachable === false) text = "node unreachable";
  else if (state.pipeline === "stopped" || kind === "stopped") text = "stopped";
  else if (kind === "nosignal") {
    text = "no signal";
    detail = state.source && state.source.detail ? state.source.detail : "";
  }
  badge.hidden = !text;
  badge.dataset.kind = text.replace(/ /g, "-");
  $("badge-text").textContent = text;
  $("badge-detail").textContent = detail;
  $("frame").classList.toggle("dim", Boolean(text));
}

function showHeaderPill(retryIn) {
  const pill = $("conn");
  if (!socketOpen) {
    pill.textContent = !everConnected ? "connecting…"
      : retryIn !== undefined ? `connection lost — retrying in ${Math.max(1, Math.round(retryIn))} s`
      : "connection lost — reconnecting…";
    pill.className = everConnected ? "pill bad" : "pill";
  } else if (state.node_reachable === false) {
    pill.textContent = "node unreachable";
    pill.className = "pill bad";
  } else {
    pill.textContent = state.pipeline === "running" ? "live" : state.pipeline || "…";
    pill.className = `pill ${state.pipeline === "running" ? "good" : "warn"}`;
  }
}

// The state broadcast to every socket may not name this page's user (it is the same
// message for all viewers): keep the name from the last message that had it.
let knownUser = "";
function showAuth(auth) {
  const on = Boolean(auth && auth.enabled);
  if (on && auth.user) knownUser = auth.user;
  $("logout").hidden = !on;
  $("user").hidden = !on || !knownUser;
  $("user").textContent = on ? knownUser : "";
}

// -- the live socket ------------------------------------------------------------------------
function onMessage(msg) {
  const d = msg.data || {};
  switch (msg.type) {
    case "state": showState(d); break;
    case "rois": roiEditor.setServer(d.version, d.rois); break;
    case "event": eventList.add(d); break;
    case "occupancy": roiEditor.setOccupancy(d.roi, d.occupied); break;
    case "motion": showMotion(Boolean(d.on)); break;
    default: break;  // newer server, older page: ignore what we do not know
  }
}

async function onSocketStatus(status, retryIn) {
  const wasLost = everConnected && !socketOpen;
  socketOpen = status === "open";
  if (socketOpen) {
    everConnected = true;
    if (wasLost) restartStream();   // the web server may have restarted under us
    resync();
  } else if (status === "lost" && everConnected) {
    // A closed socket may mean our login ended: then the API says 401 and we go to /login.
    getJSON("/api/state");
  }
  // What the panel shows is the last thing we heard: grey it while we hear nothing.
  $("status-card").classList.toggle("stale", !socketOpen && everConnected);
  showBadge();
  showHeaderPill(retryIn);
}

// One read of everything after (re)connecting; the socket carries changes from then on.
async function resync() {
  const [s, rois, events] = await Promise.all([
    getJSON("/api/state"), api("roi/get"), getJSON("/api/events")]);
  if (s) showState(s);
  if (rois.status === "ok") {
    setNamePattern(rois.data.name_pattern);
    roiEditor.setServer(rois.data.version, rois.data.rois);
  }
  if (events && Array.isArray(events.events)) eventList.load(events.events);
}

// -- the stream -------------------------------------------------------------------------------
// The <img> holds one long MJPEG response. If it breaks (web server restarted) we
// reconnect with back-off; while the tab is hidden we close it so a phone in a pocket
// does not keep pulling frames (and the node's viewer count stays honest).
let streamDelay = 1;
let streamTimer = null;
let streamPaused = false;

function restartStream() {
  clearTimeout(streamTimer);
  if (streamPaused) return;
  $("stream").src = `/stream.mjpg?t=${Date.now()}`;
}

function setupStream() {
  const img = $("stream");
  img.addEventListener("load", () => { streamDelay = 1; });
  img.addEventListener("error", () => {
    if (streamPaused || !img.getAttribute("src")) return;
    clearTimeout(streamTimer);
    streamTimer = setTimeout(restartStream, streamDelay * 1000);
    streamDelay = Math.min(streamDelay * 2, 10);
  });
  document.addEventListener("visibilitychange", () => {
    streamPaused = document.visibilityState === "hidden";
    if (streamPaused) {
      clearTimeout(streamTimer);
      img.removeAttribute("src");   // ends the request; the last picture stays in memory
    } else {
      restartStream();
    }
  });
  img.src = "/stream.mjpg";
}

// -- controls -------------------------------------------------------------------------------
async function runCommand(button, command) {
  button.disabled = true;
  button.classList.add("busy");
  const reply = await api(command);
  button.classList.remove("busy");
  button.disabled = false;
  if (reply.status === "ok") {
    toast(`${command}: ok`);
    if (reply.data && reply.data.pipeline) showState({ ...state, ...reply.data });
  } else {
    toast(`${command}: ${describeError(reply.error)}`, true);
    showState(state);
  }
}

async function logout() {
  try {
    await fetch("/logout", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrfToken() },
      body: "{}",
    });
  } catch (e) { /* gone anyway: the login page will tell */ }
  goLogin();
}

function setupControls() {
  for (const [id, command] of [["start", "pipeline/start"], ["stop", "pipeline/stop"],
                               ["restart", "pipeline/restart"]]) {
    $(id).addEventListener("click", (e) => runCommand(e.currentTarget, command));
  }
  $("logout").addEventListener("click", logout);
}

setupControls();
setupStream();
moduleForm.loadSchemas();
new LiveSocket("/ws", { onMessage, onStatus: onSocketStatus }).start();
