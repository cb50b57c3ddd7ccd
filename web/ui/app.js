// The spored explorer UI. Every string shown comes from signed records and profiles, i.e. from
// strangers: it is only ever placed with textContent or setAttribute, never parsed as HTML, and
// the page's Content-Security-Policy allows no inline script besides.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

/** An element with a class and text; children appended. */
function el(tag, cls, text, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  for (const c of children) if (c) e.appendChild(c);
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}
const short = (id) => (id ? String(id).slice(0, 8) : "-");
const num = (x, d = 6) => (typeof x === "number" ? x.toFixed(d) : "-");
/** A record's time (any number a stranger signed: out-of-range ones are shown as the number). */
const when = (ts) => {
  if (!ts) return "-";
  const d = new Date(ts * 1000);
  return isNaN(d) ? String(ts) : d.toISOString().replace("T", " ").slice(0, 19);
};

async function api(path) {
  const r = await fetch(path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.status);
  return body;
}

const state = {
  task: "",          // "" = the node's active task
  status: "all",
  selected: null,
  view: { x: 40, y: 30, k: 1 },
  tab: "dag",
  node: null,         // the node whose page the detail panel shows
  compare: [],        // record ids side by side in the Compare tab
};
const taskParam = () => (state.task ? `task_id=${encodeURIComponent(state.task)}` : "");

// ---- stats, tasks ---------------------------------------------------------------------------
async function loadStat() {
  const s = await api(`/api/stat?${taskParam()}`);
  const bar = $("#stats");
  bar.replaceChildren();
  const item = (label, value) => bar.appendChild(el("span", null, `${label} `, el("b", null, value)));
  item("experiments", s.experiment_count);
  item("tasks", s.task_count);
  item("nodes", s.node_count);
  item("frontier", s.frontier_size);
  item("best", num(s.best_val_bpb));
  item("verified", s.verified_experiment_count);
  item("peers", s.peer_count);
  item("node", short(s.node_id));
}

/** An empty table says why it is empty, in one row across its columns. */
function emptyRow(body, text) {
  const td = el("td", "hint", text);
  td.colSpan = body.parentElement.querySelectorAll("thead th").length || 1;
  body.replaceChildren(el("tr", "empty", null, td));
}

/** What the node is doing while a view has nothing yet. */
const firstRun = () => {
  const t = now.training;
  if (!t) return "a research node's first experiment takes about a minute";
  if (t.preparing) return `this node is ${t.preparing.text.replace(/^starting/, "starting its first experiment")}`;
  return `this node is training its first experiment (${Math.max(0, Math.round(t.budget - t.elapsed))} s left)`;
};

async function loadTasks() {
  const tasks = await api("/api/tasks");
  const select = $("#task-select");
  const keep = state.task;
  select.replaceChildren(el("option", null, "active task"));
  select.firstChild.value = "";
  const body = $("#tasks tbody");
  body.replaceChildren();
  for (const t of tasks) {
    const o = el("option", null, `${t.name} (${short(t.task_id)})`);
    o.value = t.task_id;
    select.appendChild(o);
    const tr = el("tr", null, null,
      el("td", null, short(t.task_id)), el("td", null, t.name), el("td", null, t.task_type),
      el("td", null, `${t.metric} (${t.goal})`), el("td", null, t.experiment_count),
      el("td", null, t.frontier_size), el("td", null, num(t.best_val_bpb)),
      el("td", null, t.participant_count));
    tr.addEventListener("click", () => chooseTask(t.task_id));
    body.appendChild(tr);
  }
  if (!tasks.length) emptyRow(body, "No tasks yet: a research node creates the built-in default task on its first start; `spored task create` makes another.");
  select.value = keep;
}

function chooseTask(id) {
  state.task = id;
  plot.range = null;
  $("#task-select").value = id;
  state.selected = null;
  refreshAll();
  showTab("dag");
}

// ---- this node's own activity --------------------------------------------------------------------
/** What this node trains now, in the header: one line per busy slot (a GPU, or the CPU) with
 *  its label and either the stage of its start (on a GPU: kernels being prepared) or its step,
 *  loss and time left. Polled while the page is visible. */
const now = { training: null, runs: [] };

function runText(t, several) {
  const where = several ? `${t.device}: ` : "";
  if (t.preparing) return `${where}${t.label}: ${t.preparing.text}`;
  const left = Math.max(0, t.budget - t.elapsed);
  const steps = t.planned ? `${t.step}/${t.planned}` : `${t.step}`;
  return `${where}training ${t.label}: step ${steps} · loss ${num(t.loss, 3)} · ${num(t.tokens_per_s / 1000, 1)}k tok/s · ${left.toFixed(0)} s left`;
}

async function loadTraining() {
  if (document.hidden) return;
  const box = $("#now");
  try {
    const got = await api("/api/training");
    now.training = got.training;
    now.runs = got.runs || (got.training ? [got.training] : []);
  } catch {
    now.training = null;
    now.runs = [];
  }
  if (!now.runs.length) {
    box.textContent = "idle";
    box.className = "now idle";
    return;
  }
  const several = now.runs.length > 1;
  box.textContent = now.runs.map((t) => runText(t, several)).join("\n");
  box.className = now.runs.some((t) => t.preparing) ? "now busy preparing" : "now busy";
}

// ---- keyboard ---------------------------------------------------------------------------------
const KEYS = [
  ["/", "search records and nodes"],
  ["1 – 7", "DAG, Progress, Frontier, Tasks, Nodes, Activity, Compare"],
  ["c", "add the open record to the comparison (again: remove it)"],
  ["f", "fit the whole DAG to the window"],
  ["b", "go to the best record in the DAG"],
  ["Esc", "close search and this help"],
  ["?", "this help"],
];

function toggleHelp(show) {
  const help = $("#help");
  if (!help.firstChild) {
    const list = el("dl");
    for (const [k, what] of KEYS) { list.appendChild(el("dt", null, null, el("kbd", null, k))); list.appendChild(el("dd", null, what)); }
    help.append(el("h2", null, "Keyboard"), list);
  }
  help.hidden = show === undefined ? !help.hidden : !show;
}

function onKey(ev) {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement && document.activeElement.tagName);
  if (ev.key === "Escape") { $("#search-results").hidden = true; toggleHelp(false); return; }
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.key === "/") { ev.preventDefault(); $("#search").focus(); return; }
  if (ev.key === "?") { toggleHelp(); return; }
  const tabs = [...document.querySelectorAll("#tabs button")].map((b) => b.dataset.tab);
  if (/^[1-9]$/.test(ev.key) && tabs[Number(ev.key) - 1]) { showTab(tabs[Number(ev.key) - 1]); return; }
  if (ev.key === "c" && state.selected) { toggleCompare(state.selected); select(state.selected); return; }
  if (ev.key === "f") { showTab("dag"); fit(); }
  if (ev.key === "b") { showTab("dag"); focusBest(); }
}

// ---- URLs and history -------------------------------------------------------------------------
/** Every view has a URL (`#tab=…&task=…&record=…&node=…&compare=…`): it is pushed on each
 *  change, so back and forward walk the views, and a URL opened in a fresh page shows the same
 *  view. Applying a URL pushes nothing. */
let restoring = false;
let routeGen = 0;

function routeOf() {
  const p = new URLSearchParams();
  p.set("tab", state.tab);
  if (state.task) p.set("task", state.task);
  if (state.selected) p.set("record", state.selected);
  else if (state.node) p.set("node", state.node);
  if (state.compare.length) p.set("compare", state.compare.join(","));
  const pn = $("#progress-node").value, pg = $("#progress-gpu").value;
  if (pn) p.set("pnode", pn);
  if (pg) p.set("pgpu", pg);
  return `#${p.toString()}`;
}

