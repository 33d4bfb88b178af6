// Module selection with a parameter form generated from the module's PARAMS_SCHEMA
// (GET /api/modules). Applying sends module/set {"name", "params"}; the server validates
// with the same schema and its errors ($.params.<field>) are shown next to the field.
"use strict";
import { el, $, toast, describeError } from "./dom.js";
import { api, getJSON } from "./net.js";

export class ModuleForm {
  constructor() {
    this.select = $("module");
    this.fields = $("module-params");
    this.formError = $("module-error");
    this.applyButton = $("module-apply");
    this.schemas = new Map();   // name -> params_schema (or null)
    this.names = [];
    this.current = null;        // module running on the node
    this.currentParams = {};
    this.rendered = null;       // module whose form is on screen
    this.dirty = false;         // the user changed the select or a field: keep their input
    this.loading = null;

    this.select.addEventListener("change", () => {
      this.dirty = this.select.value !== this.current;
      this.render(this.select.value);
    });
    this.fields.addEventListener("input", () => { this.dirty = true; });
    $("module-form").addEventListener("submit", (e) => { e.preventDefault(); this.apply(); });
    $("module-defaults").addEventListener("click", () => {
      this.dirty = true;
      this.render(this.select.value, true);
    });
  }

  // The module list with schemas; fetched again when a module file appears on the node.
  async loadSchemas() {
    if (this.loading) return this.loading;
    this.loading = (async () => {
      const list = await getJSON("/api/modules");
      if (Array.isArray(list)) {
        for (const m of list) this.schemas.set(m.name, m.params_schema || null);
      }
      this.loading = null;
      if (this.select.value) this.render(this.select.value);
    })();
    return this.loading;
  }

  update(state) {
    const names = state.modules || [];
    if (names.join(",") !== this.names.join(",")) {
      this.names = names;
      const keep = this.select.value;
      this.select.replaceChildren(...names.map((n) => new Option(n, n)));
      if (keep && names.includes(keep)) this.select.value = keep;
      if (names.some((n) => !this.schemas.has(n))) this.loadSchemas();
    }
    const changed = state.module !== this.current ||
      JSON.stringify(state.module_params || {}) !== JSON.stringify(this.currentParams);
    this.current = state.module || null;
    this.currentParams = state.module_params || {};
    // Follow the node (another client may have switched module) unless the user is busy
    // with the form: their unsent input wins until they apply or pick the module again.
    if (!this.dirty && changed && this.current) {
      this.select.value = this.current;
      this.render(this.current);
    } else if (this.rendered === null && this.select.value) {
      this.render(this.select.value);
    }
    $("module-running").textContent = this.current ? `running: ${this.current}` : "";
    this.applyButton.textContent = this.select.value === this.current ? "Apply" : "Use module";
  }

  // Build one input per schema property. `useDefaults` ignores the node's current values.
  render(name, useDefaults = false) {
    this.rendered = name;
    this.formError.textContent = "";
    this.applyButton.textContent = name === this.current ? "Apply" : "Use module";
    const schema = this.schemas.get(name);
    const props = (schema && schema.properties) || {};
    const values = !useDefaults && name === this.current ? this.currentParams : {};
    const rows = Object.entries(props).map(([key, prop]) =>
      this.field(key, prop, values[key], (schema.required || []).includes(key)));
    this.fields.replaceChildren(...rows);
    $("module-defaults").hidden = rows.length === 0;
    if (!rows.length) {
      this.fields.append(el("p", { class: "muted" },
        schema === undefined ? "" : "This module has no parameters."));
    }
  }

