// Celestra's UI: draws the page the path names from what the REST API of this same server answers.
// No framework and no build step: DOM built with textContent only (nothing the API returns is parsed as HTML).

const API = "/api/v1/main";
const TERMINAL = new Set(["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"]);
const STATES = ["CREATED", "RUNNING", "PAUSED", "SUCCESS", "WARNING", "FAILED", "KILLING", "KILLED", "QUEUED",
                "CANCELLED", "RETRYING", "RETRIED", "RESTARTED", "SKIPPED"];
let leave = [];  // what the current page must stop (timers, event streams) when another is drawn

// -- small helpers ---------------------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function link(path, ...children) {
  return h("a", { href: path, onclick: (event) => { event.preventDefault(); go(path); } }, ...children);
}

function badge(state) { return h("span", { class: `state ${state}`, "data-state": state }, state); }

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
function clock(iso) { return iso ? new Date(iso).toLocaleTimeString() : ""; }

function duration(iso) {  // Kestra's ISO-8601 durations (PT1M2.5S) as 1m 2.5s
  if (!iso) return "";
  const m = /^P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$/.exec(iso);
  if (!m) return iso;
  const [, d, hh, mm, ss] = m;
  const parts = [];
  if (d) parts.push(`${d}d`); if (hh) parts.push(`${hh}h`); if (mm) parts.push(`${mm}m`);
  if (ss || !parts.length) parts.push(`${Number(ss || 0).toFixed(ss && Number(ss) < 10 ? 2 : 0)}s`);
  return parts.join(" ");
}

class ApiError extends Error {}

async function api(path, options = {}) {
  const response = await fetch(API + path, { credentials: "same-origin", ...options });
  if (response.status === 204) return null;
  const text = await response.text();
  let body = text;
  try { body = text ? JSON.parse(text) : null; } catch { /* a text answer */ }
  if (!response.ok) throw new ApiError((body && body.message) || `${response.status} ${response.statusText}`);
  return body;
}

function problem(error) { return h("p", { class: "error" }, String(error.message || error)); }

function every(ms, fn) { const id = setInterval(fn, ms); leave.push(() => clearInterval(id)); }

function setPage(...children) {
  const main = document.getElementById("page");
  main.replaceChildren(...children);
  return main;
}

function encode(part) { return encodeURIComponent(part); }

// -- routing ---------------------------------------------------------------------------------------------
const ROUTES = [
  [/^\/ui\/main\/executions\/?$/, executionsPage],
  [/^\/ui\/main\/executions\/([^/]+)\/([^/]+)\/([^/]+)\/?$/, executionPage],
  [/^\/ui\/main\/flows\/?$/, flowsPage],
  [/^\/ui\/main\/flows\/new\/?$/, () => flowPage(null, null)],
  [/^\/ui\/main\/flows\/edit\/([^/]+)\/([^/]+)\/?$/, flowPage],
  [/^\/ui\/main\/worker-groups\/?$/, workerGroupsPage],
  [/^\/ui\/main\/triggers\/?$/, triggersPage],
];

function go(path) { history.pushState(null, "", path); draw(); }

function draw() {
  leave.forEach((stop) => stop());
  leave = [];
  const path = location.pathname;
  const section = path.split("/")[3] || "executions";
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.dataset.section === section));
  for (const [pattern, page] of ROUTES) {
    const match = pattern.exec(path);
    if (match) { page(...match.slice(1).map(decodeURIComponent)); return; }
  }
  setPage(h("h1", {}, "Not found"), h("p", {}, "No page at ", h("code", {}, path), ". ",
          link("/ui/main/executions", "Executions")));
}

window.addEventListener("popstate", draw);
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("header a").forEach((a) => a.addEventListener("click", (event) => {
    event.preventDefault(); go(a.getAttribute("href"));
  }));
  draw();
});

