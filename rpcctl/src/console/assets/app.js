// The console's page script: three views over the JSON API under /api, rendered with
// textContent only (registry data is never parsed as HTML). No framework, no build step.
"use strict";

const REFRESH_MS = 2000;
const KINDS = ["exact", "prefix", "regex", "cidr"];
let timer = null;
let live = null;

// --- the API ---------------------------------------------------------------------------

function token() {
  const given = new URLSearchParams(location.search).get("token");
  if (given) {
    sessionStorage.setItem("console-token", given);
    history.replaceState(null, "", location.pathname + location.hash);
  }
  return sessionStorage.getItem("console-token");
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || response.status + " " + response.statusText);
    error.field = body && body.field;
    throw error;
  }
  return body;
}

const keyPath = (key) => "/api/services/" + encodeURIComponent(key);

// --- small DOM helpers -----------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else if (name === "value") node.value = value;
    else if (name === "checked") node.checked = true;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function status(text, bad) {
  const node = document.getElementById("status");
  node.textContent = text || "";
  node.className = bad ? "bad" : "";
}

// Puts `message` next to the element whose data-field is the longest prefix of `field`
// (a document path such as conditions[0].then.zone); the form's own line otherwise.
function fieldError(scope, field, message) {
  clearErrors(scope);
  let best = null;
  for (const node of scope.querySelectorAll("[data-field]")) {
    const name = node.dataset.field;
    const fits = field === name || (field && field.startsWith(name) && ".[".includes(field[name.length]));
    if (fits && (!best || name.length > best.dataset.field.length)) best = node;
  }
  const note = el("span", { class: "field-error", "data-error-for": field || "" }, message);
  if (best) best.after(note);
  else scope.querySelector(".form-error").append(note);
}

function clearErrors(scope) {
  for (const node of scope.querySelectorAll(".field-error")) node.remove();
}

// --- routing between views -------------------------------------------------------------

function route() {
  clearInterval(timer);
  if (live) { live.close(); live = null; }
  const hash = location.hash || "#/";
  const main = document.getElementById("main");
  main.replaceChildren();
  if (hash.startsWith("#/service/")) serviceView(main, decodeURIComponent(hash.slice(10)));
  else if (hash === "#/live") liveView(main);
  else servicesView(main);
}

// --- Services --------------------------------------------------------------------------

function servicesView(main) {
  const search = el("input", { id: "search", type: "search", placeholder: "search services" });
  const body = el("tbody");
  main.append(el("h1", {}, "Services"), search,
    el("table", { id: "services" },
      el("thead", {}, el("tr", {}, ["Service", "Version", "Providers", "Disabled", "Health"].map((h) => el("th", {}, h)))),
      body));
  let rows = [];
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    body.replaceChildren(...rows.filter((s) => s.key.toLowerCase().includes(needle)).map((s) =>
      el("tr", { class: "service", "data-key": s.key },
        el("td", {}, el("a", { href: "#/service/" + encodeURIComponent(s.key) }, s.service)),
        el("td", {}, s.version),
        el("td", { class: "providers" }, s.providers),
        el("td", { class: "disabled" }, s.disabled),
        el("td", { class: "health " + s.health }, s.health))));
    if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 5 }, "no services")));
  };
  search.addEventListener("input", draw);
  const load = async () => {
    try { rows = (await api("/api/services")).services; draw(); status(""); }
    catch (e) { status(e.message, true); }
  };
  load();
  timer = setInterval(load, REFRESH_MS);
}

// --- Service ---------------------------------------------------------------------------

function age(ms) {
  if (ms === null || ms === undefined) return "?";
  const s = Math.floor(ms / 1000);
  return s < 60 ? s + "s" : s < 3600 ? Math.floor(s / 60) + "m" : Math.floor(s / 3600) + "h";
}

function lease(value) {
  if (value === "unknown") return "unknown";
  if (value === null) return "none";
  return value.expired ? "expired" : value.ttl_secs + "s/" + value.granted_ttl_secs + "s";
}

function traffic(t) {
  if (!t) return "no admin endpoint";
  if (t.error) return "unavailable: " + t.error;
  if (t.qps === null) return t.calls + " calls so far";
  const err = t.error_rate === null ? "-" : (100 * t.error_rate).toFixed(1) + "%";
  const p99 = t.p99_ms === null ? "-" : t.p99_ms.toFixed(2) + " ms";
  return t.qps.toFixed(1) + " qps, " + err + " errors, p99 " + p99;
}