function pushRoute() {
  if (restoring) return;
  const next = routeOf();
  if (location.hash !== next) history.pushState(null, "", next);
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Shows the view a URL names. A newer URL (Back pressed again meanwhile) wins: an older
 *  restore stops at its next step. */
async function applyRoute() {
  const gen = ++routeGen;
  const p = new URLSearchParams(location.hash.slice(1));
  const stale = () => gen !== routeGen;
  restoring = true;
  try {
    const task = p.get("task") || "";
    if (task !== state.task && (task === "" || HEX64.test(task))) {
      state.task = task;
      plot.range = null;
      $("#task-select").value = task;
      await refreshAll(true);
      if (stale()) return;
    }
    state.compare = [...new Set((p.get("compare") || "").split(",").filter((id) => HEX64.test(id)))].slice(0, MAX_COMPARE);
    plot.wantNode = p.get("pnode") || "";
    plot.wantGpu = p.get("pgpu") || "";
    for (const [sel, want] of [["#progress-node", plot.wantNode], ["#progress-gpu", plot.wantGpu]]) {
      if ([...$(sel).options].some((o) => o.value === want)) $(sel).value = want;
    }
    const tabs = [...document.querySelectorAll("#tabs button")].map((b) => b.dataset.tab);
    showTab(tabs.includes(p.get("tab")) ? p.get("tab") : "dag");
    const record = p.get("record"), node = p.get("node");
    if (record && HEX64.test(record)) await select(record);
    else if (node && HEX64.test(node)) await showNode(node);
    else {
      // a URL with no record or node: nothing selected
      state.selected = state.node = null;
      markPath();
      $("#detail").replaceChildren(el("p", "hint", "Click an experiment in the DAG or a table to see it here."));
    }
  } finally {
    if (!stale()) restoring = false;
  }
}

// ---- compare ----------------------------------------------------------------------------------
/** Records side by side: their metrics, hardware and steps, each one's config or code against
 *  the first's (a line diff), and their training curves in one chart. The URL holds the
 *  selection, so a comparison can be shared. */
const MAX_COMPARE = 8;

function toggleCompare(id) {
  const i = state.compare.indexOf(id);
  if (i >= 0) state.compare.splice(i, 1);
  else if (state.compare.length < MAX_COMPARE) state.compare.push(id);
  $("#compare-count").textContent = state.compare.length ? ` (${state.compare.length})` : "";
  pushRoute();
}

/** Lines of `b` against `a`: [" ", line] kept, ["-", line] only in a, ["+", line] only in b. */
function lineDiff(a, b) {
  const all = a.split("\n"), other = b.split("\n");
  // the lines both share at the start and the end need no table
  let head = 0;
  while (head < all.length && head < other.length && all[head] === other[head]) head++;
  let tail = 0;
  while (tail < all.length - head && tail < other.length - head && all[all.length - 1 - tail] === other[other.length - 1 - tail]) tail++;
  const x = all.slice(head, all.length - tail), y = other.slice(head, other.length - tail);
  const n = x.length, m = y.length;
  // what a peer could make huge is refused, not computed (a table of n×m cells)
  if (all.length + other.length > 20000 || (n + 1) * (m + 1) > 4e6) return [["!", "too long to compare here"]];
  const w = m + 1, lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    lcs[i * w + j] = x[i] === y[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
  const out = all.slice(0, head).map((l) => [" ", l]);
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (j < m && (i === n || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j])) { out.push(["+", y[j]]); j++; }
    else { out.push(["-", x[i]]); i++; }
  }
  return out.concat(all.slice(all.length - tail).map((l) => [" ", l]));
}

async function loadCompare() {
  $("#compare-count").textContent = state.compare.length ? ` (${state.compare.length})` : "";
  const box = $("#compare");
  if (!state.compare.length) {
    box.replaceChildren(el("p", "hint", "Nothing to compare yet: open a record and press \"compare\", then another."));
    return;
  }
  const records = await Promise.all(state.compare.map((id) => api(`/api/experiment/${id}`).catch(() => null)));
  const shown = records.filter(Boolean);
  if (!shown.length) {
    box.replaceChildren(el("p", "hint", "None of these records is held here."));
    return;
  }
  const first = shown[0];
  const table = el("table", null, null);
  table.id = "compare-table";
  const head = el("tr", null, null, el("th", null, ""));
  for (const r of shown) {
    const th = el("th", r.status, null, link(short(r.id), () => select(r.id)));
    th.dataset.id = r.id;
    const drop = el("button", "drop", "×");
    drop.title = "remove from the comparison";
    drop.addEventListener("click", () => { toggleCompare(r.id); loadCompare(); });
    th.appendChild(drop);
    head.appendChild(th);
  }
  table.appendChild(head);
  const line = (label, f) => table.appendChild(el("tr", null, null, el("th", null, label), ...shown.map((r) => el("td", null, f(r)))));
  line("status", (r) => r.status);
  line(first.metric || "val_bpb", (r) => num(r.val_bpb));
  line(`vs ${short(first.id)}`, (r) => (typeof r.val_bpb === "number" && typeof first.val_bpb === "number" ? `${r.val_bpb - first.val_bpb <= 0 ? "" : "+"}${(r.val_bpb - first.val_bpb).toFixed(6)}` : "-"));
  line("verification", (r) => verification(r));
  line("hardware", (r) => r.gpu_model);
  line("steps / params", (r) => `${r.num_steps} / ${r.num_params}`);
  line("budget", (r) => `${r.time_budget} s`);
  line("publisher", (r) => r.node_display_name || short(r.node_id));
  line("time", (r) => when(r.timestamp));
  line("description", (r) => r.description);
  // code or config, each against the first's
  const texts = await Promise.all(shown.map((r) => (HEX64.test(r.code_cid) ? api(`/api/artifact/${r.code_cid}`).then((a) => a.content).catch(() => null) : null)));
  const diffs = el("div");
  diffs.id = "compare-diff";
  for (let k = 1; k < shown.length; k++) {
    diffs.appendChild(el("h3", null, `${short(shown[k].id)} against ${short(first.id)}`));
    if (texts[0] == null || texts[k] == null) {
      diffs.appendChild(el("p", "hint", "an artifact is not held here: no diff"));
      continue;
    }
    const pre = el("pre", "diff");
    for (const [mark, text] of lineDiff(texts[0], texts[k])) {
      pre.appendChild(el("span", mark === "+" ? "add" : mark === "-" ? "del" : null, `${mark} ${text}\n`));
    }
    diffs.appendChild(pre);
  }
  const curves = el("div");
  const all = await Promise.all(shown.map((r) => api(`/api/experiment/${r.id}/curve`).catch(() => null)));
  drawCurves(curves, shown.map((r, k) => [`c${k % 4}`, short(r.id), all[k] && (all[k].run || all[k].rerun)]), false);
  box.replaceChildren(table, el("h3", null, "training curves"), curves, el("h3", null, "config / code"), diffs);
}

// ---- the DAG --------------------------------------------------------------------------------
/** The task's DAG, drawn on a canvas from the same compact rows as the progress plot
 *  (`/api/progress`: `[id, t, value, status, verified, node, gpu, parent, frontier]`).
 *
 *  Layout: one layer per generation (y = depth); each layer's records sit under their parents
 *  (the heaviest child straight below), pushed apart where they would overlap, so the width
 *  follows the widest generation, not the leaf count. Discard and crash records without children
 *  are folded into a count on their parent (click it to show them, "fold" to fold them again). The lineage of the frontier is drawn as the "frontier path",
 *  the best record's own path stronger. Levels of detail: labels and counts when there is room,
 *  plain dots when zoomed out, single pixels (written straight into the canvas's image) past
 *  that; only what is in view is drawn. Written here, no library. */
const DX = 70, DY = 60;
const dag = { rows: null, layout: null, expanded: new Set(), frame: 0, colors: null, image: null };

