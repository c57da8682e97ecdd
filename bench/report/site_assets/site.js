// taxbench static leaderboard: sortable/filterable table and the alignment-tax scatter.
// Plain JavaScript, no library, no network: reads the inline JSON of #leaderboard-data.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("leaderboard-data").textContent);
  const specs = Object.fromEntries(data.specs.map((s) => [s.key, s]));
  const headline = data.specs.filter((s) => s.headline);
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f"];
  const labels = [...new Set(data.entries.filter((e) => !e.baseline).map((e) => e.label))].sort();
  const color = (e) => (e.baseline ? "#000000" : PALETTE[labels.indexOf(e.label) % PALETTE.length]);

  // ------------------------------------------------------------------ formatting
  function num(x, sign) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    const a = Math.abs(x);
    if (a > 0 && a < 0.01) return (sign && x > 0 ? "+" : "") + x.toPrecision(2);
    const digits = a >= 10 ? 1 : a >= 1 ? 2 : 3;
    return (sign && x >= 0 ? "+" : "") + x.toFixed(digits);
  }
  function interval(iv) {
    if (!iv || iv.est === null) return "–";
    let text = num(iv.est, true) + (iv.sig ? "*" : "");
    if (iv.lo !== null && iv.hi !== null) text += " [" + num(iv.lo, true) + ", " + num(iv.hi, true) + "]";
    return text;
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ----------------------------------------------------------------------- table
  // Each column: header, tooltip, cell text, sort value (number or string; null sorts last).
  const columns = [
    { head: "model", help: "model name", text: (e) => e.model, sort: (e) => e.model },
    { head: "method", help: "debiasing method (/bias type it targets)", text: (e) => e.label + (e.degenerate ? " ⚠" : ""),
      sort: (e) => e.label },
    { head: "bias type", help: "bias type the method targets", text: (e) => e.bias_type || "", sort: (e) => e.bias_type || "" },
    { head: "suite", help: "benchmark suite", text: (e) => e.suite || "", sort: (e) => e.suite || "" },
    { head: "seed", help: "run seed", text: (e) => String(e.seed), sort: (e) => e.seed },
    { head: "bias reduction, pts (↑)", help: "mean decrease of the distance to the ideal over " + data.bias_keys.join(", ") +
      " (points; > 0 = less biased), with its 95% interval", text: (e) => (e.baseline ? "baseline" : interval(e.bias)),
      sort: (e) => (e.bias ? e.bias.est : null) },
    { head: "capability change, % (↑)", help: "mean relative change of " + data.capability_keys.join(", ") +
      " (%, > 0 = better), with its 95% interval", text: (e) => (e.baseline ? "baseline" : interval(e.capability)),
      sort: (e) => (e.capability ? e.capability.est : null) },
    { head: "verdict", help: "significant changes of whole-benchmark metrics", text: (e) => e.verdict, sort: (e) => e.verdict },
    ...headline.map((s) => ({
      head: s.header, help: s.key + " (" + s.arrow + "): " + s.help, key: s.key,
      text: (e) => num(e.metrics[s.key]) + (e.changes[s.key] ? "\nΔ " + interval(e.changes[s.key].delta) : ""),
      sort: (e) => (e.metrics[s.key] === undefined ? null : e.metrics[s.key]),
    })),
    { head: "result", help: "the run's result JSON", link: true, text: (e) => e.run_id, sort: (e) => e.run_id },
  ];
  const table = document.getElementById("leaderboard");
  const tbody = table.tBodies[0];
  const headRow = el("tr");
  columns.forEach((c, i) => {
    const th = el("th", { title: c.help, "data-col": String(i), "aria-sort": "none", tabindex: "0" }, c.head);
    th.addEventListener("click", () => sortBy(i));
    th.addEventListener("keydown", (ev) => { if (ev.key === "Enter") sortBy(i); });
    headRow.appendChild(th);
  });
  table.tHead.appendChild(headRow);
  data.entries.forEach((e, row) => {
    const tr = el("tr", { "data-model": e.model, "data-method": e.label, "data-row": String(row) });
    if (e.degenerate) tr.classList.add("degenerate");
    columns.forEach((c) => {
      const value = c.sort(e);
      const td = el("td", { "data-sort": value === null || value === undefined ? "" : String(value) });
      if (c.link) {
        td.appendChild(el("a", { href: e.result }, c.text(e)));
      } else {
        td.textContent = c.text(e);
      }
      if (typeof value === "number") td.classList.add("num");
      tr.appendChild(td);
    });
    tr.addEventListener("click", () => showDetails(e));
    tbody.appendChild(tr);
  });
  let sortState = { col: null, asc: true };
  function sortBy(i) {
    const asc = sortState.col === i ? !sortState.asc : true;
    sortState = { col: i, asc: asc };
    const rows = [...tbody.rows];
    const key = (tr) => tr.cells[i].getAttribute("data-sort");
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");  // empty last, either direction
      const nx = Number(x), ny = Number(y);
      const cmp = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
      return asc ? cmp : -cmp;
    });
    rows.forEach((tr) => tbody.appendChild(tr));
    headRow.querySelectorAll("th").forEach((th, j) => th.setAttribute("aria-sort",
      j === i ? (asc ? "ascending" : "descending") : "none"));
  }
  const modelFilter = document.getElementById("model-filter");
  const methodFilter = document.getElementById("method-filter");
  data.models.forEach((m) => modelFilter.appendChild(el("option", { value: m }, m)));
  function applyFilter() {
    const model = modelFilter.value, method = methodFilter.value.trim().toLowerCase();
    let shown = 0;
    [...tbody.rows].forEach((tr) => {
      const ok = (!model || tr.dataset.model === model) && (!method || tr.dataset.method.toLowerCase().includes(method));
      tr.hidden = !ok;
      shown += ok;
    });
    document.getElementById("row-count").textContent = shown + " of " + tbody.rows.length + " runs";
  }
  modelFilter.addEventListener("change", applyFilter);
  methodFilter.addEventListener("input", applyFilter);
  applyFilter();

  // --------------------------------------------------------------------- details
  const details = document.getElementById("details");
  function showDetails(e) {
    details.replaceChildren();
    details.hidden = false;
    const head = el("h3", {}, e.model + " / " + e.label + " ");
    head.appendChild(el("a", { href: e.result }, "result JSON"));
    details.appendChild(head);
    details.appendChild(el("p", { class: "meta" }, e.verdict));
    const t = el("table", { class: "details" });
    const hr = el("tr");
    ["metric", "value", "Δ vs " + data.baseline, "what it measures"].forEach((h) => hr.appendChild(el("th", {}, h)));
    t.appendChild(hr);
    Object.keys(e.metrics).forEach((k) => {
      const tr = el("tr");
      const c = e.changes[k];
      [k + " (" + specs[k].arrow + ")", num(e.metrics[k]), c ? interval(c.delta) : "–", specs[k].help]
        .forEach((v) => tr.appendChild(el("td", {}, v)));
      t.appendChild(tr);
    });
    details.appendChild(t);
  }

  // --------------------------------------------------------------------- scatter
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("scatter");
  const W = 640, H = 420, M = { left: 64, right: 16, top: 16, bottom: 48 };
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  const points = data.entries.filter((e) => e.bias && e.capability && e.bias.est !== null && e.capability.est !== null);
  function extent(get) {
    const vals = [0];
    points.forEach((e) => { const iv = get(e); [iv.est, iv.lo, iv.hi].forEach((v) => { if (v !== null) vals.push(v); }); });
    let lo = Math.min(...vals), hi = Math.max(...vals);
    const pad = (hi - lo || 1) * 0.08;
    return [lo - pad, hi + pad];
  }
  const [x0, x1] = extent((e) => e.bias), [y0, y1] = extent((e) => e.capability);
  const sx = (v) => M.left + (v - x0) / (x1 - x0) * (W - M.left - M.right);
  const sy = (v) => H - M.bottom - (v - y0) / (y1 - y0) * (H - M.top - M.bottom);
  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  }
  function ticks(lo, hi) {
    const step0 = (hi - lo) / 6, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-12; v += step) out.push(Math.abs(v) < step / 1e6 ? 0 : v);
    return out;
  }
  ticks(x0, x1).forEach((v) => {
    svgEl("line", { x1: sx(v), x2: sx(v), y1: M.top, y2: H - M.bottom, class: "grid" });
    svgEl("text", { x: sx(v), y: H - M.bottom + 16, class: "tick", "text-anchor": "middle" }, String(+v.toPrecision(6)));
  });
  ticks(y0, y1).forEach((v) => {
    svgEl("line", { x1: M.left, x2: W - M.right, y1: sy(v), y2: sy(v), class: "grid" });
    svgEl("text", { x: M.left - 6, y: sy(v) + 4, class: "tick", "text-anchor": "end" }, String(+v.toPrecision(6)));
  });
  svgEl("line", { x1: sx(0), x2: sx(0), y1: M.top, y2: H - M.bottom, class: "zero" });
  svgEl("line", { x1: M.left, x2: W - M.right, y1: sy(0), y2: sy(0), class: "zero" });
  svgEl("text", { x: (M.left + W - M.right) / 2, y: H - 10, class: "axis", "text-anchor": "middle" },
    "bias reduction, points (→ less biased)");
  svgEl("text", { x: 16, y: (M.top + H - M.bottom) / 2, class: "axis", "text-anchor": "middle",
    transform: "rotate(-90 16 " + (M.top + H - M.bottom) / 2 + ")" }, "capability change, % (↑ better)");
  const SHAPES = [
    (x, y) => `M${x - 6},${y}a6,6 0 1,0 12,0a6,6 0 1,0 -12,0`,
    (x, y) => `M${x - 5.5},${y - 5.5}h11v11h-11z`,
    (x, y) => `M${x},${y - 7}l6.5,11.5h-13z`,
    (x, y) => `M${x},${y - 7}l7,7l-7,7l-7,-7z`,
  ];
  const tooltip = document.getElementById("tooltip");
  const hiddenModels = new Set();
  const marks = [];
  points.forEach((e) => {
    const g = document.createElementNS(NS, "g");
    g.setAttribute("class", "run");
    g.setAttribute("data-model", e.model);
    svg.appendChild(g);
    const x = sx(e.bias.est), y = sy(e.capability.est);
    const bar = (a, b) => { const l = document.createElementNS(NS, "line");
      for (const [k, v] of Object.entries({ x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: color(e), class: "bar" })) l.setAttribute(k, v);
      g.appendChild(l); };
    if (e.bias.lo !== null) bar([sx(e.bias.lo), y], [sx(e.bias.hi), y]);
    if (e.capability.lo !== null) bar([x, sy(e.capability.lo)], [x, sy(e.capability.hi)]);
    const p = document.createElementNS(NS, "path");
    const shape = SHAPES[data.models.indexOf(e.model) % SHAPES.length];
    for (const [k, v] of Object.entries({ d: shape(x, y), fill: color(e), class: "point", tabindex: "0",
      "data-label": e.label, "data-model": e.model })) p.setAttribute(k, v);
    g.appendChild(p);
    p.addEventListener("mouseenter", (ev) => {
      tooltip.replaceChildren();
      tooltip.appendChild(el("strong", {}, e.label));
      tooltip.appendChild(document.createTextNode(" · " + e.model));
      [["bias reduction", e.baseline ? "0 (baseline)" : interval(e.bias) + " pts"],
       ["capability change", e.baseline ? "0 (baseline)" : interval(e.capability) + " %"],
       ["verdict", e.verdict]].forEach(([k, v]) => tooltip.appendChild(el("div", {}, k + ": " + v)));
      tooltip.hidden = false;
      const box = svg.getBoundingClientRect();
      tooltip.style.left = (window.scrollX + box.left + x * box.width / W + 12) + "px";
      tooltip.style.top = (window.scrollY + box.top + y * box.height / H + 12) + "px";
    });
    p.addEventListener("mouseleave", () => { tooltip.hidden = true; });
    p.addEventListener("click", () => showDetails(e));
    marks.push(g);
  });
  const legend = document.getElementById("legend");
  legend.appendChild(el("div", { class: "legend-title" }, "models (toggle)"));
  data.models.forEach((m, i) => {
    const label = el("label", { class: "legend-model" });
    const box = el("input", { type: "checkbox", "data-model": m });
    box.checked = true;
    box.addEventListener("change", () => {
      if (box.checked) hiddenModels.delete(m); else hiddenModels.add(m);
      marks.forEach((g) => { g.style.display = hiddenModels.has(g.getAttribute("data-model")) ? "none" : ""; });
    });
    label.appendChild(box);
    label.appendChild(document.createTextNode(" " + ["●", "■", "▲", "◆"][i % 4] + " " + m));
    legend.appendChild(label);
  });
  legend.appendChild(el("div", { class: "legend-title" }, "methods"));
  [data.baseline, ...labels].forEach((lab) => {
    const item = el("div", { class: "legend-method" });
    const sw = el("span", { class: "swatch" });
    sw.style.background = lab === data.baseline ? "#000000" : PALETTE[labels.indexOf(lab) % PALETTE.length];
    item.appendChild(sw);
    item.appendChild(document.createTextNode(" " + lab));
    legend.appendChild(item);
  });
})();