function serviceView(main, key) {
  const providers = el("tbody");
  const overrides = el("textarea", { id: "overrides-json", rows: 6, "data-field": "", spellcheck: "false" });
  const routesJson = el("textarea", { id: "routes-json", rows: 10, "data-field": "", spellcheck: "false" });
  const rules = el("div", { id: "rules" });
  const tagForce = el("input", { type: "checkbox", id: "tag-force", "data-field": "tag" });
  // Disabled until the stored documents are shown, so nothing typed is replaced by them.
  const routesForm = el("form", { id: "routes-form", inert: true },
    el("label", {}, tagForce, " tagged calls with no provider of their tag fail (tag.force)"),
    rules,
    el("button", { type: "button", id: "add-rule", on: { click: () => rules.append(ruleForm(rules.children.length, null)) } }, "Add condition rule"),
    el("button", { type: "submit", id: "save-routes" }, "Save routes"),
    el("span", { class: "saved", id: "routes-saved" }),
    el("div", { class: "form-error" }));
  const routesRaw = el("form", { id: "routes-raw", inert: true }, routesJson,
    el("button", { type: "submit", id: "save-routes-json" }, "Save routes JSON"), el("div", { class: "form-error" }));
  const overridesForm = el("form", { id: "overrides-form", inert: true }, overrides,
    el("button", { type: "submit", id: "save-overrides" }, "Save overrides JSON"),
    el("span", { class: "saved", id: "overrides-saved" }), el("div", { class: "form-error" }));
  const explainForm = el("form", { id: "explain" },
    el("input", { id: "explain-method", placeholder: "method" }),
    el("input", { id: "explain-tag", placeholder: "tag" }),
    el("input", { id: "explain-caller", placeholder: "caller" }),
    el("button", { type: "submit", id: "explain-go" }, "Which providers would this call reach?"),
    el("div", { id: "explain-result" }), el("div", { class: "form-error" }));
  main.append(
    el("h1", {}, key),
    el("table", { id: "providers" }, el("thead", {}, el("tr", {},
      ["Address", "Weight", "Tag", "Metadata", "Age", "Lease TTL", "Transport", "State", "Traffic", "Actions"].map((h) => el("th", {}, h)))), providers),
    el("h2", {}, "Which providers would a call reach"), explainForm,
    el("h2", {}, "Routes"), routesForm, el("h3", {}, "Routes as JSON"), routesRaw,
    el("h2", {}, "Overrides as JSON"), overridesForm);

  const showRoutes = (doc) => {
    const routes = doc || { version: 1 };
    routesJson.value = JSON.stringify(routes, null, 2);
    tagForce.checked = !!(routes.tag && routes.tag.force);
    rules.replaceChildren(...(routes.conditions || []).map((rule, i) => ruleForm(i, rule)));
  };
  const showOverrides = (doc) => { overrides.value = JSON.stringify(doc || { version: 1 }, null, 2); };

  const load = async (documentsToo) => {
    try {
      const page = await api(keyPath(key));
      providers.replaceChildren(...page.providers.map((p) => providerRow(key, p, () => load(true))));
      if (!page.providers.length) providers.append(el("tr", {}, el("td", { colspan: 10 }, "no providers")));
      if (documentsToo) {
        if (page.routes.error) status("stored routes do not validate: " + page.routes.error, true);
        else showRoutes(page.routes.document);
        if (page.overrides.error) status("stored overrides do not validate: " + page.overrides.error, true);
        else showOverrides(page.overrides.document);
        for (const form of [routesForm, routesRaw, overridesForm]) form.inert = false;
      }
    } catch (e) { status(e.message, true); }
  };

  const save = async (form, path, documentOf, show, saved) => {
    clearErrors(form);
    document.getElementById(saved).textContent = "";
    let doc;
    try { doc = documentOf(); } catch (e) { fieldError(form, e.field, e.message); return; }
    try {
      await api(path, { method: "PUT", body: JSON.stringify(doc) });
      // What is shown is what the registry holds now, read again.
      show(await api(path));
      document.getElementById(saved).textContent = "saved; showing what is stored";
    } catch (e) { fieldError(form, e.field, e.message); }
  };
  const routesPath = keyPath(key) + "/routes";
  routesForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    save(routesForm, routesPath, () => formRoutes(tagForce, rules), (r) => showRoutes(r.routes), "routes-saved");
  });
  routesRaw.addEventListener("submit", (ev) => {
    ev.preventDefault();
    save(routesRaw, routesPath, () => parseJson(routesJson.value), (r) => showRoutes(r.routes), "routes-saved");
  });
  overridesForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    save(overridesForm, keyPath(key) + "/overrides", () => parseJson(overrides.value), (r) => showOverrides(r.overrides), "overrides-saved");
  });
  explainForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(explainForm);
    const query = new URLSearchParams({
      method: document.getElementById("explain-method").value,
      tag: document.getElementById("explain-tag").value,
      caller: document.getElementById("explain-caller").value,
    });
    const out = document.getElementById("explain-result");
    try {
      const answer = await api(keyPath(key) + "/explain?" + query);
      out.replaceChildren(
        el("div", { class: "reached" }, answer.reached.length ? "reaches " + answer.reached.join(", ") : "reaches no provider"),
        el("div", { class: "decision" }, answer.decision));
    } catch (e) { fieldError(explainForm, null, e.message); }
  });
  load(true);
  timer = setInterval(() => load(false), REFRESH_MS);
}