function buildDag() {
  const d = plot.data, rows = (d && d.rows) || [];
  const n = rows.length, kids = new Array(n), roots = [], index = new Map();
  for (let i = 0; i < n; i++) {
    index.set(rows[i][0], i);
    const p = rows[i][7];
    if (p >= 0 && p < n && p !== i) (kids[p] || (kids[p] = [])).push(i);
    else roots.push(i);
  }
  // a leaf discard/crash is folded into its parent's count, unless the parent is opened (its
  // leaves are then counted in `opened`, to fold them again), it is the selected record, or the
  // status filter asks for discards or crashes
  const folding = state.status === "all" || state.status === "keep";
  const hidden = new Uint8Array(n), counts = new Map(), opened = new Map();
  for (let i = 0; i < n; i++) {
    const p = rows[i][7];
    if (!folding || rows[i][3] === 0 || kids[i] || p < 0 || p >= n || p === i) continue;
    const open = dag.expanded.has(rows[p][0]);
    if (!open && rows[i][0] === state.selected) continue;
    if (!open) hidden[i] = 1;
    const into = open ? opened : counts, c = into.get(p) || [0, 0];
    c[rows[i][3] - 1] += 1;
    into.set(p, c);
  }
  // generations, breadth first from the roots
  const depth = new Int32Array(n).fill(-1), order = [];
  for (const r of roots) if (!hidden[r]) { depth[r] = 0; order.push(r); }
  for (let k = 0; k < order.length; k++) {
    const p = order[k];
    for (const c of kids[p] || []) if (!hidden[c] && depth[c] < 0) { depth[c] = depth[p] + 1; order.push(c); }
  }
  // how many records hang below each one: the child carrying the most goes straight under its
  // parent (so a long lineage stays vertical instead of drifting one way), the others alternate
  // left and right of it
  const size = new Float64Array(n);
  for (let k = order.length - 1; k >= 0; k--) {
    const i = order[k], p = rows[i][7];
    size[i] += 1;
    if (p >= 0 && p < n && depth[p] === depth[i] - 1) size[p] += size[i];
  }
  const x = new Float64Array(n).fill(NaN), layers = [];
  let layer = order.filter((i) => depth[i] === 0), want = layer.map((_, j) => j * 1.5);
  while (layer.length) {
    // in order of where each would like to be; pushed apart left to right, then the layer is
    // shifted back by the mean displacement
    const byWant = layer.map((_, j) => j).sort((a, b) => want[a] - want[b] || a - b);
    const sorted = byWant.map((j) => layer[j]), at = new Float64Array(sorted.length);
    let drift = 0;
    byWant.forEach((j, k) => { at[k] = k ? Math.max(want[j], at[k - 1] + 1) : want[j]; drift += at[k] - want[j]; });
    drift /= sorted.length;
    sorted.forEach((i, k) => { x[i] = at[k] - drift; });
    layers.push(Int32Array.from(sorted));
    const next = [], nextWant = [];
    for (const p of sorted) {
      const ks = (kids[p] || []).filter((c) => depth[c] === depth[p] + 1);
      ks.sort((a, b) => size[b] - size[a] || a - b);
      ks.forEach((c, j) => { next.push(c); nextWant.push(x[p] + (j % 2 ? -(j + 1) / 2 : j / 2)); });
    }
    layer = next; want = nextWant;
  }
  // the frontier's lineage, and the best record's path
  const lineage = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (rows[i][8] !== 1) continue;
    for (let j = i; j >= 0 && j < n && !lineage[j]; j = rows[j][7]) lineage[j] = 1;
  }
  const bestSteps = (d && d.best) || [];
  const best = bestSteps.length ? index.get(bestSteps[bestSteps.length - 1][2]) : undefined;
  if (best !== undefined) for (let j = best; j >= 0 && j < n && lineage[j] !== 2; j = rows[j][7]) lineage[j] = 2;
  let minX = Infinity, maxX = -Infinity;
  for (const l of layers) if (l.length) { minX = Math.min(minX, x[l[0]]); maxX = Math.max(maxX, x[l[l.length - 1]]); }
  dag.rows = rows;
  dag.path = null;
  dag.layout = { index, hidden, counts, opened, x, depth, layers, lineage, best, minX, maxX, shown: order.length };
}

/** The selected record's path to its root, as a flag per row (computed once per selection). */
function selectedPath() {
  const L = dag.layout, rows = dag.rows;
  if (dag.path && dag.path.of === state.selected) return dag.path;
  const on = new Uint8Array(rows.length);
  let count = 0;
  for (let j = state.selected ? L.index.get(state.selected) : undefined; j !== undefined && j >= 0 && j < rows.length && !on[j]; j = rows[j][7]) { on[j] = 1; count++; }
  dag.path = { of: state.selected, on, count };
  return dag.path;
}

/** The row of record `id` and whether it is drawn (a folded leaf is not). */
function dagRow(id) {
  const L = dag.layout, i = L && L.index.get(id);
  return i === undefined || !L.x || isNaN(L.x[i]) ? undefined : i;
}

/** Theme colours as RGBA words for the pixel level of detail (read from the CSS variables). */
function dagColors() {
  const css = getComputedStyle(document.documentElement);
  const pick = (name, fallback) => (css.getPropertyValue(name).trim() || fallback);
  const c = {
    status: [pick("--keep", "#4ade80"), pick("--discard", "#f87171"), pick("--crash", "#fbbf24")],
    edge: pick("--edge", "#4b5563"), grid: pick("--grid", "#1f2530"), path: pick("--edge-path", "#e5e7eb"), ring: pick("--ring", "#fff"),
    frontier: pick("--frontier", "#60a5fa"), muted: pick("--muted", "#9ca3af"),
  };
  c.word = c.status.map(colorWord);
  c.frontierWord = colorWord(c.frontier);
  c.pathWord = colorWord(c.path);
  return c;
}

/** First index in sorted layer `l` whose x is ≥ `value`. */
function lowerBound(l, x, value) {
  let lo = 0, hi = l.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (x[l[mid]] < value) lo = mid + 1; else hi = mid; }
  return lo;
}

/** Draws the DAG as the view shows it now; returns what it drew (for the info line and tests). */
function drawDag() {
  const canvas = $("#dag"), L = dag.layout, rows = dag.rows;
  const { ctx, W, H } = prepare(canvas);
  if (!W || !H) return null;
  if (!L || !L.shown) return { drawn: 0, level: "empty" };
  const c = dag.colors || (dag.colors = dagColors());
  const v = state.view, sx = DX * v.k, sy = DY * v.k;
  const X = (i) => v.x + L.x[i] * sx, Y = (i) => v.y + L.depth[i] * sy;
  const first = Math.max(0, Math.floor(-v.y / sy) - 1), last = Math.min(L.layers.length - 1, Math.ceil((H - v.y) / sy) + 1);
  const lo = (-v.x - 60) / sx, hi = (W - v.x + 60) / sx;
  const filter = state.status === "all" ? -1 : STATUS.indexOf(state.status);
  const show = (i) => filter < 0 || rows[i][3] === filter;
  // the records in view, layer by layer
  const inView = [];
  for (let y = first; y <= last; y++) {
    const l = L.layers[y];
    for (let j = lowerBound(l, L.x, lo); j < l.length && L.x[l[j]] <= hi; j++) if (show(l[j])) inView.push(l[j]);
  }
  const level = sx >= 40 && inView.length <= 3000 ? "labels" : sx >= 6 && inView.length <= 5000 ? "dots" : "pixels";
  const boxes = dag.boxes = [];
  // the selected record's path to its root
  const path = selectedPath(), onPath = (i) => path.on[i] === 1;
  const dim = path.count > 0;
  if (level === "pixels") {
    // records as pixel blocks, the frontier's lineage and the selected path as pixel lines
    const px = new Pixels(canvas, dag.image);
    for (let y = Math.max(1, first); y <= Math.min(L.layers.length - 1, last + 1); y++) {
      for (const i of L.layers[y]) {
        if (!L.lineage[i] && !onPath(i)) continue;
        const p = rows[i][7];
        px.line(X(p), Y(p), X(i), Y(i), onPath(i) ? c.pathWord : c.frontierWord);
      }
    }
    for (const i of inView) px.block(X(i), Y(i), 2, rows[i][8] === 1 ? c.frontierWord : c.word[rows[i][3]]);
    dag.image = px.show();
  }
  // edges: parent → child for children in view (and one layer below, whose edges enter it)
  const edges = new Path2D(), frontierEdges = new Path2D(), bestEdges = new Path2D(), pathEdges = new Path2D();
  const edgeLayers = level === "pixels" ? -1 : Math.min(L.layers.length - 1, last + 1);
  for (let y = Math.max(1, first); y <= edgeLayers; y++) {
    for (const i of L.layers[y]) {
      const p = rows[i][7];
      const ax = X(p), ay = Y(p), bx = X(i), by = Y(i);
      if ((ax < -60 && bx < -60) || (ax > W + 60 && bx > W + 60) || !show(i)) continue;
      const kind = onPath(i) ? pathEdges : L.lineage[i] === 2 ? bestEdges : L.lineage[i] ? frontierEdges : edges;
      kind.moveTo(ax, ay);
      if (level === "labels") kind.bezierCurveTo(ax, ay + sy / 2, bx, by - sy / 2, bx, by);
      else kind.lineTo(bx, by);
    }
  }
  ctx.lineCap = "round";
  const stroke = (path, color, width, alpha = 1) => { ctx.globalAlpha = alpha; ctx.strokeStyle = color; ctx.lineWidth = width; ctx.stroke(path); };
  stroke(edges, c.edge, 1.2, dim ? 0.25 : 1);
  stroke(frontierEdges, c.frontier, 1.6, dim ? 0.35 : 0.8);
  stroke(bestEdges, c.frontier, 3, dim ? 0.4 : 1);
  stroke(pathEdges, c.path, 2.5);
  ctx.globalAlpha = 1;
  if (level !== "pixels") {
    const r = level === "labels" ? Math.min(6, Math.max(3, 6 * v.k)) : Math.max(1.5, Math.min(4, sx / 4));
    const fills = [new Path2D(), new Path2D(), new Path2D()], faded = [new Path2D(), new Path2D(), new Path2D()];
    const rings = new Path2D();
    for (const i of inView) {
      const target = dim && !onPath(i) ? faded : fills, px = X(i), py = Y(i);
      target[rows[i][3]].moveTo(px + r, py);
      target[rows[i][3]].arc(px, py, r, 0, 2 * Math.PI);
      if (rows[i][8] === 1) { rings.moveTo(px + r + 4, py); rings.arc(px, py, r + 4, 0, 2 * Math.PI); }
    }
    for (let s = 0; s < 3; s++) {
      ctx.fillStyle = c.status[s];
      ctx.globalAlpha = 0.25; ctx.fill(faded[s]);
      ctx.globalAlpha = 1; ctx.fill(fills[s]);
    }
    stroke(rings, c.frontier, 2);
    if (level === "labels") {
      // the short id right of each record; above it, its folded leaves' count ("+3 discarded"), or
      // "fold 4" for leaves opened: a click on either toggles (their boxes are kept for hits)
      ctx.font = "10px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      for (const i of inView) {
        ctx.globalAlpha = dim && !onPath(i) ? 0.35 : 1;
        ctx.fillStyle = c.muted;
        ctx.fillText(short(rows[i][0]), X(i) + 16, Y(i) + 2);
        const folded = L.counts.get(i), open = L.opened.get(i);
        const text = folded ? countLabel(folded) : open ? `fold ${open[0] + open[1]}` : null;
        if (!text) continue;
        const bx = X(i) + 16, by = Y(i) - 10, width = ctx.measureText(text).width;
        ctx.fillStyle = c.frontier;
        ctx.fillText(text, bx, by);
        boxes.push({ row: i, x0: bx - 3, x1: bx + width + 3, y0: by - 7, y1: by + 6 });
      }
      ctx.globalAlpha = 1;
    }
  }
  const sel = state.selected ? dagRow(state.selected) : undefined;
  if (sel !== undefined && show(sel)) {
    ctx.beginPath(); ctx.arc(X(sel), Y(sel), 13, 0, 2 * Math.PI);
    ctx.strokeStyle = c.ring; ctx.lineWidth = 2.5; ctx.stroke();
  }
  return { drawn: inView.length, level };
}

