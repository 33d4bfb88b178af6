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
    this.objects = new Map();   // id -> merged event, insertion order = last activity
    this.cards = new Map();     // id -> {obj, node}: the card drawn for that version
  }

  // Initial load from GET /api/events (newest first): replay oldest first.
  load(events) {
    this.objects.clear();
    this.cards.clear();
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
    // The web server re-sends an object's "new" event once its snapshot is ready, maybe
    // after an "update" came: then only the snapshot is news.
    const late = prev && ev.type === "new" && prev.type !== "new";
    const obj = late ? { ...prev } : { ...(prev || {}), ...ev, id };
    // Keep the first snapshot (the one taken when the object appeared) if later
    // updates come without one, and the best score seen.
    obj.snapshot = ev.snapshot || (prev && prev.snapshot) || null;
    const scores = [prev && prev.best, ev.score].filter((v) => typeof v === "number");
    obj.best = scores.length ? Math.max(...scores) : null;
    this.objects.delete(id);   // re-insert so the most recent activity sorts first
    this.objects.set(id, obj);
    while (this.objects.size > MAX_OBJECTS) {
      this.objects.delete(this.objects.keys().next().value);
    }
  }

  // Only the object that changed gets a new card; the others (and their thumbnails) stay.
  render() {
    const cards = [...this.objects.values()].reverse().map((o) => {
      const cached = this.cards.get(o.id);
      if (cached && cached.obj === o) return cached.node;
      const node = this.card(o);
      this.cards.set(o.id, { obj: o, node });
      return node;
    });
    for (const id of this.cards.keys()) if (!this.objects.has(id)) this.cards.delete(id);
    this.list.replaceChildren(...cards);
    this.empty.hidden = cards.length > 0;
  }

  card(o) {
    const thumb = o.snapshot
      ? el("a", { href: o.snapshot, target: "_blank", rel: "noopener", class: "thumb" },
          el("img", { src: o.snapshot, alt: `snapshot of ${o.label}`, loading: "lazy" }))
      : el("div", { class: "thumb none" }, "no snapshot");
    // Where it is now, and the ROIs it went through earlier (e.g. came in by the door).
    const now = o.rois || [];
    const before = (o.entered_rois || []).filter((r) => !now.includes(r));
    const parts = [];
    if (now.length) parts.push(`in ${now.join(", ")}`);
    if (before.length) parts.push(`was in ${before.join(", ")}`);
    const rois = parts.length ? parts.join(" · ") : "outside ROIs";
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
        el("div", { class: "event-rois" }, rois),
        el("div", { class: "muted" }, when)));
  }
}