  field(key, prop, value, required) {
    const id = `param-${key}`;
    const type = Array.isArray(prop.type) ? prop.type.find((t) => t !== "null") : prop.type;
    const label = prop.title || key.replace(/_/g, " ");
    const initial = value !== undefined ? value : prop.default;
    let input;
    let extra = null;
    if (type === "boolean") {
      input = el("input", { type: "checkbox", id, checked: Boolean(initial) });
      return el("div", { class: "param check", dataset: { key, type } },
        el("label", { for: id }, input, " ", label),
        prop.description ? el("small", {}, prop.description) : null,
        el("span", { class: "field-error", id: `${id}-error` }));
    } else if (type === "array" && prop.items && Array.isArray(prop.items.enum)) {
      // A list of choices (e.g. the labels a detector tracks): a multiple select.
      const chosen = Array.isArray(initial) ? initial : [];
      input = el("select", { id, multiple: true, size: String(Math.min(8, prop.items.enum.length)) },
        prop.items.enum.map((v) => new Option(String(v), JSON.stringify(v), false,
          chosen.includes(v))));
    } else if (type === "array" || type === "object") {
      // Anything else structured (e.g. {"Driveway": ["car"]}): JSON, checked by the server.
      input = el("input", {
        type: "text", id, spellcheck: "false", class: "json",
        placeholder: prop.default !== undefined ? JSON.stringify(prop.default) : "",
        value: initial !== undefined ? JSON.stringify(initial) : "",
      });
    } else if (Array.isArray(prop.enum)) {
      input = el("select", { id, required },
        prop.enum.map((v) => new Option(String(v), JSON.stringify(v))));
      if (initial !== undefined) input.value = JSON.stringify(initial);
    } else if (type === "number" || type === "integer") {
      const step = type === "integer" ? "1" : "any";
      input = el("input", {
        type: "number", id, step, inputmode: type === "integer" ? "numeric" : "decimal",
        min: prop.minimum, max: prop.maximum, required,
        placeholder: prop.default !== undefined ? String(prop.default) : "",
        value: initial !== undefined ? String(initial) : "",
      });
      // A slider as well when the range is known: easier with a thumb than a keypad.
      if (typeof prop.minimum === "number" && typeof prop.maximum === "number") {
        const range = el("input", {
          type: "range", min: prop.minimum, max: prop.maximum, tabindex: "-1",
          "aria-hidden": "true",
          step: type === "integer" ? "1" : String((prop.maximum - prop.minimum) / 200),
          value: initial !== undefined ? String(initial) : String(prop.minimum),
        });
        range.addEventListener("input", () => { input.value = range.value; });
        input.addEventListener("input", () => { if (input.value !== "") range.value = input.value; });
        extra = range;
      }
    } else {
      input = el("input", {
        type: "text", id, required, pattern: prop.pattern, maxlength: prop.maxLength,
        value: initial !== undefined ? String(initial) : "",
      });
    }
    const range = typeof prop.minimum === "number" || typeof prop.maximum === "number"
      ? ` (${prop.minimum ?? "…"}–${prop.maximum ?? "…"})` : "";
    const kind = Array.isArray(prop.enum) ? "enum"
      : type === "array" && prop.items && Array.isArray(prop.items.enum) ? "multi"
        : type === "array" || type === "object" ? "json" : type;
    return el("div", { class: "param", dataset: { key, type: kind } },
      el("label", { for: id }, label, el("span", { class: "muted" }, range)),
      el("div", { class: "param-input" }, input, extra),
      prop.description ? el("small", {}, prop.description) : null,
      el("span", { class: "field-error", id: `${id}-error` }));
  }

  // Values as the schema wants them; empty number/text fields are left out so the
  // module's default applies.
  collect() {
    const params = {};
    for (const row of this.fields.querySelectorAll(".param")) {
      const { key, type } = row.dataset;
      const input = row.querySelector("input:not([type=range]), select");
      if (type === "boolean") params[key] = input.checked;
      else if (type === "enum") params[key] = JSON.parse(input.value);
      else if (type === "multi") params[key] = [...input.selectedOptions].map((o) => JSON.parse(o.value));
      else if (type === "json") {
        if (input.value.trim() === "") continue;
        try { params[key] = JSON.parse(input.value); } catch { params[key] = input.value; }  // the server says what is wrong
      }
      else if (input.value === "") continue;
      else if (type === "number" || type === "integer") params[key] = Number(input.value);
      else params[key] = input.value;
    }
    return params;
  }

  clearErrors() {
    this.formError.textContent = "";
    for (const e of this.fields.querySelectorAll(".field-error")) e.textContent = "";
    for (const e of this.fields.querySelectorAll(".invalid")) e.classList.remove("invalid");
  }

  async apply() {
    const name = this.select.value;
    if (!name) return;
    this.clearErrors();
    const payload = { name };
    if (this.schemas.get(name)) payload.params = this.collect();
    this.applyButton.disabled = true;
    const reply = await api("module/set", payload);
    this.applyButton.disabled = false;
    if (reply.status === "ok") {
      this.dirty = false;
      toast(`module ${name} selected`);
      return;
    }
    // "$.params.sensitivity" -> the sensitivity field; anything else under the form.
    const loose = [];
    for (const d of reply.error.details || []) {
      const m = /^\$\.params\.([A-Za-z0-9_]+)/.exec(d.path || "");
      const slot = m && $(`param-${m[1]}-error`);
      if (slot) {
        slot.textContent = d.reason;
        slot.closest(".param").classList.add("invalid");
      } else {
        loose.push(d.path && d.path !== "$" ? `${d.path}: ${d.reason}` : d.reason);
      }
    }
    this.formError.textContent = loose.length ? `${reply.error.message}: ${loose.join("; ")}`
      : reply.error.message;
    toast(`module/set: ${describeError(reply.error)}`, true);
  }
}