/** A record's tooltip: what this node knows of it first (status, metric, verification,
 *  frontier), then what its publisher says (time, node, hardware: peer text, cut short). */
function recordTip(row) {
  const d = plot.data, cut = (text) => { const t = String(text); return t.length > 48 ? `${t.slice(0, 47)}…` : t; };
  const trust = [STATUS[row[3]], typeof row[2] === "number" ? row[2].toFixed(6) : "-",
    row[4] === 1 ? "verified" : row[4] === -1 ? "rejected" : "unverified", row[8] === 1 ? "frontier" : ""].filter(Boolean).join(" ");
  return `${short(row[0])} ${trust} · ${when(row[1])} · node ${short(d.nodes[row[5]])} · hardware "${cut(d.gpus[row[6]])}"`;
}

/** "+3 discarded · 1 crashed": the leaves folded into a record. */
function countLabel([discards, crashes]) {
  return `+${[discards ? `${discards} discarded` : "", crashes ? `${crashes} crashed` : ""].filter(Boolean).join(" · ")}`;
}

/** Redraws at the next frame (pan, zoom and hover ask many times per frame; one draw). */
function applyView() {
  if (dag.frame) return;
  dag.frame = requestAnimationFrame(() => {
    dag.frame = 0;
    const r = drawDag();
    if (r) dag.last = r;
    // for the benchmark (and anyone's devtools): when the first records were drawn
    if (r && r.drawn && !performance.getEntriesByName("dag-first-paint").length) performance.mark("dag-first-paint");
  });
}

function drawGraph() {
  buildDag();
  const L = dag.layout, hiddenCount = L.hidden.reduce((s, h) => s + h, 0);
  $("#dag-info").textContent = dag.rows.length
    ? `${L.shown} of ${dag.rows.length} records shown · ${L.layers.length} generations (f: all, b: the best)` +
      (hiddenCount ? ` · ${hiddenCount} discard/crash leaves folded into counts (click a count to open it)` : "") +
      (plot.data && plot.data.truncated ? " · the newest 200,000 only" : "")
    : `no records yet: ${firstRun()}`;
  applyView();
}

/** The selected record changed: show its path (and the record itself if it is a folded
 *  leaf). */
function markPath() {
  if (state.selected && dag.layout && dag.layout.index.has(state.selected) && dagRow(state.selected) === undefined) buildDag();
  applyView();
}

/** Where record `id` is drawn, in page coordinates, or null (tests and "go to" use it). */
function dagPoint(id) {
  const i = dagRow(id);
  if (i === undefined) return null;
  const e = $("#dag"), b = e.getBoundingClientRect(), v = state.view, L = dag.layout;
  return { x: b.left + e.clientLeft + v.x + L.x[i] * DX * v.k, y: b.top + e.clientTop + v.y + L.depth[i] * DY * v.k };
}

/** Brings record `id` into view in the DAG (centred), when the DAG holds it and it is outside
 *  the visible part: a search result or a link elsewhere on the page "goes to" the record. */
function panTo(id) {
  if (dag.layout && dag.layout.index.has(id) && dagRow(id) === undefined) buildDag();
  const i = dagRow(id), box = $("#dag").getBoundingClientRect();
  if (!box.width) { dag.pendingPan = id; return; } // the DAG tab is hidden: when it is shown
  if (i === undefined) return;
  const L = dag.layout, v = state.view;
  if (DX * v.k < 6) v.k = 6 / DX * 4; // from the pixel level, zoom in to where records are dots
  const sx = v.x + L.x[i] * DX * v.k, sy = v.y + L.depth[i] * DY * v.k;
  if (sx >= 20 && sx <= box.width - 20 && sy >= 20 && sy <= box.height - 20) { applyView(); return; }
  v.x = box.width / 2 - L.x[i] * DX * v.k;
  v.y = box.height / 2 - L.depth[i] * DY * v.k;
  applyView();
}

/** The zoom that shows the whole DAG. */
function fitZoom() {
  const L = dag.layout, box = $("#dag").getBoundingClientRect();
  if (!L || !L.shown) return 1;
  return Math.max(1e-4, Math.min(2, (box.width - 80) / ((L.maxX - L.minX + 1) * DX), (box.height - 60) / (L.layers.length * DY)));
}

/** The view a task opens with: the whole DAG where it can be read (records at least ~15 px
 *  apart), else the best record and its recent ancestors (`f` then shows the whole). */
function overview() {
  if (!$("#dag").clientWidth) { dag.pendingOverview = true; return; } // the DAG tab is hidden
  dag.pendingOverview = false;
  if (fitZoom() >= 0.25 || !dag.layout || dag.layout.best === undefined) fit();
  else focusBest();
}

/** Centres the best record, lower in the view (its ancestors above it), at a readable zoom. */
function focusBest() {
  const L = dag.layout, canvas = $("#dag");
  const i = L && L.best !== undefined ? L.best : undefined;
  if (i === undefined || isNaN(L.x[i])) { fit(); return; }
  const k = 0.8;
  state.view = { x: canvas.clientWidth / 2 - L.x[i] * DX * k, y: canvas.clientHeight * 0.75 - L.depth[i] * DY * k, k };
  applyView();
}

function fit() {
  const L = dag.layout;
  if (!L || !L.shown) return;
  const k = fitZoom(), width = $("#dag").clientWidth;
  // centred across, from the top
  state.view = { x: Math.max(40, (width - (L.maxX - L.minX) * DX * k) / 2) - L.minX * DX * k, y: 30, k };
  applyView();
}

function zoom(factor, cx, cy) {
  const v = state.view;
  const k = Math.min(5, Math.max(Math.min(0.1, fitZoom() / 2), v.k * factor));
  // keep the point under the cursor where it is
  v.x = cx - ((cx - v.x) * k) / v.k;
  v.y = cy - ((cy - v.y) * k) / v.k;
  v.k = k;
  applyView();
}

/** What is under a point of the canvas: a drawn record (the nearest within reach; records the
 *  status filter hides are not), or a record's count of folded leaves. */
function dagHit(cx, cy) {
  const L = dag.layout, v = state.view, rows = dag.rows;
  if (!L || !L.shown) return null;
  for (const b of dag.boxes || []) if (cx >= b.x0 && cx <= b.x1 && cy >= b.y0 && cy <= b.y1) return { row: b.row, count: true };
  const sx = DX * v.k, sy = DY * v.k, reach = Math.max(8, Math.min(12, sx / 3));
  const y = Math.round((cy - v.y) / sy), l = L.layers[y];
  if (!l || Math.abs(v.y + y * sy - cy) > reach) return null;
  const filter = state.status === "all" ? -1 : STATUS.indexOf(state.status);
  const j = lowerBound(l, L.x, (cx - v.x) / sx);
  let found = null;
  // outwards from the pointer on both sides, while records are within reach across
  for (const [start, step] of [[j, 1], [j - 1, -1]]) {
    for (let k = start; k >= 0 && k < l.length; k += step) {
      const i = l[k], dx = v.x + L.x[i] * sx - cx;
      if (Math.abs(dx) > reach) break;
      if (filter >= 0 && rows[i][3] !== filter) continue;
      const d = Math.hypot(dx, v.y + y * sy - cy);
      if (d <= reach && (!found || d < found.d)) found = { row: i, d };
    }
  }
  return found;
}