function parseJson(text) {
  try { return JSON.parse(text); }
  catch (e) { const error = new Error("not JSON: " + e.message); error.field = ""; throw error; }
}

function providerRow(key, p, reload) {
  const weight = el("input", { class: "weight-input", type: "number", min: 1, max: 1000000, value: p.weight_override || p.weight, "data-field": "weight" });
  const row = el("tr", { class: "provider" + (p.disabled ? " is-disabled" : ""), "data-address": p.address });
  const act = async (path, body) => {
    clearErrors(row);
    try { await api(keyPath(key) + path, { method: "POST", body: JSON.stringify(body) }); await reload(); }
    // The document path of a bad weight (addresses.HOST:PORT.weight) is this row's input.
    catch (e) { fieldError(row, !e.field || e.field.endsWith(".weight") ? "weight" : e.field, e.message); }
  };
  const toggle = p.disabled
    ? el("button", { class: "enable", "data-address": p.address, on: { click: () => act("/enable", { address: p.address }) } }, "Enable")
    : el("button", { class: "disable", "data-address": p.address, on: { click: () => act("/disable", { address: p.address }) } }, "Disable");
  const metadata = Object.entries(p.metadata || {}).map(([k, v]) => k + "=" + v).join(" ");
  row.append(
    el("td", { class: "address" }, p.address),
    el("td", { class: "weight" }, p.weight_override ? p.weight_override + " (registered " + p.weight + ")" : p.weight),
    el("td", { class: "tag" }, p.tag || "-"),
    el("td", { class: "metadata" }, metadata),
    el("td", { class: "age" }, age(p.age_ms)),
    el("td", { class: "lease" }, lease(p.lease)),
    el("td", { class: "transport" }, p.transport),
    el("td", { class: "state" }, p.disabled ? "disabled" : "enabled"),
    el("td", { class: "traffic" }, traffic(p.traffic)),
    el("td", { class: "actions" }, toggle, weight,
      el("button", { class: "set-weight", on: { click: () => act("/weight", { address: p.address, weight: weight.value }) } }, "Set weight"),
      el("div", { class: "form-error" })));
  return row;
}

// One condition rule's fieldset; its inputs carry the document path they fill.
function ruleForm(i, rule) {
  const r = rule || { name: "", then: {} };
  const at = "conditions[" + i + "]";
  const matcher = (cls, field, m) => {
    const [kind, value] = m ? Object.entries(m)[0] : ["exact", ""];
    return el("span", { class: cls, "data-field": field },
      el("select", { class: "kind" }, KINDS.map((k) => el("option", { value: k, selected: k === kind }, k))),
      el("input", { class: "value", value }));
  };
  const when = r.when || {};
  const thenRows = el("div", { class: "then", "data-field": at + ".then" });
  const addThen = (selector, m) => thenRows.append(el("div", { class: "then-row" },
    el("input", { class: "selector", placeholder: "host, port, address, tag or metadata.KEY", value: selector }),
    matcher("then-matcher", null, m)));
  for (const [selector, m] of Object.entries(r.then || {})) addThen(selector, m);
  if (!thenRows.children.length) addThen("", null);
  const set = el("fieldset", { class: "rule" },
    el("legend", {}, "rule " + (i + 1)),
    el("label", {}, "name ", el("input", { class: "rule-name", value: r.name, "data-field": at + ".name" })),
    el("label", {}, "priority ", el("input", { class: "rule-priority", value: r.priority || 0, "data-field": at + ".priority" })),
    el("label", {}, el("input", { type: "checkbox", class: "rule-force", checked: !!r.force }), " force"),
    el("div", { class: "when" }, "when method ", matcher("when-method", at + ".when.method", when.method),
      " tag ", matcher("when-tag", at + ".when.tag", when.tag),
      " caller ", matcher("when-caller", at + ".when.caller", when.caller)),
    el("div", {}, "then providers where"), thenRows,
    el("button", { type: "button", class: "add-then", on: { click: () => addThen("", null) } }, "Add selector"),
    el("button", { type: "button", class: "remove-rule", on: { click: () => set.remove() } }, "Remove rule"));
  return set;
}

