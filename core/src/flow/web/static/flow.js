// flow's few behaviours: the live grid, live run list, streamed logs, confirmations.
"use strict";

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;  // text, never HTML
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(url + ": " + response.status);
  return response.json();
}

// ---------------------------------------------------------------------------------- grid
function renderGrid(box, data, collapsed) {
  const table = el("table", { class: "grid" });
  const head = el("tr");
  head.appendChild(el("th", {}, ""));
  data.runs.forEach((run) => {
    const th = el("th");
    const link = el("a", { href: box.dataset.graphUrl + "?run_id=" + encodeURIComponent(run.run_id), title: run.run_id + ": " + run.state });
    link.appendChild(el("span", { class: "cell s-" + run.state, "data-run": run.run_id }));
    th.appendChild(link);
    head.appendChild(th);
  });
  table.appendChild(head);
  data.rows.forEach((row) => {
    const tr = el("tr", { "data-task": row.id, class: row.group ? "group" : "task" });
    let parent = row.parent, hidden = false;
    while (parent) { if (collapsed.has(parent)) hidden = true; parent = (data.rows.find((r) => r.id === parent) || {}).parent; }
    if (hidden) tr.classList.add("hidden");
    const name = el("td", { class: "name indent-" + Math.min(row.depth, 3) }, (row.group ? (collapsed.has(row.id) ? "▸ " : "▾ ") : "") + row.label + (row.mapped ? " [ ]" : ""));
    if (row.group) name.addEventListener("click", () => { collapsed.has(row.id) ? collapsed.delete(row.id) : collapsed.add(row.id); renderGrid(box, data, collapsed); });
    tr.appendChild(name);
    [...row.states].forEach((code, i) => {
      const td = el("td");
      if (code === " ") { td.appendChild(el("span", { class: "cell absent" })); tr.appendChild(td); return; }
      const state = data.codes[code] || "none";
      const run = data.runs[i];
      const title = row.id + " · " + run.run_id + ": " + state + (row.summaries ? " (" + row.summaries[i] + ")" : "");
      const cell = el("span", { class: "cell s-" + state, title: title, "data-state": state });
      if (!row.group) {
        const href = box.dataset.tiUrl.replace("__RUN__", encodeURIComponent(run.run_id)).replace("__TASK__", encodeURIComponent(row.id));
        const link = el("a", { href: href }); link.appendChild(cell); td.appendChild(link);
      } else td.appendChild(cell);
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  box.replaceChildren(table);
  if (!data.runs.length) box.appendChild(el("p", {}, "No runs yet: trigger one."));
}

function startGrid(box) {
  const collapsed = new Set();
  async function refresh() {
    try {
      const data = await getJSON(box.dataset.url);
      renderGrid(box, data, collapsed);
      box.dataset.inProgress = data.in_progress ? "true" : "false";
      setTimeout(refresh, data.in_progress ? 2000 : 10000);
    } catch (err) { box.dataset.error = String(err); setTimeout(refresh, 10000); }
  }
  refresh();
}

// ------------------------------------------------------------------------------- run list
function startRuns(table) {
  async function refresh() {
    let next = 10000;
    try {
      const data = await getJSON(table.dataset.url);
      data.dag_runs.forEach((run) => {
        const row = table.querySelector('tr[data-run="' + CSS.escape(run.run_id) + '"]');
        if (!row) return;
        const badge = row.querySelector(".state .badge");
        badge.className = "badge s-" + run.state; badge.textContent = run.state;
        if (run.end_date) row.querySelector(".end").textContent = run.end_date.slice(0, 19).replace("T", " ");
        if (run.duration !== null) row.querySelector(".duration").textContent = run.duration.toFixed(1) + "s";
      });
      if (data.in_progress) next = 2000;
    } catch (err) { table.dataset.error = String(err); }
    setTimeout(refresh, next);
  }
  refresh();
}

// ------------------------------------------------------------------------------------ logs
function startLog(pre) {
  let token = "";
  async function more() {
    try {
      const sep = pre.dataset.url.includes("?") ? "&" : "?";
      const data = await getJSON(pre.dataset.url + (token ? sep + "token=" + encodeURIComponent(token) : ""));
      if (data.content) pre.appendChild(document.createTextNode(data.content));
      token = data.continuation_token;
      if (!data.end_of_log) setTimeout(more, data.content ? 200 : 2000);
      else pre.dataset.complete = "true";
    } catch (err) { pre.dataset.error = String(err); }
  }
  more();
}

document.addEventListener("DOMContentLoaded", () => {
  const grid = document.getElementById("grid"); if (grid) startGrid(grid);
  const runs = document.getElementById("runs"); if (runs) startRuns(runs);
  document.querySelectorAll("pre.log[data-url]").forEach(startLog);
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
  });
});