function setUpPanZoom() {
  const dag_ = $("#dag"), tip = $("#dag-tip");
  dag_.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    zoom(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ...local(ev, dag_));
  }, { passive: false });
  let drag = null;
  dag_.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, vx: state.view.x, vy: state.view.y, moved: false }; });
  window.addEventListener("mousemove", (ev) => {
    if (drag) {
      if (Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) > 4) drag.moved = true;
      state.view.x = drag.vx + ev.clientX - drag.x;
      state.view.y = drag.vy + ev.clientY - drag.y;
      tip.hidden = true;
      applyView();
      return;
    }
    if (ev.target !== dag_) { tip.hidden = true; return; }
    const hit = dagHit(...local(ev, dag_));
    dag_.style.cursor = hit ? "pointer" : "grab";
    if (!hit) { tip.hidden = true; return; }
    const row = dag.rows[hit.row], n = dag.layout.counts.get(hit.row), open = dag.layout.opened.get(hit.row);
    tip.textContent = !hit.count
      ? recordTip(row) + (n ? ` · ${countLabel(n)} folded` : "")
      : n
        ? `${n[0]} discarded and ${n[1]} crashed experiments from ${short(row[0])} without children; click to show them`
        : `click to fold the ${open[0] + open[1]} discarded and crashed experiments from ${short(row[0])} again`;
    showTip(tip, dag_, ev);
  });
  window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
  dag_.addEventListener("click", (ev) => {
    if (drag && drag.moved) return;
    const hit = dagHit(...local(ev, dag_));
    if (!hit) return;
    const id = dag.rows[hit.row][0];
    if (hit.count) {
      if (dag.expanded.has(id)) dag.expanded.delete(id); else dag.expanded.add(id);
      drawGraph();
    } else select(id);
  });
  dag_.addEventListener("mouseleave", () => { tip.hidden = true; });
  const center = () => { const b = dag_.getBoundingClientRect(); return [b.width / 2, b.height / 2]; };
  $("#zoom-in").addEventListener("click", () => zoom(1.3, ...center()));
  $("#zoom-out").addEventListener("click", () => zoom(1 / 1.3, ...center()));
  $("#zoom-fit").addEventListener("click", fit);
  $("#zoom-best").addEventListener("click", focusBest);
  let resized = null;
  window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(applyView, 100); });
  matchMedia("(prefers-color-scheme: light)").addEventListener("change", () => {
    dag.colors = null;
    applyView();
    if (state.tab === "progress") drawProgress();
  });
}

/** Loads the task's records (for the DAG and the plot), then draws. A busy network sends many
 *  events: one load at a time, a large task at most every 10 s (0.5 ms per record, and at least
 *  twice as long as the last load took), and an event during a load or the pause is followed by
 *  one more load. A newer load (a task chosen meanwhile) wins over one still under way.
 *  `force`: load now; "fit": and open on the task's overview. */
async function loadRecords(force = false) {
  if (!force) {
    const rows = (plot.data && plot.data.rows && plot.data.rows.length) || 0;
    const wait = plot.loaded + Math.min(10000, Math.max(rows * 0.5, 2 * (plot.took || 0))) - Date.now();
    if (plot.loading || wait > 0) {
      if (!plot.again) plot.again = setTimeout(() => { plot.again = null; loadRecords().catch(console.error); }, Math.max(wait, 200));
      return;
    }
  }
  const seq = plot.seq = (plot.seq || 0) + 1, started = Date.now();
  plot.loading = true;
  let data;
  try {
    data = await api(`/api/progress?${taskParam()}`);
  } finally {
    if (seq === plot.seq) { plot.loading = false; plot.loaded = Date.now(); plot.took = plot.loaded - started; }
  }
  if (seq !== plot.seq) return; // a newer load was started meanwhile
  if (!performance.getEntriesByName("records-loaded").length) performance.mark("records-loaded");
  const changedTask = !plot.data || plot.data.task_id !== data.task_id;
  plot.data = data;
  if (changedTask) dag.expanded.clear();
  drawGraph();
  if (!performance.getEntriesByName("dag-laid-out").length) performance.mark("dag-laid-out");
  if (changedTask || force === "fit") overview();
  fillProgressFilters();
  if (state.tab === "progress") drawProgress();
}

// ---- progress plot ----------------------------------------------------------------------------
/** The metric of every record over time (one mark each: keep, discard, crash; a ring when
 *  reruns confirmed it), the running best as a step line, filters by node and hardware, and a
 *  time range chosen by dragging across the plot (double-click or "all time" resets). Drawn as
 *  SVG by this code, no library. */
const STATUS = ["keep", "discard", "crash"];
/** [min, max] of a list (a loop: spreading 100k values into Math.min would overflow the stack). */
function span(list) {
  let lo = Infinity, hi = -Infinity;
  for (const v of list) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}
const plot = { data: null, range: null, drawn: null, wantNode: null, wantGpu: null, loaded: 0 };
/** Records dated more than a day ahead of this clock are left off the time axis (one signed
 *  record from the year 2200 would squeeze every other mark into the left edge). */
const FUTURE = 86400;

/** The plot's node and hardware filters, from the loaded rows (a choice from the URL wins). */
function fillProgressFilters() {
  if (!plot.data) return;
  // rebuilt only when the lists change (an open list is not closed by every reload), and at
  // most 1,000 names each (a task whose records come from 100k keys stays usable)
  const fill = (sel, all, label, want, shorten) => {
    const keep = want != null ? want : sel.value, list = all.slice(0, 1000), key = list.join("\n");
    if (sel.listKey !== key) {
      sel.listKey = key;
      sel.replaceChildren(el("option", null, label));
      sel.firstChild.value = "";
      for (const name of list) {
        const o = el("option", null, shorten(name));
        o.value = name;
        sel.appendChild(o);
      }
    }
    sel.value = list.includes(keep) ? keep : "";
  };
  const shortName = (n) => (n.length > 32 ? `${n.slice(0, 31)}…` : n);
  fill($("#progress-node"), plot.data.nodes || [], "every node", plot.wantNode, short);
  fill($("#progress-gpu"), plot.data.gpus || [], "every hardware class", plot.wantGpu, shortName);
  plot.wantNode = plot.wantGpu = null;
}

/** A canvas's pixels as one array of RGBA words (little-endian), written directly: how the DAG
 *  and the plot draw tens of thousands of records within a frame, where vector paths would be
 *  rasterised (slowly, on a CPU) after the script returns. `show()` puts them on the canvas. */
class Pixels {
  constructor(canvas, old) {
    this.ctx = canvas.getContext("2d");
    this.w = canvas.width; this.h = canvas.height; this.dpr = window.devicePixelRatio || 1;
    this.image = old && old.width === this.w && old.height === this.h ? old : this.ctx.createImageData(this.w, this.h);
    this.words = new Uint32Array(this.image.data.buffer);
    this.words.fill(0);
  }
  /** A square of `size` CSS px centred on (x, y). */
  block(x, y, size, word) {
    const n = Math.max(1, Math.round(size * this.dpr)), w = this.w, words = this.words;
    const px = Math.round(x * this.dpr - n / 2), py = Math.round(y * this.dpr - n / 2);
    if (px < 0 || py < 0 || px + n > w || py + n > this.h) return;
    for (let dy = 0, at = py * w + px; dy < n; dy++, at += w) for (let dx = 0; dx < n; dx++) words[at + dx] = word;
  }
  /** A one-pixel line from (x0, y0) to (x1, y1), clipped to the canvas. */
  line(x0, y0, x1, y1, word) {
    const d = this.dpr, w = this.w, h = this.h;
    let ax = x0 * d, ay = y0 * d, bx = x1 * d, by = y1 * d;
    // Liang–Barsky clipping
    let t0 = 0, t1 = 1;
    const dx = bx - ax, dy = by - ay;
    for (const [p, q] of [[-dx, ax], [dx, w - 1 - ax], [-dy, ay], [dy, h - 1 - ay]]) {
      if (p === 0) { if (q < 0) return; continue; }
      const r = q / p;
      if (p < 0) { if (r > t1) return; if (r > t0) t0 = r; } else { if (r < t0) return; if (r < t1) t1 = r; }
    }
    const sx = ax + t0 * dx, sy = ay + t0 * dy, ex = ax + t1 * dx, ey = ay + t1 * dy;
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(ex - sx), Math.abs(ey - sy))));
    for (let k = 0; k <= steps; k++) {
      const px = Math.round(sx + ((ex - sx) * k) / steps), py = Math.round(sy + ((ey - sy) * k) / steps);
      if (px >= 0 && py >= 0 && px < w && py < h) this.words[py * w + px] = word;
    }
  }
  show() { this.ctx.putImageData(this.image, 0, 0); return this.image; }
}

