// ROI editor: rectangles drawn over the live image (drag to draw, drag to move, handles
// to resize) and a list with name, colour and left/top/right/bottom in percent.
//
// The editor works on a draft of the node's ROI table. Save sends the whole draft with
// roi/replace and "if_version" = the version the draft started from, so an edit made
// meanwhile by Home Assistant or Node-RED is never overwritten silently: the node refuses
// with version_conflict, we reload its table and keep the user's draft aside (drawn as
// dashed ghosts) with a button to re-apply it on top of the new table.
"use strict";
import { el, $, toast, describeError } from "./dom.js";
import { api } from "./net.js";
import { EDGES, FALLBACK_COLOURS, round1, roiView } from "./roi-view.js";

// The ROI-name rule is the node's (schemas/config.schema.json $defs.roi_name), sent with
// every roi/get answer; until one arrives only the node checks names.
let nameRe = null;
export function setNamePattern(pattern) {
  try { nameRe = pattern ? new RegExp(pattern) : null; } catch { nameRe = null; }
}
const MIN_SIZE = 1;          // percent: smallest box a drag can make or shrink to

const clamp = (v, lo = 0, hi = 100) => Math.min(hi, Math.max(lo, v));
const clone = (x) => JSON.parse(JSON.stringify(x));

let nextKey = 1;
function makeItem(name, roi, orig) {
  return {
    key: `k${nextKey++}`, orig, name,
    left: roi.left, top: roi.top, right: roi.right, bottom: roi.bottom,
    colour: roi.colour || "green",
  };
}

export class RoiEditor {
  constructor() {
    this.overlay = $("overlay");
    this.listEl = $("roi-list");
    this.base = {};           // the node's table the draft started from
    this.version = null;      // its rois_version (null: not loaded yet)
    this.items = [];          // the draft: [{key, orig, name, left, top, right, bottom, colour}]
    this.dirty = false;
    this.selected = null;     // key of the selected item
    this.errors = new Map();  // key -> {field: reason}; field "_" = the ROI as a whole
    this.pending = null;      // {items, base}: the user's edit refused by a conflict
    this.remote = null;       // {version, rois}: newer table that arrived while dirty
    this.editing = false;     // drawing on the image enabled
    this.occupied = {};       // name -> true while the node reports it occupied
    this.colours = FALLBACK_COLOURS;
    this.drag = null;
    this.saving = false;

    this.overlay.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.overlay.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.overlay.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.overlay.addEventListener("pointercancel", (e) => this.onPointerUp(e));
    this.listEl.addEventListener("input", (e) => this.onListInput(e));
    this.listEl.addEventListener("change", (e) => this.onListInput(e));
    this.listEl.addEventListener("click", (e) => this.onListClick(e));
    $("roi-edit").addEventListener("click", () => this.setEditing(!this.editing));
    $("roi-add").addEventListener("click", () => this.addDefault());
    $("roi-save").addEventListener("click", () => this.save());
    $("roi-discard").addEventListener("click", () => this.discard());
    document.addEventListener("keydown", (e) => this.onKey(e));
    this.render();
  }

  // -- data from the node -----------------------------------------------------------------
  setColours(colours) {
    if (!colours || typeof colours !== "object" || !Object.keys(colours).length) return;
    if (JSON.stringify(colours) === JSON.stringify(this.colours)) return;
    this.colours = colours;
    this.render();
  }

  // A table from the node (WebSocket "rois", roi/get, a save's reply, the state).
  setServer(version, rois) {
    if (typeof version !== "number" || !rois) return;
    if (version === this.version) return;
    if (this.dirty || this.drag) {
      // Never replace the user's unsaved draft under their fingers: say so instead.
      if (version !== this.version) {
        this.remote = { version, rois: clone(rois) };
        this.renderToolbar();
      }
      return;
    }
    this.applyServer(version, rois);
  }

