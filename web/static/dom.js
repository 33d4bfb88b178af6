// Small DOM helpers. Everything shown comes from the node or from MQTT clients (ROI names,
// labels, error messages), so text is always set with textContent, never as HTML.
"use strict";

export const $ = (id) => document.getElementById(id);

// el("button", {class: "x", type: "button", onclick: fn}, "text", child, ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k in node && typeof v !== "string") node[k] = v;  // .checked, .value, ...
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// OpenCV colours are [B, G, R]; CSS wants rgb(R, G, B).
export function bgrToCss(bgr) {
  if (!Array.isArray(bgr) || bgr.length < 3) return "rgb(0, 255, 0)";
  return `rgb(${bgr[2]}, ${bgr[1]}, ${bgr[0]})`;
}

export function formatTime(unixSeconds) {
  if (typeof unixSeconds !== "number" || !unixSeconds) return "–";
  const d = new Date(unixSeconds * 1000);
  const sameDay = d.toDateString() === new Date().toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return sameDay ? time : `${d.toLocaleDateString()} ${time}`;
}

// Short-lived message at the bottom of the screen (command results).
let toastTimer = null;
export function toast(text, bad = false) {
  const t = $("toast");
  if (!t) return;
  t.textContent = text;
  t.className = bad ? "show bad" : "show";
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = bad ? "bad" : ""; }, bad ? 8000 : 3000);
}

// "error.message (path: reason; ...)" for envelopes whose details belong to no field.
export function describeError(err) {
  if (!err) return "failed";
  const details = (err.details || []).map((d) => `${d.path}: ${d.reason}`).join("; ");
  return details ? `${err.message} (${details})` : err.message;
}