/** `color` (any CSS colour) as an RGBA word for `Pixels`. */
function colorWord(color) {
  const probe = colorWord.probe || (colorWord.probe = document.createElement("canvas").getContext("2d", { willReadFrequently: true }));
  probe.clearRect(0, 0, 1, 1); probe.fillStyle = color; probe.fillRect(0, 0, 1, 1);
  const [r, g, b, a] = probe.getImageData(0, 0, 1, 1).data;
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

/** Sizes a canvas's backing store to its CSS box (times the pixel ratio) and clears it. */
function prepare(canvas) {
  const W = canvas.clientWidth, H = canvas.clientHeight, dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) {
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, W, H };
}

/** Draws the plot: axes and the best line as SVG, the marks on the canvas over it (arcs up to
 *  5,000 marks, pixel blocks past that). `plot.marks` keeps where each mark went, for hover,
 *  clicks and tests. */
function drawProgress() {
  const d = plot.data, canvas = $("#progress");
  const { ctx } = prepare(canvas);
  plot.best = null;
  plot.marks = { ids: [], rows: new Int32Array(0), x: new Float32Array(0), y: new Float32Array(0) };
  if (!d || !d.rows || !d.rows.length) {
    $("#progress-info").textContent = `no records yet: ${firstRun()}`;
    return;
  }
  const node = d.nodes.indexOf($("#progress-node").value), gpu = d.gpus.indexOf($("#progress-gpu").value);
  const horizon = Date.now() / 1000 + FUTURE;
  const all = d.rows, W = canvas.clientWidth || 800, H = canvas.clientHeight || 360, L = 64, R = 16, T = 12, B = 36;
  // plain loops, no intermediate arrays: 100k rows are redrawn every frame while zooming
  const wanted = (r) => (node < 0 || r[5] === node) && (gpu < 0 || r[6] === gpu) && r[1] <= horizon;
  let t0, t1, ahead = 0;
  if (plot.range) [t0, t1] = plot.range;
  else {
    t0 = Infinity; t1 = -Infinity;
    for (const r of all) if (wanted(r)) { if (r[1] < t0) t0 = r[1]; if (r[1] > t1) t1 = r[1]; }
  }
  if (!isFinite(t0) || !isFinite(t1)) [t0, t1] = [0, 1];
  if (t1 <= t0) { t0 -= 30; t1 += 30; }
  plot.drawn = [t0, t1, L, R];
  const shown = [], at = [];
  let v0 = Infinity, v1 = -Infinity;
  for (let k = 0; k < all.length; k++) {
    const r = all[k];
    if (r[1] > horizon) ahead++;
    if (r[1] < t0 || r[1] > t1 || !wanted(r)) continue;
    shown.push(r);
    at.push(k);
    if (r[3] !== 2 && typeof r[2] === "number") { if (r[2] < v0) v0 = r[2]; if (r[2] > v1) v1 = r[2]; }
  }
  const steps = (d.best || []).filter((b) => b[0] <= t1);
  // the best line's visible steps count for the scale too
  const lastBefore = steps.filter((b) => b[0] < t0).pop();
  const visible = steps.filter((b) => b[0] >= t0);
  if (lastBefore) visible.unshift(lastBefore);
  for (const b of visible) { if (b[1] < v0) v0 = b[1]; if (b[1] > v1) v1 = b[1]; }
  if (!isFinite(v0)) [v0, v1] = [0, 1];
  if (v1 <= v0) { v0 -= 0.5; v1 += 0.5; }
  const pad = (v1 - v0) * 0.06; v0 -= pad; v1 += pad;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  const c = dag.colors || (dag.colors = dagColors());
  const marks = plot.marks = { ids: new Array(shown.length), rows: Int32Array.from(at), x: new Float32Array(shown.length), y: new Float32Array(shown.length) };
  shown.forEach((r, i) => {
    marks.ids[i] = r[0];
    marks.x[i] = x(r[1]);
    marks.y[i] = r[3] === 2 || typeof r[2] !== "number" ? H - B + 6 : y(r[2]);
  });
  // many marks: pixel blocks first (they replace the whole image), the axes over them
  if (shown.length > 5000) {
    const px = new Pixels(canvas, plot.image);
    shown.forEach((r, i) => px.block(marks.x[i], marks.y[i], 3, c.word[r[3]]));
    plot.image = px.show();
  }
  // axes and grid (drawn on the canvas too: an SVG redrawn under a canvas costs ~30 ms a frame)
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = c.muted;
  ctx.strokeStyle = c.grid;
  ctx.lineWidth = 1;
  const grid = new Path2D();
  for (let i = 0; i <= 4; i++) {
    const v = v0 + ((v1 - v0) * i) / 4, t = t0 + ((t1 - t0) * i) / 4, gy = Math.round(y(v)) + 0.5;
    grid.moveTo(L, gy); grid.lineTo(W - R, gy);
    ctx.textAlign = "end"; ctx.fillText(v.toFixed(3), L - 6, y(v) + 4);
    ctx.textAlign = i === 0 ? "start" : i === 4 ? "end" : "center";
    ctx.fillText(when(t).slice(5, 16), x(t), H - 14);
  }
  ctx.stroke(grid);
  ctx.textAlign = "start";
  ctx.fillText(`${d.metric} (${d.goal}) over time`, L, H - 1);
  // the running best (the whole task's, whatever the filters), as steps up to the right edge
  if (visible.length) {
    // one horizontal and one vertical segment per pixel column at most (a task of 100k
    // records has ~20k steps, and stroking each costs ~20 ms a frame)
    const line = new Path2D();
    let column = Math.round(Math.max(L, x(visible[0][0]))), level = y(visible[0][1]);
    line.moveTo(column, level);
    for (const [t, v] of visible.slice(1)) {
      const px = Math.round(Math.max(L, x(t)));
      // the best only moves one way: within a column, only its last level matters
      if (px !== column) { line.lineTo(column, level); line.lineTo(px, level); column = px; }
      level = y(v);
    }
    line.lineTo(column, level);
    line.lineTo(W - R, level);
    ctx.strokeStyle = c.frontier; ctx.lineWidth = 2; ctx.stroke(line);
    plot.best = visible[visible.length - 1][1];
  }
  // few marks: circles, over the best line
  if (shown.length <= 5000) {
    const fills = [new Path2D(), new Path2D(), new Path2D()], rings = new Path2D(), rejected = new Path2D();
    shown.forEach((r, i) => {
      const rad = r[3] === 0 ? 4 : 3, px = marks.x[i], py = marks.y[i];
      const path = r[4] === -1 ? rejected : fills[r[3]];
      path.moveTo(px + rad, py); path.arc(px, py, rad, 0, 2 * Math.PI);
      if (r[4] === 1) { rings.moveTo(px + rad + 1.5, py); rings.arc(px, py, rad + 1.5, 0, 2 * Math.PI); }
    });
    c.status.forEach((color, s) => { ctx.fillStyle = color; ctx.fill(fills[s]); });
    ctx.lineWidth = 1.5; ctx.strokeStyle = c.ring; ctx.stroke(rings);
    ctx.strokeStyle = c.status[1]; ctx.stroke(rejected);
  }
  $("#progress-info").textContent = `${shown.length} of ${d.rows.length} records · best ${steps.length ? num(steps[steps.length - 1][1]) : "-"}` +
    (ahead ? ` · ${ahead} dated in the future, not shown` : "");
}

/** Shows tooltip `tip` (already filled) beside the pointer over element `e`. */
function showTip(tip, e, ev) {
  const [x, y] = local(ev, e);
  tip.style.left = `${x + 14}px`;
  tip.style.top = `${y + 14}px`;
  tip.hidden = false;
}

/** A pointer event's point inside element `e`'s content box (inside its border). */
function local(ev, e) {
  const b = e.getBoundingClientRect();
  return [ev.clientX - b.left - (e.clientLeft || 0), ev.clientY - b.top - (e.clientTop || 0)];
}

/** The mark nearest a point of the plot (within 6 px), as its index in `plot.marks`. */
function plotHit(cx, cy) {
  const m = plot.marks;
  let found = -1, best = 36;
  if (!m) return -1;
  for (let i = 0; i < m.ids.length; i++) {
    const dx = m.x[i] - cx, dy = m.y[i] - cy, d2 = dx * dx + dy * dy;
    if (d2 <= best) { best = d2; found = i; }
  }
  return found;
}

/** Where record `id`'s mark is drawn, in page coordinates, or null. */
function plotPoint(id) {
  const m = plot.marks, i = m ? m.ids.indexOf(id) : -1;
  if (i < 0) return null;
  const e = $("#progress"), b = e.getBoundingClientRect();
  return { x: b.left + (e.clientLeft || 0) + m.x[i], y: b.top + (e.clientTop || 0) + m.y[i] };
}