  applyServer(version, rois) {
    const keys = new Map(this.items.map((i) => [i.name, i.key]));
    const selectedName = (this.items.find((i) => i.key === this.selected) || {}).name;
    this.base = clone(rois);
    this.version = version;
    this.items = Object.entries(this.base).map(([name, roi]) => {
      const item = makeItem(name, roi, name);
      if (keys.has(name)) item.key = keys.get(name);   // keeps selection and focus stable
      return item;
    });
    this.selected = (this.items.find((i) => i.name === selectedName) || {}).key || null;
    this.dirty = false;
    this.remote = null;
    this.errors.clear();
    this.render();
  }

  setOccupancy(name, occupied) {
    if (Boolean(this.occupied[name]) === Boolean(occupied)) return;
    this.occupied[name] = Boolean(occupied);
    this.renderOverlay();
    const dot = this.listEl.querySelector(`.roi-row[data-name="${CSS.escape(name)}"] .occ`);
    if (dot) dot.classList.toggle("on", Boolean(occupied));
  }

  // -- editing ------------------------------------------------------------------------------
  setEditing(on) {
    this.editing = on;
    $("roi-edit").setAttribute("aria-pressed", String(on));
    $("roi-edit").textContent = on ? "Done drawing" : "Draw on image";
    this.overlay.classList.toggle("editing", on);
    $("roi-hint").hidden = !on;
    this.renderOverlay();
  }

  markDirty() {
    this.dirty = true;
    this.renderToolbar();
  }

  uniqueName() {
    const names = new Set(this.items.map((i) => i.name));
    let n = 1;
    while (names.has(`roi_${n}`)) n++;
    return `roi_${n}`;
  }

  defaultColour() {
    const used = new Set(this.items.map((i) => i.colour));
    const names = Object.keys(this.colours);
    return names.find((c) => !used.has(c)) || names[0] || "green";
  }

  addDefault() {
    const item = makeItem(this.uniqueName(),
      { left: 35, top: 35, right: 65, bottom: 65, colour: this.defaultColour() }, null);
    this.items.push(item);
    this.selected = item.key;
    this.markDirty();
    this.render();
  }

  remove(key) {
    this.items = this.items.filter((i) => i.key !== key);
    this.errors.delete(key);
    if (this.selected === key) this.selected = null;
    this.markDirty();
    this.render();
  }

  select(key) {
    this.selected = key;
    for (const row of this.listEl.querySelectorAll(".roi-row")) {
      row.classList.toggle("selected", row.dataset.key === key);
    }
    this.renderOverlay();
  }

  discard() {
    if (this.remote) this.applyServer(this.remote.version, this.remote.rois);
    else this.applyServer(this.version, this.base);
  }

  // -- pointer: draw, move, resize (mouse, pen and touch alike) ------------------------------
  point(e) {
    const r = this.overlay.getBoundingClientRect();
    return { x: clamp(((e.clientX - r.left) / r.width) * 100),
             y: clamp(((e.clientY - r.top) / r.height) * 100) };
  }

  onPointerDown(e) {
    if (!this.editing || (e.pointerType === "mouse" && e.button !== 0)) return;
    const p = this.point(e);
    const handle = e.target.closest(".handle");
    const box = e.target.closest(".roi:not(.ghost)");
    if (box) {
      const item = this.items.find((i) => i.key === box.dataset.key);
      if (!item) return;
      this.select(item.key);
      this.drag = { mode: handle ? "resize" : "move", dir: handle && handle.dataset.dir,
                    item, start: p, orig: { ...item } };
    } else {
      this.drag = { mode: "draw", start: p, item: null };
    }
    this.overlay.setPointerCapture(e.pointerId);
    e.preventDefault();
  }