// -- executions list -------------------------------------------------------------------------------------
function executionsPage() {
  const params = new URLSearchParams(location.search);
  const namespace = h("input", { placeholder: "namespace", value: params.get("namespace") || "", name: "namespace" });
  const flow = h("input", { placeholder: "flow id", value: params.get("flowId") || "", name: "flowId" });
  const state = h("select", { name: "state" }, h("option", { value: "" }, "any state"),
                  STATES.map((s) => h("option", { value: s, selected: params.get("state") === s }, s)));
  const body = h("tbody");
  const total = h("span", { class: "muted" });
  const apply = () => {
    const query = new URLSearchParams();
    if (namespace.value) query.set("namespace", namespace.value);
    if (flow.value) query.set("flowId", flow.value);
    if (state.value) query.set("state", state.value);
    history.replaceState(null, "", `/ui/main/executions${query.toString() ? "?" + query : ""}`);
    refresh();
  };
  [namespace, flow].forEach((el) => el.addEventListener("change", apply));
  state.addEventListener("change", apply);
  async function refresh() {
    const query = new URLSearchParams(location.search);
    query.set("size", "50");
    try {
      const found = await api(`/executions/search?${query}`);
      total.textContent = `${found.total} execution${found.total === 1 ? "" : "s"}`;
      body.replaceChildren(...found.results.map((ex) => h("tr", { "data-execution": ex.id },
        h("td", {}, link(`/ui/main/executions/${encode(ex.namespace)}/${encode(ex.flowId)}/${ex.id}`,
                         h("code", {}, ex.id))),
        h("td", {}, ex.namespace), h("td", {}, ex.flowId), h("td", {}, badge(ex.state.current)),
        h("td", {}, when(ex.state.startDate)), h("td", {}, duration(ex.state.duration)),
        h("td", {}, ex.labels.map((l) => h("span", { class: "tag" }, `${l.key}:${l.value}`))))));
      if (!found.results.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted" },
        "No execution yet: start one from ", link("/ui/main/flows", "Flows"), ".")));
    } catch (error) { body.replaceChildren(h("tr", {}, h("td", { colspan: 7 }, problem(error)))); }
  }
  setPage(h("h1", {}, "Executions"),
          h("div", { class: "toolbar" }, namespace, flow, state, h("span", { class: "grow" }), total),
          h("table", { id: "executions" },
            h("thead", {}, h("tr", {}, ["Id", "Namespace", "Flow", "State", "Started", "Duration", "Labels"]
              .map((c) => h("th", {}, c)))), body));
  refresh();
  every(2000, refresh);  // live state
}