function setUpProgress() {
  const box = $("#progress"), tip = $("#progress-tip");
  let drag = null;
  // the time under a point, on the axis drawn last
  const t = (clientX) => {
    if (!plot.drawn) return 0;
    const [t0, t1, L, R] = plot.drawn, [x] = local({ clientX, clientY: 0 }, box);
    return t0 + ((x - L) / (box.clientWidth - L - R)) * (t1 - t0);
  };
  let dragged = false;
  box.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX }; dragged = false; });
  window.addEventListener("mouseup", (ev) => {
    if (!drag) return;
    const a = drag.x, b = ev.clientX; drag = null;
    if (Math.abs(a - b) < 8) return;
    dragged = true; // the click that follows a drag opens nothing
    plot.range = [t(Math.min(a, b)), t(Math.max(a, b))];
    drawProgress();
  });
  // the wheel zooms time around the pointer
  box.addEventListener("wheel", (ev) => {
    if (!plot.drawn) return;
    ev.preventDefault();
    const [t0, t1] = plot.drawn, at = t(ev.clientX), f = ev.deltaY < 0 ? 1 / 1.25 : 1.25;
    plot.range = [at - (at - t0) * f, at + (t1 - at) * f];
    drawProgress();
  }, { passive: false });
  const hitAt = (ev) => plotHit(...local(ev, box));
  box.addEventListener("click", (ev) => {
    if (dragged) { dragged = false; return; }
    const i = hitAt(ev);
    if (i >= 0) { ev.stopPropagation(); select(plot.marks.ids[i]); }
  });
  box.addEventListener("mousemove", (ev) => {
    const i = hitAt(ev);
    box.style.cursor = i >= 0 ? "pointer" : "crosshair";
    if (i < 0) { tip.hidden = true; return; }
    tip.textContent = recordTip(plot.data.rows[plot.marks.rows[i]]);
    showTip(tip, box, ev);
  });
  box.addEventListener("mouseleave", () => { tip.hidden = true; });
  box.addEventListener("dblclick", () => { plot.range = null; drawProgress(); });
  $("#progress-reset").addEventListener("click", () => { plot.range = null; drawProgress(); });
  $("#progress-node").addEventListener("change", () => { drawProgress(); pushRoute(); });
  $("#progress-gpu").addEventListener("change", () => { drawProgress(); pushRoute(); });
  let resized = null;
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => { if (state.tab === "progress") drawProgress(); }, 150);
  });
}

// ---- frontier, nodes, activity ------------------------------------------------------------------
function verification(r) {
  if (r.verification) return r.verification;
  return r.verified ? "verified" : "unverified";
}

async function loadFrontier() {
  const rows = await api(`/api/frontier?limit=200&${taskParam()}`);
  const body = $("#frontier tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr", null, null,
      el("td", r.status, short(r.id)), el("td", null, num(r.val_bpb)), el("td", null, r.depth),
      el("td", null, r.gpu_model), el("td", null, r.node_display_name || short(r.node_id)),
      el("td", null, verification(r)), el("td", null, r.description));
    tr.addEventListener("click", () => select(r.id));
    body.appendChild(tr);
  }
  if (!rows.length) emptyRow(body, `No frontier yet: the task's best keep records appear here; ${firstRun()}.`);
}

async function loadNodes() {
  const sort = $("#nodes-sort").value, activity = $("#nodes-activity").value;
  const rows = await api(`/api/nodes?sort=${sort}&activity=${activity}&${taskParam()}`);
  const body = $("#nodes tbody");
  body.replaceChildren();
  for (const n of rows) {
    const tr = el("tr", null, null,
      el("td", null, short(n.node_id)), el("td", null, n.display_name || "-"),
      el("td", null, n.activity), el("td", null, n.experiment_count), el("td", null, n.keep_count),
      el("td", null, n.frontier_count), el("td", null, n.verified_count),
      el("td", null, num(n.best_val_bpb)), el("td", null, n.gpu_models.join(", ")));
    tr.addEventListener("click", () => showNode(n.node_id));
    body.appendChild(tr);
  }
  if (!rows.length) emptyRow(body, "No node has published a record in this task yet (or none matches the activity filter).");
}

function activityItem(e) {
  const li = el("li", e.kind === "crash" ? "crash" : e.kind === "discard" ? "discard" : "keep", e.headline,
    el("span", "impact", e.impact));
  li.appendChild(el("div", "hint", `${when(e.timestamp)} · ${e.summary}`));
  li.dataset.id = e.record.id;
  li.addEventListener("click", () => select(e.record.id));
  return li;
}

async function loadActivity() {
  const events = await api(`/api/feed?limit=50&${taskParam()}`);
  const list = $("#activity");
  list.replaceChildren(...events.map(activityItem));
  if (!events.length) list.replaceChildren(el("li", "hint empty", `Nothing has happened in this task yet: records, verifications and challenges appear here as they arrive; ${firstRun()}.`));
}

// ---- detail panel ---------------------------------------------------------------------------
function rows(pairs) {
  const dl = el("dl");
  for (const [k, v] of pairs) {
    dl.appendChild(el("dt", null, k));
    dl.appendChild(v instanceof Node ? el("dd", null, null, v) : el("dd", null, v == null || v === "" ? "-" : v));
  }
  return dl;
}

function link(text, onClick) {
  const a = el("a", "link", text);
  a.addEventListener("click", onClick);
  return a;
}

function coloredDiff(diff) {
  const pre = el("pre", "diff");
  for (const line of String(diff).split("\n")) {
    const cls = line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : null;
    pre.appendChild(el("span", cls, line + "\n"));
  }
  return pre;
}

async function select(id) {
  state.selected = id;
  state.node = null;
  pushRoute();
  markPath();
  panTo(id);
  const detail = $("#detail");
  let r, lineage, kids;
  try {
    [r, lineage, kids] = await Promise.all([
      api(`/api/experiment/${id}`), api(`/api/experiment/${id}/ancestor`), api(`/api/experiment/${id}/children`),
    ]);
  } catch (err) {
    detail.replaceChildren(el("p", "hint", `cannot load ${short(id)}: ${err.message}`));
    return;
  }
  const parent = lineage[1];
  let delta = null;
  if (parent && typeof r.val_bpb === "number" && typeof parent.val_bpb === "number") {
    const d = r.val_bpb - parent.val_bpb;
    delta = el("span", d < 0 ? "better" : d > 0 ? "worse" : null, `${d <= 0 ? "" : "+"}${d.toFixed(6)} vs parent`);
  }
  const head = el("h2", null, r.id);
  head.id = "detail-id";
  const compare = el("button", "compare", state.compare.includes(r.id) ? "in the comparison" : "compare");
  compare.addEventListener("click", () => {
    toggleCompare(r.id);
    compare.textContent = state.compare.includes(r.id) ? "in the comparison" : "compare";
  });
  const pills = el("div", null, null,
    el("span", `pill ${r.status}`, r.status),
    r.is_frontier ? el("span", "pill", "frontier") : null,
    el("span", "pill", verification(r)), compare);
  const publisher = link(r.node_display_name || short(r.node_id), () => showNode(r.node_id));
  const artifactBox = el("div");
  const show = el("button", null, "show artifact");
  show.addEventListener("click", async () => {
    try {
      if (!HEX64.test(r.code_cid)) throw new Error("not a content id");
      const a = await api(`/api/artifact/${r.code_cid}`);
      artifactBox.replaceChildren(el("pre", "code", a.content));
    } catch (err) {
      artifactBox.replaceChildren(el("p", "hint", `artifact not held here: ${err.message}`));
    }
  });
  artifactBox.appendChild(show);
  const lineageList = el("ol");
  for (const a of lineage) lineageList.appendChild(el("li", a.status, null, link(`${short(a.id)} ${num(a.val_bpb)}`, () => select(a.id))));
  const curveBox = el("div", null, null, el("p", "hint", "loading the training curve…"));
  const childList = el("ul");
  for (const c of kids) childList.appendChild(el("li", c.status, null, link(`${short(c.id)} ${num(c.val_bpb)} ${c.description}`, () => select(c.id))));
  detail.replaceChildren(...[
    head, pills,
    rows([
      [r.metric || "val_bpb", el("span", null, `${num(r.val_bpb)} `, delta)],
      ["description", r.description],
      ["hypothesis", r.hypothesis],
      ["publisher", publisher],
      ["parent", r.parent ? link(short(r.parent), () => select(r.parent)) : "root"],
      ["task", short(r.task_id)],
      ["hardware", `${r.gpu_model} · ${num(r.peak_vram_mb, 0)} MB peak`],
      // a command task's record has neither (its metric comes from an evaluator)
      r.num_steps || r.num_params ? ["steps / params", `${r.num_steps} / ${r.num_params}`] : null,
      ["budget", `${r.time_budget} s`],
      ["agent", r.agent_model],
      ["time", when(r.timestamp)],
      ["artifact", short(r.code_cid)],
    ].filter(Boolean)),
    el("h3", null, "training curve"), curveBox,
    el("h3", null, "diff"), r.diff ? coloredDiff(r.diff) : el("p", "hint", "no diff (a root, or unchanged)"),
    el("h3", null, "artifact"), artifactBox,
    r.run_output ? el("h3", null, "output of the run (this node)") : null,
    r.run_output ? el("pre", "code output", r.run_output) : null,
    r.rerun_output ? el("h3", null, "output of this node's rerun (verification)") : null,
    r.rerun_output ? el("pre", "code output", r.rerun_output) : null,
    el("h3", null, `lineage (${lineage.length})`), lineageList,
    el("h3", null, `children (${kids.length})`), childList,
  ].filter(Boolean));
  api(`/api/experiment/${r.id}/curve`).then((c) => drawCurve(curveBox, c)).catch(() =>
    curveBox.replaceChildren(el("p", "hint", "no training curve here")));
}