  onPointerMove(e) {
    const d = this.drag;
    if (!d) return;
    const p = this.point(e);
    const dx = p.x - d.start.x;
    const dy = p.y - d.start.y;
    if (d.mode === "draw") {
      if (!d.item) {
        if (Math.abs(dx) < MIN_SIZE && Math.abs(dy) < MIN_SIZE) return;  // a click, so far
        d.item = makeItem(this.uniqueName(), { colour: this.defaultColour() }, null);
        this.items.push(d.item);
        this.selected = d.item.key;
        this.renderList();
      }
      Object.assign(d.item, {
        left: round1(Math.min(d.start.x, p.x)), right: round1(Math.max(d.start.x, p.x)),
        top: round1(Math.min(d.start.y, p.y)), bottom: round1(Math.max(d.start.y, p.y)),
      });
    } else if (d.mode === "move") {
      const w = d.orig.right - d.orig.left;
      const h = d.orig.bottom - d.orig.top;
      const left = round1(clamp(d.orig.left + dx, 0, 100 - w));
      const top = round1(clamp(d.orig.top + dy, 0, 100 - h));
      Object.assign(d.item, { left, top, right: round1(left + w), bottom: round1(top + h) });
    } else {
      const o = d.orig;
      const it = d.item;
      if (d.dir.includes("w")) it.left = round1(Math.min(p.x, o.right - MIN_SIZE));
      if (d.dir.includes("e")) it.right = round1(Math.max(p.x, o.left + MIN_SIZE));
      if (d.dir.includes("n")) it.top = round1(Math.min(p.y, o.bottom - MIN_SIZE));
      if (d.dir.includes("s")) it.bottom = round1(Math.max(p.y, o.top + MIN_SIZE));
    }
    if (d.item) {
      this.markDirty();
      this.renderOverlay();
      this.syncRow(d.item);
    }
  }

