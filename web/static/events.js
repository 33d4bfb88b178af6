// Recent detection events. The node sends new / update / end for each tracked object (same
// id); one card per object keeps the list readable when updates arrive every second. The
// card shows the latest type, so "new", "update" and "end" are all visible as they come.
"use strict";
import { el, $, formatTime } from "./dom.js";

const MAX_OBJECTS = 40;

export class EventList {
  constructor() {
    this.list = $("events");
    this.empty = $("events-empty");
    this.objects = new Map();   // id -> merged event, insertion order = first seen
  }

  // Initial load from GET /api/events (newest first): replay oldest first.
  load(events) {
    this.objects.clear();
    for (const ev of [...events].reverse()) this.merge(ev);
    this.render();
  }

  add(ev) {
    this.merge(ev);
    this.render();
  }

  merge(ev) {
    const id = ev.id ?? `${ev.label}-${ev.start}`;
    const prev = this.objects.get(id);
    const obj = { ...(prev || {}), ...ev, id };
    // Keep the first snapshot (the one taken when the object appeared) if later
    // updates come without one, and the best score seen.
    obj.snapshot = ev.snapshot || (prev && prev.snapshot) || null;
    if (prev && typeof prev.score === "number" && typeof ev.score === "number") {
      obj.best = Math.max(prev.best ?? prev.score, ev.score);
    } else {
      obj.best = ev.score;
    }
    obj.updates = (prev ? prev.updates : 0) + (ev.type === "update" ? 1 : 0);
    this.objects.delete(id);   // re-insert so the most recent activity sorts first
    this.objects.set(id, obj);
    while (this.objects.size > MAX_OBJECTS) {
      this.objects.delete(this.objects.keys().next().value);
    }
  }

  render() {
    const cards = [...this.objects.values()].reverse().map((o) => this.card(o));
    this.list.replaceChildren(...cards);
    this.empty.hidden = cards.length > 0;
  }

  card(o) {
    const thumb = o.snapshot
      ? el("a", { href: o.snapshot, target: "_blank", rel: "noopener", class: "thumb" },
          el("img", { src: o.snapshot, alt: `snapshot of ${o.label}`, loading: "lazy" }))
      : el("div", { class: "thumb none" }, "no snapshot");
    const rois = (o.rois || []).length ? (o.rois || []).join(", ") : "outside ROIs";
    const entered = (o.entered_rois || []).length
      ? el("span", { class: "muted" }, ` · entered ${o.entered_rois.join(", ")}`) : null;
    const score = typeof o.best === "number" ? `${Math.round(o.best * 100)}%` : "";
    const when = o.type === "end" && o.end
      ? `${formatTime(o.start)} – ${formatTime(o.end)} (${Math.max(0, o.end - o.start).toFixed(1)} s)`
      : `since ${formatTime(o.start)}`;
    return el("li", { class: `event ${o.type}`, dataset: { id: String(o.id) } },
      thumb,
      el("div", { class: "event-body" },
        el("div", { class: "event-head" },
          el("strong", {}, o.label || "object"),
          score ? el("span", { class: "score" }, score) : null,
          el("span", { class: `tag ${o.type}` }, o.type === "end" ? "ended" : o.type)),
        el("div", {}, rois, entered),
        el("div", { class: "muted" }, when)));
  }
}