// The routes document the form describes; a value the form itself can tell is wrong is
// reported at its field before anything is sent.
function formRoutes(tagForce, rules) {
  const doc = { version: 1 };
  if (tagForce.checked) doc.tag = { force: true };
  const matcherOf = (span) => {
    const value = span.querySelector(".value").value;
    return value === "" ? null : { [span.querySelector(".kind").value]: value };
  };
  const conditions = [...rules.querySelectorAll("fieldset.rule")].map((set, i) => {
    const fail = (field, message) => { const e = new Error(message); e.field = "conditions[" + i + "]." + field; throw e; };
    const rule = { name: set.querySelector(".rule-name").value.trim() };
    const priority = set.querySelector(".rule-priority").value.trim() || "0";
    if (!/^-?\d+$/.test(priority)) fail("priority", "priority must be a whole number");
    if (Number(priority) !== 0) rule.priority = Number(priority);
    if (set.querySelector(".rule-force").checked) rule.force = true;
    const when = {};
    for (const part of ["method", "tag", "caller"]) {
      const m = matcherOf(set.querySelector(".when-" + part));
      if (m) when[part] = m;
    }
    if (Object.keys(when).length) rule.when = when;
    rule.then = {};
    for (const row of set.querySelectorAll(".then-row")) {
      const selector = row.querySelector(".selector").value.trim();
      const m = matcherOf(row.querySelector(".then-matcher"));
      if (selector && m) rule.then[selector] = m;
      else if (selector || m) fail("then", "give both a selector and a value");
    }
    return rule;
  });
  if (conditions.length) doc.conditions = conditions;
  return doc;
}

// --- Live ------------------------------------------------------------------------------

function liveView(main) {
  const body = el("tbody");
  const log = el("ul", { id: "live-log" });
  main.append(el("h1", {}, "Live"),
    el("table", { id: "live-providers" }, el("thead", {}, el("tr", {},
      ["Service", "Address", "Weight", "Metadata"].map((h) => el("th", {}, h)))), body),
    el("h2", {}, "Events"), log);
  const rowOf = (key, address) => [...body.children].find((r) => r.dataset.key === key && r.dataset.address === address);
  const note = (text) => {
    log.prepend(el("li", {}, new Date().toISOString().slice(11, 23) + "  " + text));
    while (log.children.length > 500) log.lastChild.remove();
  };
  const connect = () => {
    body.replaceChildren();
    const t = token();
    live = new EventSource("/api/events" + (t ? "?token=" + encodeURIComponent(t) : ""));
    live.onopen = () => status("live");
    live.onerror = () => status("reconnecting…", true);
    live.addEventListener("lagged", () => { live.close(); note("fell behind; starting over"); connect(); });
    live.onmessage = (message) => {
      const e = JSON.parse(message.data);
      if (e.event === "rules") { note("rules changed for " + e.key); return; }
      if (e.event === "disconnected" || e.event === "reconnected") { note(e.event + " " + e.key + (e.reason ? ": " + e.reason : "")); return; }
      const old = rowOf(e.key, e.address);
      if (e.event === "leave") { if (old) old.remove(); note("leave " + e.key + " " + e.address); return; }
      const metadata = Object.entries(e.instance.metadata || {}).map(([k, v]) => k + "=" + v).join(" ");
      const row = el("tr", { class: "live", "data-key": e.key, "data-address": e.address },
        el("td", {}, e.key), el("td", {}, e.address), el("td", {}, e.instance.weight), el("td", {}, metadata));
      if (old) old.replaceWith(row); else body.append(row);
      if (e.event !== "present") note(e.event + " " + e.key + " " + e.address);
    };
  };
  connect();
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => { token(); route(); });