// -- one execution ---------------------------------------------------------------------------------------
function executionPage(namespace, flowId, id) {
  const header = h("div");
  const actions = h("div", { class: "toolbar" });
  const message = h("div");
  const gantt = h("tbody");
  const outputs = h("div");
  const logs = h("div", { class: "logs", id: "logs" }, h("div", { class: "muted" }, "Waiting for logs…"));
  let ex = null;
  let ended = false;

  const act = (label, cls, run) => h("button", { class: cls, "data-action": label.toLowerCase(), onclick: async (e) => {
    e.target.disabled = true;
    message.replaceChildren();
    try { await run(); await refresh(); } catch (error) { message.replaceChildren(problem(error)); }
    e.target.disabled = false;
  } }, label);

  function drawActions() {
    const state = ex.state.current;
    actions.replaceChildren(...[
      !TERMINAL.has(state) && act("Kill", "danger", () => api(`/executions/${id}/kill`, { method: "DELETE" })),
      state === "PAUSED" && act("Resume", "", () => api(`/executions/${id}/resume`, { method: "POST" })),
      ["FAILED", "KILLED", "WARNING"].includes(state) && act("Restart", "secondary",
        () => api(`/executions/${id}/restart`, { method: "POST" })),
      TERMINAL.has(state) && act("Replay", "secondary", async () => {
        const replayed = await api(`/executions/${id}/replay`, { method: "POST" });
        go(`/ui/main/executions/${encode(replayed.namespace)}/${encode(replayed.flowId)}/${replayed.id}`);
      }),
      link(`/ui/main/flows/edit/${encode(namespace)}/${encode(flowId)}`, "Flow")].filter(Boolean));
  }

  function drawHeader() {
    header.replaceChildren(
      h("h1", {}, `${ex.namespace}.${ex.flowId} `, badge(ex.state.current)),
      h("dl", { class: "meta" },
        h("dt", {}, "Execution"), h("dd", {}, h("code", {}, ex.id)),
        h("dt", {}, "Revision"), h("dd", {}, ex.flowRevision),
        h("dt", {}, "Started"), h("dd", {}, when(ex.state.startDate)),
        h("dt", {}, "Duration"), h("dd", { id: "duration" }, duration(ex.state.duration)),
        ex.trigger && [h("dt", {}, "Trigger"), h("dd", {}, `${ex.trigger.id} (${ex.trigger.type})`)],
        ex.labels.length > 0 && [h("dt", {}, "Labels"),
          h("dd", {}, ex.labels.map((l) => h("span", { class: "tag" }, `${l.key}:${l.value}`)))],
        ex.error && [h("dt", {}, "Error"), h("dd", { class: "error" }, ex.error)]));
  }

  function drawGantt() {
    const start = Date.parse(ex.state.startDate);
    const end = ex.state.endDate ? Date.parse(ex.state.endDate) : Date.now();
    const span = Math.max(end - start, 1);
    const depth = new Map();
    for (const run of ex.taskRunList) depth.set(run.id, run.parentTaskRunId ? (depth.get(run.parentTaskRunId) ?? 0) + 1 : 0);
    gantt.replaceChildren(...ex.taskRunList.map((run) => {
      const from = Date.parse(run.state.startDate || ex.state.startDate);
      const to = run.state.endDate ? Date.parse(run.state.endDate) : end;
      const fill = h("div", { class: `fill ${run.state.current}` });
      fill.style.left = `${Math.min(100, ((from - start) / span) * 100)}%`;
      fill.style.width = `${Math.max(0.5, ((to - from) / span) * 100)}%`;
      const name = h("td", {}, h("code", {}, run.taskId), run.value ? h("span", { class: "muted" }, ` [${run.value}]`) : "");
      name.style.paddingLeft = `${10 + 16 * (depth.get(run.id) || 0)}px`;
      return h("tr", { "data-task": run.taskId, "data-task-run": run.id },
        name, h("td", {}, badge(run.state.current)),
        h("td", { class: "worker-group" }, run.workerGroup || h("span", { class: "muted" }, "default")),
        h("td", { class: "worker" }, run.worker || ""),
        h("td", {}, run.attempts.length), h("td", {}, duration(run.state.duration)),
        h("td", { class: "bar", title: `${clock(run.state.startDate)} → ${clock(run.state.endDate)}` },
          h("div", { class: "track" }, fill)));
    }));
  }

  function value(v) {  // an output: kestra:// URIs become downloads of this execution's files
    if (typeof v === "string" && v.startsWith("kestra://")) {
      return h("a", { href: `${API}/executions/${id}/file?path=${encode(v)}`, download: v.split("/").pop() }, v);
    }
    if (v !== null && typeof v === "object") return h("pre", {}, JSON.stringify(v, null, 2));
    return h("code", {}, String(v));
  }

  function rows(map) {
    return Object.entries(map || {}).map(([key, v]) => h("tr", {}, h("td", {}, h("code", {}, key)), h("td", {}, value(v))));
  }

  function drawOutputs() {
    const sections = [];
    if (Object.keys(ex.inputs || {}).length) sections.push(h("h2", {}, "Inputs"), h("table", {}, h("tbody", {}, rows(ex.inputs))));
    if (Object.keys(ex.outputs || {}).length) sections.push(h("h2", {}, "Flow outputs"), h("table", {}, h("tbody", {}, rows(ex.outputs))));
    const produced = ex.taskRunList.filter((run) => run.outputs && Object.keys(run.outputs).length);
    if (produced.length) {
      sections.push(h("h2", {}, "Task outputs"), h("table", { id: "outputs" }, h("tbody", {}, produced.map((run) =>
        h("tr", {}, h("td", {}, h("code", {}, run.taskId), run.value ? ` [${run.value}]` : ""),
          h("td", {}, h("table", {}, h("tbody", {}, rows(run.outputs)))))))));
    }
    outputs.replaceChildren(...sections);
  }

  async function refresh() {
    try {
      ex = await api(`/executions/${id}`);
    } catch (error) { message.replaceChildren(problem(error)); return; }
    drawHeader(); drawActions(); drawGantt(); drawOutputs();
    ended = TERMINAL.has(ex.state.current);
  }

  function follow() {  // the logs as server-sent events, until the execution ends
    const source = new EventSource(`${API}/logs/${id}/follow`);
    let first = true;
    source.addEventListener("log", (event) => {
      const row = JSON.parse(event.data);
      if (first) { logs.replaceChildren(); first = false; }
      const stick = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      logs.append(h("div", { class: `line ${row.level}` }, h("span", {}, clock(row.timestamp)),
        h("span", {}, row.level), h("span", {}, row.taskId || ""), h("pre", {}, row.message)));
      if (stick) logs.scrollTop = logs.scrollHeight;
    });
    source.addEventListener("end", () => {
      source.close();
      if (first) logs.replaceChildren(h("div", { class: "muted" }, "No log lines."));
    });
    source.onerror = () => { if (ended) source.close(); };
    leave.push(() => source.close());
  }

  setPage(header, actions, message,
          h("h2", {}, "Task runs"),
          h("table", { class: "gantt", id: "task-runs" }, h("thead", {}, h("tr", {},
            ["Task", "State", "Worker group", "Worker", "Attempts", "Duration", "Timeline"].map((c) => h("th", {}, c)))),
            gantt),
          h("h2", {}, "Logs"), logs, outputs);
  refresh().then(follow);
  every(1000, () => { if (!ended) refresh(); });
}