/** A record's loss curve (this node's run), its parent's and this node's rerun of it, one
 *  chart: loss over step. Curves are this node's own logs, so the chart says so. */
function drawCurve(box, c) {
  drawCurves(box, [
    ["run", "this run", c.run],
    ["parent", `parent ${short(c.parent_id)}`, c.parent_run],
    ["rerun", "this node's rerun", c.rerun],
  ], true);
}

/** Loss over step for each [class, label, points] that has points, in one chart. */
function drawCurves(box, all, isRecordPage) {
  const series = all.filter(([, , pts]) => Array.isArray(pts) && pts.length);
  if (!series.length) {
    box.replaceChildren(el("p", "hint", "no training curve here: this node did not train or re-run this record (curves are local logs, never synced)"));
    return;
  }
  const W = 380, H = 180, L = 44, R = 8, T = 8, B = 22;
  const pts = series.flatMap(([, , p]) => p).filter((p) => typeof p[1] === "number");
  const [s0, s1] = span(pts.map((p) => p[0]));
  let [l0, l1] = span(pts.map((p) => p[1]));
  if (l1 <= l0) { l0 -= 0.5; l1 += 0.5; }
  const x = (s) => L + ((s - s0) / Math.max(1, s1 - s0)) * (W - L - R);
  const y = (l) => T + (1 - (l - l0) / (l1 - l0)) * (H - T - B);
  const chart = svg("svg", { class: "curve-chart", viewBox: `0 0 ${W} ${H}`, width: "100%" });
  if (isRecordPage) chart.id = "curve";
  for (let i = 0; i <= 3; i++) {
    const l = l0 + ((l1 - l0) * i) / 3;
    chart.appendChild(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(l), y2: y(l) }));
    const t = svg("text", { x: L - 4, y: y(l) + 3, "text-anchor": "end" }); t.textContent = l.toFixed(2); chart.appendChild(t);
  }
  const xs = svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }); xs.textContent = `step (to ${s1})`; chart.appendChild(xs);
  const legend = el("div", "hint");
  for (const [cls, label, p] of series) {
    const d = p.filter((q) => typeof q[1] === "number").map((q, i) => `${i ? "L" : "M"}${x(q[0]).toFixed(1)},${y(q[1]).toFixed(1)}`).join("");
    const path = svg("path", { class: `curve ${cls}`, d });
    path.dataset.points = String(p.length);
    chart.appendChild(path);
    const last = p[p.length - 1];
    legend.appendChild(el("span", `legend ${cls}`, `${label}: loss ${num(last[1], 3)} at step ${last[0]}, ${num(last[2] / 1000, 1)}k tok/s  `));
  }
  box.replaceChildren(chart, legend, el("p", "hint", "Local data: this node's own training logs, not synced and not signed."));
}

async function showNode(nodeId) {
  state.node = nodeId;
  state.selected = null;
  pushRoute();
  const detail = $("#detail");
  let page;
  try {
    page = await api(`/api/node/${nodeId}?limit=50&${taskParam()}`);
  } catch (err) {
    detail.replaceChildren(el("p", "hint", `cannot load node ${short(nodeId)}: ${err.message}`));
    return;
  }
  const n = page.node;
  const head = el("h2", null, n.display_name || short(n.node_id));
  head.id = "detail-node";
  const list = el("ul");
  for (const r of page.experiments) list.appendChild(el("li", r.status, null, link(`${short(r.id)} ${num(r.val_bpb)} ${r.description}`, () => select(r.id))));
  detail.replaceChildren(
    head,
    rows([
      ["node id", n.node_id],
      ["bio", n.bio],
      ["website", n.website],
      ["activity", n.activity],
      ["experiments", `${n.experiment_count} (${n.keep_count} keep, ${n.discard_count} discard, ${n.crash_count} crash)`],
      ["frontier", n.frontier_count],
      ["verified", n.verified_count],
      ["score", n.reputation.score],
      ["best", num(n.best_val_bpb)],
      ["hardware", n.gpu_models.join(", ")],
      ["agents", n.agent_models.join(", ")],
      ["active", `${when(n.first_seen)} → ${when(n.last_seen)}`],
    ]),
    el("h3", null, `experiments (${page.total_experiments})`), list,
  );
}

// ---- search ---------------------------------------------------------------------------------
let searchTimer = null;
async function search(q) {
  const box = $("#search-results");
  if (q.trim().length < 2) { box.hidden = true; return; }
  const [records, nodes] = await Promise.all([
    api(`/api/search?q=${encodeURIComponent(q)}&${taskParam()}`).catch(() => []),
    api(`/api/nodes/search?q=${encodeURIComponent(q)}&${taskParam()}`).catch(() => []),
  ]);
  box.replaceChildren();
  for (const n of nodes) {
    const d = el("div", null, `node ${short(n.node_id)} ${n.display_name || ""}`);
    d.addEventListener("click", () => { box.hidden = true; showNode(n.node_id); });
    box.appendChild(d);
  }
  for (const r of records) {
    const d = el("div", r.status, `${short(r.id)} ${num(r.val_bpb)} ${r.description}`);
    d.addEventListener("click", () => { box.hidden = true; select(r.id); });
    box.appendChild(d);
  }
  if (!nodes.length && !records.length) box.appendChild(el("div", "hint", "nothing found"));
  box.hidden = false;
}

// ---- tabs, live updates, start ----------------------------------------------------------------
function showTab(name) {
  state.tab = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${name}`;
  if (name === "nodes") loadNodes().catch(console.error);
  if (name === "progress") drawProgress();
  if (name === "dag") {
    if (dag.pendingOverview) overview();
    if (dag.pendingPan) { const id = dag.pendingPan; dag.pendingPan = null; if (id === state.selected) panTo(id); }
    applyView();
  }
  if (name === "compare") {
    $("#compare").replaceChildren(el("p", "hint", "loading…"));
    loadCompare().catch(console.error);
  }
  pushRoute();
}

async function refreshAll(refit = true) {
  await Promise.all([loadStat(), loadTasks(), loadFrontier(), loadActivity(), loadRecords(refit ? "fit" : false)]).catch(console.error);
  if (state.tab === "nodes") loadNodes().catch(console.error);
}

let pending = null;
function startLive(lost = false) {
  const dot = $("#live");
  const source = new EventSource("/api/events");
  // after a dropped connection EventSource reconnects by itself; after a refusal (the node
  // serves 64 live clients at most: 503) it gives up, so start again a little later. What
  // happened meanwhile is read again on reconnect.
  source.onopen = () => { dot.className = "live on"; if (lost) { lost = false; refreshAll(false); } };
  source.onerror = () => {
    dot.className = "live off"; lost = true;
    if (source.readyState === EventSource.CLOSED) setTimeout(() => startLive(true), 10000);
  };
  source.onmessage = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); } catch { return; }
    if (event.event === "resync") { refreshAll(false); return; }
    if (!["experiment", "verdict", "task", "profile"].includes(event.event)) return;
    if (!pending) pending = setTimeout(() => { pending = null; refreshAll(false); }, 400);
  };
}

function start() {
  setUpPanZoom();
  setUpProgress();
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#task-select").addEventListener("change", (ev) => chooseTask(ev.target.value));
  $("#status-filter").addEventListener("change", (ev) => { state.status = ev.target.value; drawGraph(); });
  $("#nodes-sort").addEventListener("change", () => loadNodes().catch(console.error));
  $("#nodes-activity").addEventListener("change", () => loadNodes().catch(console.error));
  const input = $("#search");
  input.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => search(input.value), 180); });
  document.addEventListener("keydown", onKey);
  $("#help-button").addEventListener("click", () => toggleHelp());
  loadTraining();
  setInterval(loadTraining, 2000);
  window.addEventListener("popstate", () => applyRoute().catch(console.error));
  refreshAll(true).then(() => { if (location.hash.length > 1) applyRoute().catch(console.error); else history.replaceState(null, "", routeOf()); });
  startLive();
  setInterval(() => refreshAll(false), 30000);
}
start();
