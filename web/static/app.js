// camnode page: controls post commands to /api/<command>; state refreshes every second.
"use strict";
const $ = (id) => document.getElementById(id);

async function command(name, payload = {}) {
  const res = await fetch(`/api/${name}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
  const reply = await res.json();
  const msg = $("message");
  if (reply.status === "ok") {
    msg.textContent = `${name}: ok`;
    msg.className = "";
    if (reply.data) show(reply.data);
  } else {
    const details = (reply.error.details || []).map((d) => `${d.path}: ${d.reason}`).join("; ");
    msg.textContent = `${name}: ${reply.error.message}${details ? " (" + details + ")" : ""}`;
    msg.className = "bad";
  }
  return reply;
}

function show(s) {
  $("title").textContent = s.name || "camnode";
  const reach = $("reach");
  reach.textContent = s.node_reachable === false ? "node unreachable" : s.pipeline;
  reach.className = "pill " + (s.pipeline === "running" ? "ok" : "bad");
  $("s-pipeline").textContent = s.pipeline;
  $("s-module").textContent = s.module || "–";
  const src = s.source || {};
  $("s-source").textContent = src.status ? `${src.spec}: ${src.status}${src.detail ? " (" + src.detail + ")" : ""}` : "–";
  $("s-fps").textContent = s.fps != null ? s.fps.toFixed(1) : "–";
  $("s-viewers").textContent = s.viewers != null ? s.viewers : "–";
  $("s-error").textContent = s.last_error || "–";
  const mq = s.mqtt || {};
  $("s-mqtt").textContent = mq.connected ? `connected to ${mq.broker}`
    : mq.enabled ? `not connected to ${mq.broker}${mq.last_error ? " (" + mq.last_error + ")" : ""}`
    : (mq.last_error || "off");
  const sel = $("module");
  const mods = s.modules || [];
  if (sel.dataset.list !== mods.join(",")) {
    sel.innerHTML = "";
    for (const m of mods) sel.add(new Option(m, m));
    sel.dataset.list = mods.join(",");
  }
  if (document.activeElement !== sel && s.module) sel.value = s.module;
}

async function refresh() {
  try {
    const res = await fetch("/api/state");
    show(await res.json());
  } catch (e) {
    $("reach").textContent = "web server unreachable";
    $("reach").className = "pill bad";
  }
}

$("start").addEventListener("click", () => command("pipeline/start"));
$("stop").addEventListener("click", () => command("pipeline/stop"));
$("restart").addEventListener("click", () => command("pipeline/restart"));
$("module").addEventListener("change", (e) => command("module/set", { name: e.target.value }));
refresh();
setInterval(refresh, 1000);