// -- flows -----------------------------------------------------------------------------------------------
async function flowsPage() {
  const body = h("tbody");
  setPage(h("h1", {}, "Flows"),
          h("div", { class: "toolbar" }, h("button", { onclick: () => go("/ui/main/flows/new") }, "New flow")),
          h("table", { id: "flows" }, h("thead", {}, h("tr", {}, ["Namespace", "Flow", "Revision", "Triggers"]
            .map((c) => h("th", {}, c)))), body));
  try {
    const found = await api("/flows/search?size=1000");
    body.replaceChildren(...found.results.map((flow) => h("tr", {},
      h("td", {}, flow.namespace),
      h("td", {}, link(`/ui/main/flows/edit/${encode(flow.namespace)}/${encode(flow.id)}`, flow.id)),
      h("td", {}, flow.revision), h("td", {}, (flow.triggers || []).map((t) => h("span", { class: "tag" }, t.id))))));
    if (!found.results.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No flow deployed yet.")));
  } catch (error) { body.replaceChildren(h("tr", {}, h("td", { colspan: 4 }, problem(error)))); }
}

const NEW_FLOW = `id: hello
namespace: company.team

inputs:
  - id: name
    type: STRING
    defaults: world

tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}"
`;

async function flowPage(namespace, flowId) {
  const isNew = namespace === null;
  const text = h("textarea", { spellcheck: "false", id: "source", "aria-label": "Flow YAML" });
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const problems = h("ul", { class: "problems", id: "problems" });
  const message = h("div");
  const form = h("form", { class: "form panel", id: "execute" });
  let bad = new Set();

  const lines = () => {
    const count = text.value.split("\n").length;
    gutter.replaceChildren(...Array.from({ length: count }, (_, i) => h("span", { class: bad.has(i + 1) ? "bad" : "" }, i + 1)));
    gutter.scrollTop = text.scrollTop;
  };
  const goToLine = (line) => {
    const starts = text.value.split("\n").slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    text.focus();
    text.setSelectionRange(starts, starts + (text.value.split("\n")[line - 1] || "").length);
    text.scrollTop = Math.max(0, (line - 5) * 18);
  };
  async function validate() {
    try {
      const [result] = await api("/flows/validate", { method: "POST", headers: { "Content-Type": "application/x-yaml" },
                                                     body: text.value });
      const found = result && result.constraints ? result.constraints.split("\n") : [];
      bad = new Set();
      problems.replaceChildren(...(found.length ? found.map((p) => {
        const at = /^<yaml>:(\d+)(?::(\d+))?:\s*(.*)$/s.exec(p);
        if (at) bad.add(Number(at[1]));
        return h("li", { "data-line": at ? at[1] : "", onclick: () => at && goToLine(Number(at[1])) },
                 at ? `line ${at[1]}: ${at[3]}` : p);
      }) : [h("li", { class: "ok" }, "Valid")]));
      lines();
      return !found.length;
    } catch (error) { problems.replaceChildren(h("li", {}, String(error.message))); return false; }
  }
  let pending = null;
  text.addEventListener("input", () => { lines(); clearTimeout(pending); pending = setTimeout(validate, 500); });
  text.addEventListener("scroll", () => { gutter.scrollTop = text.scrollTop; });
  text.addEventListener("keydown", (event) => {  // Tab indents instead of leaving the editor
    if (event.key !== "Tab") return;
    event.preventDefault();
    text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end");
    lines();
  });

  async function save() {
    message.replaceChildren();
    if (!(await validate())) { message.replaceChildren(problem(new Error("Fix the problems listed first."))); return; }
    try {
      const options = { headers: { "Content-Type": "application/x-yaml" }, body: text.value };
      const saved = isNew ? await api("/flows", { method: "POST", ...options })
        : await api(`/flows/${encode(namespace)}/${encode(flowId)}`, { method: "PUT", ...options });
      message.replaceChildren(h("p", { class: "muted" }, `Saved revision ${saved.revision}.`));
      if (isNew) go(`/ui/main/flows/edit/${encode(saved.namespace)}/${encode(saved.id)}`);
      else drawForm(saved);
    } catch (error) { message.replaceChildren(problem(error)); }
  }

  function field(input) {  // one input of the flow as a form field, by its type
    const name = input.id;
    const required = input.required !== false && input.defaults === undefined;
    const initial = input.defaults === undefined ? "" : input.defaults;
    let control;
    switch (input.type) {
      case "INT": case "FLOAT":
        control = h("input", { type: "number", name, step: input.type === "INT" ? "1" : "any", value: initial, required }); break;
      case "BOOLEAN": case "BOOL":
        control = h("select", { name }, ["true", "false"].map((v) => h("option", { value: v, selected: String(initial) === v }, v))); break;
      case "SELECT": case "ENUM":
        control = h("select", { name, required }, (input.values || []).map((v) => h("option", { value: v, selected: initial === v }, v))); break;
      case "DATE": control = h("input", { type: "date", name, value: initial, required }); break;
      case "DATETIME": control = h("input", { type: "text", name, value: initial, required, placeholder: "2026-01-31T10:00:00Z" }); break;
      case "FILE": control = h("input", { type: "file", name, required }); break;
      case "SECRET": control = h("input", { type: "password", name, required, autocomplete: "off" }); break;
      case "JSON": case "YAML": case "ARRAY": case "MULTISELECT":
        control = h("textarea", { name, rows: 3, required }, typeof initial === "string" ? initial : JSON.stringify(initial)); break;
      default: control = h("input", { type: "text", name, value: initial, required });
    }
    return h("label", {}, h("span", { class: "name" }, input.displayName || name),
      h("span", { class: "hint" }, `${input.type}${required ? ", required" : ""}${input.description ? " — " + input.description : ""}`),
      control);
  }

  function drawForm(flow) {
    const inputs = (flow.inputs || []).filter((i) => i && i.id);
    const result = h("div");
    form.replaceChildren(h("h2", {}, "Execute"), ...inputs.map(field),
      inputs.length ? "" : h("p", { class: "muted" }, "This flow has no inputs."),
      h("button", { type: "submit", id: "run" }, "Execute"), result);
    form.onsubmit = async (event) => {
      event.preventDefault();
      result.replaceChildren();
      const data = new FormData(form);
      // An empty field is not given: the input takes its default (or is refused as missing, saying which).
      for (const [key, v] of [...data.entries()]) if ((v instanceof File && !v.name) || v === "") data.delete(key);
      try {
        const started = await api(`/executions/${encode(flow.namespace)}/${encode(flow.id)}`, { method: "POST", body: data });
        go(`/ui/main/executions/${encode(started.namespace)}/${encode(started.flowId)}/${started.id}`);
      } catch (error) { result.replaceChildren(problem(error)); }
    };
  }

  setPage(h("h1", {}, isNew ? "New flow" : `${namespace}.${flowId}`),
          h("div", { class: "toolbar" }, h("button", { onclick: save, id: "save" }, isNew ? "Create" : "Save"),
            h("button", { class: "secondary", onclick: validate }, "Validate"),
            !isNew && link(`/ui/main/executions?namespace=${encode(namespace)}&flowId=${encode(flowId)}`, "Executions")),
          message,
          h("div", { class: "columns" },
            h("div", {}, h("div", { class: "editor" }, gutter, text), problems),
            isNew ? h("p", { class: "muted" }, "Create the flow to execute it.") : form));
  if (isNew) { text.value = NEW_FLOW; lines(); validate(); return; }
  try {
    const flow = await api(`/flows/${encode(namespace)}/${encode(flowId)}`);
    text.value = flow.source;
    lines();
    drawForm(flow);
  } catch (error) { message.replaceChildren(problem(error)); }
}

// -- worker groups ---------------------------------------------------------------------------------------
function workerGroupsPage() {
  const body = h("tbody");
  const note = h("p", { class: "muted" });
  async function refresh() {
    try {
      const found = await api("/celestra/worker-groups");
      note.textContent = found.embedded
        ? "Embedded mode: this process's own worker serves every group (there are no separate workers)."
        : `Tasks with no worker group go to the queue "${found.defaultQueue}".`;
      body.replaceChildren(...found.results.map((group) => h("tr", { "data-group": group.key },
        h("td", {}, h("code", {}, group.key), group.declared ? "" : h("span", { class: "muted" }, " (not declared)"),
          group.description ? h("div", { class: "muted" }, group.description) : ""),
        h("td", { class: "workers" }, group.workers.length ? group.workers.map((w) => h("div", {},
          h("code", {}, w.id), h("span", { class: "muted" }, ` pid ${w.pid}, beat ${clock(w.heartbeat)}`),
          w.running.map((r) => h("div", {}, "↳ ", link(`/ui/main/executions/${encode(r.namespace)}/${encode(r.flowId)}/${r.executionId}`,
            `${r.namespace}.${r.flowId} / ${r.taskId}`))))) : h("span", { class: "error" }, found.embedded ? "embedded" : "none alive")),
        h("td", {}, group.queued === null || group.queued === undefined ? "" : group.queued),
        h("td", {}, group.defaultOf.map((d) => h("div", {}, `${d.namespace}: fallback ${d.fallback}`))))));
      if (!found.results.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No worker group declared or served.")));
    } catch (error) { body.replaceChildren(h("tr", {}, h("td", { colspan: 4 }, problem(error)))); }
  }
  setPage(h("h1", {}, "Worker groups"), note,
          h("table", { id: "worker-groups" }, h("thead", {}, h("tr", {},
            ["Group", "Live workers and what they run", "Queued", "Default of (fallback)"].map((c) => h("th", {}, c)))), body));
  refresh();
  every(3000, refresh);
}

// -- triggers --------------------------------------------------------------------------------------------
function triggersPage() {
  const body = h("tbody");
  async function refresh() {
    try {
      const found = await api("/celestra/triggers");
      body.replaceChildren(...found.results.map((t) => {
        const s = t.state || {};
        return h("tr", { "data-trigger": `${t.namespace}.${t.flowId}.${t.id}` },
          h("td", {}, link(`/ui/main/flows/edit/${encode(t.namespace)}/${encode(t.flowId)}`, `${t.namespace}.${t.flowId}`)),
          h("td", {}, h("code", {}, t.id), t.disabled ? h("span", { class: "tag" }, "disabled") : ""),
          h("td", {}, t.type.split(".").pop()), h("td", {}, t.workerGroup || ""),
          h("td", {}, s.evaluatingSince ? `evaluating since ${clock(s.evaluatingSince)}` : when(s.nextDate)),
          h("td", {}, s.lastResult ? `${s.lastResult} (${clock(s.lastEvaluated)} on ${s.evaluatedOn || "?"})` : ""),
          h("td", {}, s.lastExecutionId ? link(`/ui/main/executions/${encode(t.namespace)}/${encode(t.flowId)}/${s.lastExecutionId}`,
            when(s.lastDate) || s.lastExecutionId) : ""));
      }));
      if (!found.results.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No deployed flow has a trigger.")));
    } catch (error) { body.replaceChildren(h("tr", {}, h("td", { colspan: 7 }, problem(error)))); }
  }
  setPage(h("h1", {}, "Triggers"),
          h("table", { id: "triggers" }, h("thead", {}, h("tr", {},
            ["Flow", "Trigger", "Type", "Worker group", "Next", "Last evaluation", "Last execution"].map((c) => h("th", {}, c)))), body));
  refresh();
  every(5000, refresh);
}
