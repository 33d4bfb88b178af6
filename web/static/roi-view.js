// ROI editor, drawing: the boxes over the live image, the list of rows and the toolbar,
// from the editor's draft (web/static/roi-editor.js mixes these methods into RoiEditor;
// `this` is the editor). Nothing here changes the draft.
"use strict";
import { el, $, bgrToCss } from "./dom.js";

export const EDGES = ["left", "top", "right", "bottom"];
const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];
export const FALLBACK_COLOURS = {   // used until the node tells its colour table
  green: [0, 255, 0], red: [0, 0, 255], blue: [255, 0, 0], yellow: [0, 255, 255],
  cyan: [255, 255, 0], magenta: [255, 0, 255], orange: [0, 165, 255], white: [255, 255, 255],
};
export const round1 = (v) => Math.round(v * 10) / 10;
const fmt = (v) => (Number.isFinite(v) ? String(round1(v)) : "");

export const roiView = {
  css(colour) {
    return bgrToCss(this.colours[colour] || FALLBACK_COLOURS[colour]);
  },

  render() {
    this.renderOverlay();
    this.renderList();
    this.renderToolbar();
  },

  renderOverlay() {
    const boxes = this.items.map((it) => this.box(it, false));
    const ghosts = this.pending ? this.pendingChanges().map((it) => this.box(it, true)) : [];
    this.overlay.replaceChildren(...ghosts, ...boxes);
  },

  box(it, ghost) {
    const left = Math.min(it.left, it.right);
    const top = Math.min(it.top, it.bottom);
    const selected = !ghost && it.key === this.selected;
    const classes = ["roi"];
    if (ghost) classes.push("ghost");
    if (selected) classes.push("selected");
    if (!ghost && this.errors.has(it.key)) classes.push("invalid");
    if (!ghost && this.occupied[it.name]) classes.push("occupied");
    if (top < 6) classes.push("at-top");
    const box = el("div", { class: classes.join(" "), dataset: { key: it.key, name: it.name } },
      el("span", { class: "roi-label" }, ghost ? `${it.name} (yours)` : it.name));
    if ([left, top, it.right, it.bottom].every(Number.isFinite)) {
      box.style.left = `${left}%`;
      box.style.top = `${top}%`;
      box.style.width = `${Math.abs(it.right - it.left)}%`;
      box.style.height = `${Math.abs(it.bottom - it.top)}%`;
    } else {
      box.hidden = true;
    }
    box.style.setProperty("--c", this.css(it.colour));
    if (selected && this.editing) {
      for (const dir of HANDLES) box.append(el("span", { class: `handle ${dir}`, dataset: { dir } }));
    }
    return box;
  },

  renderList() {
    const colourNames = Object.keys(this.colours);
    const rows = this.items.map((it) => {
      const options = colourNames.includes(it.colour) ? colourNames : [...colourNames, it.colour];
      const colour = el("select", { "data-field": "colour", "aria-label": "colour" },
        options.map((c) => new Option(c, c)));
      colour.value = it.colour;
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = this.css(it.colour);
      const edge = (f, label) => el("label", { class: "edge" }, label,
        el("input", { type: "number", inputmode: "decimal", step: "0.1", min: "0", max: "100",
                      "data-field": f, value: fmt(it[f]), "aria-label": `${it.name} ${f}` }));
      const row = el("li", {
        class: `roi-row${it.key === this.selected ? " selected" : ""}`,
        dataset: { key: it.key, name: it.name },
      },
        el("div", { class: "roi-line" },
          swatch,
          el("input", { type: "text", class: "roi-name", "data-field": "name", value: it.name,
                        "aria-label": "name", autocomplete: "off", spellcheck: "false" }),
          colour,
          el("span", { class: `occ${this.occupied[it.name] ? " on" : ""}`, title: "occupied" }),
          el("button", { type: "button", class: "delete", title: `delete ${it.name}`,
                         "aria-label": `delete ${it.name}` }, "✕")),
        el("div", { class: "roi-edges" },
          edge("left", "L"), edge("top", "T"), edge("right", "R"), edge("bottom", "B")),
        el("ul", { class: "roi-errors" }));
      this.renderRowErrors(it, row);
      return row;
    });
    this.listEl.replaceChildren(...rows);
    $("roi-empty").hidden = rows.length > 0;
  },

  renderRowErrors(it, row) {
    const errs = this.errors.get(it.key) || {};
    for (const input of row.querySelectorAll("[data-field]")) {
      input.classList.toggle("invalid", Boolean(errs[input.dataset.field]));
    }
    row.classList.toggle("invalid", Object.keys(errs).length > 0);
    row.querySelector(".roi-errors").replaceChildren(...Object.entries(errs).map(([f, reason]) =>
      el("li", { class: "field-error", dataset: { errorFor: f } },
        f === "_" ? reason : `${f}: ${reason}`)));
    if (!Object.keys(errs).length) this.errors.delete(it.key);
  },

  // Update a row's inputs while dragging, but never the one the user is typing in.
  syncRow(it) {
    const row = this.listEl.querySelector(`.roi-row[data-key="${it.key}"]`);
    if (!row) return;
    for (const f of EDGES) {
      const input = row.querySelector(`[data-field="${f}"]`);
      if (input && input !== document.activeElement) input.value = fmt(it[f]);
    }
  },

  renderToolbar() {
    const status = $("roi-status");
    if (this.version === null) status.textContent = "loading…";
    else if (this.saving) status.textContent = "saving…";
    else if (this.dirty) status.textContent = `unsaved changes (from version ${this.version})`;
    else status.textContent = `saved · version ${this.version}`;
    status.classList.toggle("dirty", this.dirty);
    $("roi-save").disabled = !this.dirty || this.saving;
    $("roi-discard").disabled = !this.dirty || this.saving;

    const banner = $("roi-banner");
    if (this.pending) {
      banner.replaceChildren(
        el("span", {}, "The ROIs were changed elsewhere — reloaded; re-apply your edit. ",
          el("span", { class: "muted" }, "(your version is drawn dashed)")),
        el("span", { class: "banner-actions" },
          el("button", { type: "button", id: "roi-reapply", onclick: () => this.reapply() },
            "Re-apply my edit"),
          el("button", { type: "button", id: "roi-drop",
                         onclick: () => { this.pending = null; this.render(); } },
            "Discard my edit")));
      banner.hidden = false;
    } else if (this.remote && this.dirty) {
      banner.replaceChildren(
        el("span", {}, `The ROIs were changed elsewhere (version ${this.remote.version}); ` +
          "saving your draft will be refused. "),
        el("span", { class: "banner-actions" },
          el("button", { type: "button", onclick: () => this.reloadAfterConflict() },
            "Reload, keep my edit")));
      banner.hidden = false;
    } else {
      banner.hidden = true;
      banner.replaceChildren();
    }
  },
};