  onPointerUp(e) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    if (this.overlay.hasPointerCapture(e.pointerId)) this.overlay.releasePointerCapture(e.pointerId);
    if (d.mode === "draw" && !d.item) this.select(null);   // a click on empty image
  }

  onKey(e) {
    if (!this.selected || !this.editing) return;
    if (e.target.closest("input, select, textarea")) return;
    if (e.key === "Delete" || e.key === "Backspace") {
      this.remove(this.selected);
      e.preventDefault();
    } else if (e.key === "Escape") {
      this.select(null);
    }
  }

  // -- the list ---------------------------------------------------------------------------
  onListInput(e) {
    const input = e.target.closest("[data-field]");
    const row = e.target.closest(".roi-row");
    if (!input || !row) return;
    const item = this.items.find((i) => i.key === row.dataset.key);
    if (!item) return;
    const field = input.dataset.field;
    item[field] = EDGES.includes(field) ? parseFloat(input.value) : input.value.trim();
    if (field === "colour") row.querySelector(".swatch").style.background = this.css(item.colour);
    if (field === "name") row.dataset.name = item.name;
    const errs = this.errors.get(item.key);
    if (errs && errs[field]) {   // the user is fixing it: drop the stale message
      delete errs[field];
      this.renderRowErrors(item, row);
    }
    this.markDirty();
    this.renderOverlay();
  }

  onListClick(e) {
    const row = e.target.closest(".roi-row");
    if (!row) return;
    if (e.target.closest(".delete")) this.remove(row.dataset.key);
    else if (row.dataset.key !== this.selected) this.select(row.dataset.key);
  }

  // -- saving -------------------------------------------------------------------------------
  // Catch what the node could only report as a whole-table error: a name it cannot key
  // on, or two ROIs with the same name (which would silently merge in one JSON object).
  checkLocal() {
    this.errors.clear();
    const seen = new Map();
    for (const it of this.items) {
      let reason = null;
      if (nameRe && !nameRe.test(it.name)) reason = "letters, digits, _ and - only (1–64)";
      else if (seen.has(it.name)) reason = "another ROI has this name";
      if (reason) this.errors.set(it.key, { name: reason });
      seen.set(it.name, it.key);
    }
    return this.errors.size === 0;
  }

  async save() {
    if (this.saving) return;
    $("roi-error").textContent = "";
    if (!this.checkLocal()) {
      this.render();
      $("roi-error").textContent = "Fix the marked ROIs, then save.";
      return;
    }
    const rois = {};
    for (const it of this.items) {
      rois[it.name] = { left: it.left, top: it.top, right: it.right, bottom: it.bottom,
                        colour: it.colour };
    }
    const payload = { rois };
    if (this.version !== null) payload.if_version = this.version;
    this.saving = true;
    this.renderToolbar();
    const reply = await api("roi/replace", payload);
    this.saving = false;
    if (reply.status === "ok") {
      this.dirty = false;
      this.pending = null;
      this.applyServer(reply.data.version, reply.data.rois);
      toast(`ROIs saved (version ${reply.data.version})`);
    } else if (reply.error.code === "version_conflict") {
      await this.reloadAfterConflict();
    } else {
      this.showErrors(reply.error);
      this.render();
    }
    this.renderToolbar();
  }

  // Someone else changed the ROIs: show theirs, keep ours aside to re-apply.
  async reloadAfterConflict() {
    this.pending = { items: clone(this.items), base: clone(this.base) };
    const reply = await api("roi/get");
    this.dirty = false;
    if (reply.status === "ok") {
      setNamePattern(reply.data.name_pattern);
      this.applyServer(reply.data.version, reply.data.rois);
    }
    else if (this.remote) this.applyServer(this.remote.version, this.remote.rois);
    else this.render();
    toast("ROIs changed elsewhere — reloaded; re-apply your edit", true);
  }

  // Replay the user's changes (relative to the table they started from) onto the node's
  // current table: their additions, deletions and changed fields; the rest stays theirs.
  reapply() {
    if (!this.pending) return;
    const { items: mine, base: old } = this.pending;
    const out = this.items.map((i) => ({ ...i }));
    const referenced = new Set(mine.map((i) => i.orig).filter((n) => n !== null));
    for (const name of Object.keys(old)) {
      if (!referenced.has(name)) {
        const idx = out.findIndex((i) => i.orig === name);
        if (idx >= 0) out.splice(idx, 1);        // deleted by the user
      }
    }
    for (const m of mine) {
      const before = m.orig !== null ? old[m.orig] : undefined;
      if (!before) {                              // added by the user
        out.push({ ...m, key: `k${nextKey++}`, orig: null });
        continue;
      }
      const changed = [...EDGES, "colour"].filter((f) => m[f] !== before[f]);
      if (!changed.length && m.name === m.orig) continue;
      const target = out.find((i) => i.orig === m.orig);
      if (!target) {                              // deleted elsewhere, changed here: keep ours
        out.push({ ...m, key: `k${nextKey++}`, orig: null });
        continue;
      }
      for (const f of changed) target[f] = m[f];
      target.name = m.name;
    }
    this.items = out;
    this.pending = null;
    this.checkLocal();
    this.markDirty();
    this.render();
    toast("your edit is re-applied: check it and save");
  }

  // The user's ROIs that the refused save would have added or changed (drawn dashed).
  pendingChanges() {
    const { items, base } = this.pending;
    return items.filter((m) => {
      const before = m.orig !== null ? base[m.orig] : undefined;
      return !before || m.name !== m.orig ||
        [...EDGES, "colour"].some((f) => m[f] !== before[f]);
    });
  }

  // Server errors to the ROI (and field) they name: "$.rois.<name>.<field>".
  showErrors(error) {
    this.errors.clear();
    const loose = [];
    for (const d of error.details || []) {
      const m = /^\$\.rois\.([A-Za-z0-9_-]+)(?:\.([A-Za-z_]+))?/.exec(d.path || "");
      const item = m && this.items.find((i) => i.name === m[1]);
      const quoted = !item && /'([^']*)'/.exec(d.reason || "");
      const named = quoted && this.items.find((i) => i.name === quoted[1]);
      if (item || named) {
        const target = item || named;
        const field = item ? (m[2] || "_") : "name";
        const errs = this.errors.get(target.key) || {};
        errs[field] = d.reason;
        this.errors.set(target.key, errs);
      } else {
        loose.push(d.path ? `${d.path}: ${d.reason}` : d.reason);
      }
    }
    $("roi-error").textContent = loose.length ? `${error.message}: ${loose.join("; ")}`
      : error.message;
    toast(`ROIs not saved: ${describeError(error)}`, true);
  }
}

// Drawing (web/static/roi-view.js): the boxes over the image, the list, the toolbar.
Object.assign(RoiEditor.prototype, roiView);
