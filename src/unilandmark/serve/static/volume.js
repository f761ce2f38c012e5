// unilandmark review, volumes: the page. Plain JavaScript, no build step, nothing from
// elsewhere. The server sends one slice per request (raw values); the page windows it.
//
// Coordinates:
// - DISPLAY voxels (x, y, z): the volume turned so that x points to the patient's Left, y
//   Posterior, z Superior (LPS; a permutation and flips of the stored axes, no
//   interpolation). Every point on this page is held in display voxels (centre of the
//   first voxel at 0); the server's 4 x 4 matrices map them to world millimetres, LPS
//   (meta.display.to_world) and back (meta.display.to_display).
// - Each view cuts the display volume along one axis (meta.views[view]: axis, cols, rows,
//   reversed_rows): axial (z; columns x R->L, rows y A->P), coronal (y; columns x, rows z
//   S->I), sagittal (x; columns y A->P, rows z S->I). A view's SLICE pixels (col, row) have
//   their centres at whole numbers; screen = (col * sx + tx, row * sy + ty), sx and sy
//   carrying the voxel size in mm, so every view has the same mm per screen pixel.
// - The server takes and gives points as world LPS mm, [x, y, z] or null (absent).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const WRITE_HEADERS = { "X-Unilandmark": "1" };
  const VIEW_NAMES = ["axial", "coronal", "sagittal"];
  const DTYPES = { uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, float32: Float32Array };

  const app = {
    info: null,
    images: [], // [{name, status}] (volumes)
    current: null,
    meta: null, // GET /api/volumes/NAME
    state: null,
    points: [], // display voxels [x, y, z] or null
    human: [],
    selected: 0,
    cursor: [0, 0, 0], // display voxels: the crosshair; each view shows slice round(cursor[axis])
    zoom: 1,
    mmScale: 1, // screen pixels per mm at zoom 1
    views: {},
    window: { centre: 0, width: 1 },
    active: "axial",
    history: new Map(),
    loadToken: 0,
    syncTimer: null,
    editCount: 0,
    timings: [], // {name, start, meta, views, landmarks}: performance.now() marks
  };
  window.unilandmark = app; // for tests and the curious

  // -- server ------------------------------------------------------------------------
  function volumeUrl(name, tail = "") {
    return `/api/volumes/${encodeURIComponent(name)}${tail}`;
  }

  function describe(data, response) {
    if (data && typeof data.detail === "string") return data.detail;
    if (data && Array.isArray(data.detail)) {
      return data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    }
    return `${response.status} ${response.statusText}`;
  }

  async function api(method, url, body) {
    const options = { method, headers: {} };
    if (method !== "GET") Object.assign(options.headers, WRITE_HEADERS);
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) throw new Error(describe(data, response));
    return data;
  }

  // -- geometry ----------------------------------------------------------------------
  function apply4(m, p) {
    return [0, 1, 2].map((i) => m[i][0] * p[0] + m[i][1] * p[1] + m[i][2] * p[2] + m[i][3]);
  }
  const toWorld = (p) => apply4(app.meta.display.to_world, p);
  const toDisplay = (w) => apply4(app.meta.display.to_display, w);
  const toStored = (w) => apply4(app.meta.to_voxel, w);
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function size(axis) {
    return app.meta.display.size[axis];
  }

  function sliceIndex(v) {
    return clamp(Math.round(app.cursor[v.spec.axis]), 0, size(v.spec.axis) - 1);
  }

  // display voxel -> slice pixel (col, row) of view v
  function toView(v, p) {
    const s = v.spec;
    const row = s.reversed_rows ? size(s.rows) - 1 - p[s.rows] : p[s.rows];
    return [p[s.cols], row];
  }

  // slice pixel (col, row) of view v -> display voxel, the slice axis taken from base
  function fromView(v, col, row, base) {
    const s = v.spec;
    const p = base.slice();
    p[s.cols] = col;
    p[s.rows] = s.reversed_rows ? size(s.rows) - 1 - row : row;
    return p;
  }

  function clampToVolume(p) {
    return p.map((c, a) => clamp(c, -0.5, size(a) - 0.5));
  }

  function toScreen(v, cr) {
    return [cr[0] * v.sx + v.tx, cr[1] * v.sy + v.ty];
  }

  function fromEvent(v, event) {
    const rect = v.el.getBoundingClientRect();
    return [(event.clientX - rect.left - v.tx) / v.sx, (event.clientY - rect.top - v.ty) / v.sy];
  }

  // -- messages ----------------------------------------------------------------------
  function toast(text, kind = "info", ms = 4000) {
    const item = document.createElement("div");
    item.textContent = text;
    if (kind === "error") item.className = "error";
    $("toast").appendChild(item);
    setTimeout(() => item.remove(), kind === "error" ? Math.max(ms, 8000) : ms);
  }

  function viewerMessage(text) {
    const box = $("viewer-message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // -- the three views ---------------------------------------------------------------
  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }

  function buildViews() {
    for (const name of VIEW_NAMES) {
      const el = $(`view-${name}`);
      const canvas = document.createElement("canvas");
      canvas.className = "slice";
      const overlay = svg("svg", { class: "overlay" });
      const cross = svg("g", { class: "crosshair" });
      const h = svg("line", { class: "ch-h" });
      const vline = svg("line", { class: "ch-v" });
      cross.append(h, vline);
      const layer = svg("g", { class: "points" });
      overlay.append(cross, layer);
      const edges = {};
      for (const side of ["left", "right", "top", "bottom"]) {
        edges[side] = document.createElement("span");
        edges[side].className = `edge edge-${side}`;
        edges[side].dataset.edge = side;
      }
      const title = document.createElement("span");
      title.className = "view-title";
      title.textContent = name;
      const number = document.createElement("span");
      number.className = "slice-no";
      el.append(canvas, overlay, ...Object.values(edges), title, number);
      const v = { name, el, canvas, ctx: canvas.getContext("2d"), overlay, layer, h, vline, edges, number,
        spec: null, slice: null, busy: null, sx: 1, sy: 1, tx: 0, ty: 0, pointEls: [] };
      app.views[name] = v;
      wireView(v);
    }
  }

  function setupViews() {
    for (const v of Object.values(app.views)) {
      v.spec = app.meta.views[v.name];
      v.slice = null;
      v.busy = null;
      v.canvas.classList.remove("shown");
      for (const [side, span] of Object.entries(v.edges)) span.textContent = v.spec.labels[side];
      Object.assign(v.el.dataset, v.spec.labels);
      v.el.dataset.rows = v.spec.shape[0];
      v.el.dataset.cols = v.spec.shape[1];
    }
  }

  function fitViews() {
    if (!app.meta) return;
    let k = Infinity;
    for (const v of Object.values(app.views)) {
      const rect = v.el.getBoundingClientRect();
      const [rows, cols] = v.spec.shape;
      const [mx, my] = v.spec.pixel_mm;
      k = Math.min(k, rect.width / (cols * mx), rect.height / (rows * my));
    }
    app.mmScale = Math.max(1e-3, k * 0.94);
    app.zoom = 1;
    for (const v of Object.values(app.views)) {
      const rect = v.el.getBoundingClientRect();
      const [rows, cols] = v.spec.shape;
      v.sx = app.mmScale * v.spec.pixel_mm[0];
      v.sy = app.mmScale * v.spec.pixel_mm[1];
      v.tx = (rect.width - cols * v.sx) / 2 + 0.5 * v.sx;
      v.ty = (rect.height - rows * v.sy) / 2 + 0.5 * v.sy;
    }
    renderAll();
  }

  function zoomBy(factor) {
    if (!app.meta) return;
    const zoom = clamp(app.zoom * factor, 0.25, 40);
    const f = zoom / app.zoom;
    app.zoom = zoom;
    for (const v of Object.values(app.views)) {
      const [cx, cy] = toScreen(v, toView(v, app.cursor)); // the crosshair stays put
      v.sx *= f;
      v.sy *= f;
      const cr = toView(v, app.cursor);
      v.tx = cx - cr[0] * v.sx;
      v.ty = cy - cr[1] * v.sy;
    }
    renderAll();
  }

  function keepCursorInView() {
    for (const v of Object.values(app.views)) {
      const rect = v.el.getBoundingClientRect();
      const [x, y] = toScreen(v, toView(v, app.cursor));
      if (x < 0 || y < 0 || x > rect.width || y > rect.height) {
        const cr = toView(v, app.cursor);
        v.tx = rect.width / 2 - cr[0] * v.sx;
        v.ty = rect.height / 2 - cr[1] * v.sy;
      }
    }
  }

  // -- slices ------------------------------------------------------------------------
  async function requestSlice(v) {
    if (!app.meta) return;
    const index = sliceIndex(v);
    if (v.slice && v.slice.index === index && v.slice.name === app.current) return;
    if (v.busy) {
      v.busy.again = true;
      return;
    }
    const mine = { again: false };
    v.busy = mine;
    const name = app.current;
    const token = app.loadToken;
    try {
      const url = `${volumeUrl(name, `/slice/${v.name}/${index}`)}?v=${encodeURIComponent(app.meta.version)}`;
      const response = await fetch(url);
      if (!response.ok) {
        let data = null;
        try { data = await response.json(); } catch (_) { data = null; }
        throw new Error(describe(data, response));
      }
      const buffer = await response.arrayBuffer();
      const [rows, cols] = response.headers.get("X-Slice-Shape").split(" ").map(Number);
      const Kind = DTYPES[response.headers.get("X-Slice-Dtype")];
      if (token !== app.loadToken) return;
      v.slice = { name, index, rows, cols, data: new Kind(buffer) };
      paint(v);
      renderView(v);
    } catch (err) {
      if (token === app.loadToken) toast(`${name}: ${v.name} slice ${index}: ${err.message}`, "error");
    } finally {
      if (v.busy === mine) {
        v.busy = null;
        if (token === app.loadToken && (mine.again || !v.slice || v.slice.index !== sliceIndex(v))) {
          requestSlice(v);
        }
      }
    }
  }

  function requestSlices() {
    for (const v of Object.values(app.views)) requestSlice(v);
  }

  function paint(v) {
    const s = v.slice;
    if (!s) return;
    if (v.canvas.width !== s.cols || v.canvas.height !== s.rows) {
      v.canvas.width = s.cols;
      v.canvas.height = s.rows;
      v.canvas.style.width = `${s.cols}px`;
      v.canvas.style.height = `${s.rows}px`;
    }
    const image = v.ctx.createImageData(s.cols, s.rows);
    const out = image.data; // a Uint8ClampedArray: clamps and rounds
    const lo = app.window.centre - app.window.width / 2;
    const k = 255 / Math.max(app.window.width, 1e-9);
    const data = s.data;
    for (let i = 0, j = 0; i < data.length; i += 1, j += 4) {
      const g = (data[i] - lo) * k;
      out[j] = g;
      out[j + 1] = g;
      out[j + 2] = g;
      out[j + 3] = 255;
    }
    v.ctx.putImageData(image, 0, 0);
    v.canvas.classList.add("shown");
    const timing = app.timings[app.timings.length - 1];
    if (timing && timing.name === app.current && timing.views === null &&
        Object.values(app.views).every((w) => w.slice && w.slice.name === app.current)) {
      timing.views = performance.now();
      document.body.dataset.views = app.current;
    }
  }

  function paintAll() {
    for (const v of Object.values(app.views)) paint(v);
  }

  // -- drawing -----------------------------------------------------------------------
  function buildPoints() {
    for (const v of Object.values(app.views)) {
      v.layer.replaceChildren();
      v.pointEls = [];
      if (!app.state) continue;
      app.state.names.forEach((name, k) => {
        const g = svg("g", { class: "landmark", "data-index": k, "data-name": name });
        g.append(svg("circle", { class: "flag-ring", r: 11 }), svg("circle", { class: "select-ring", r: 9 }),
          svg("circle", { class: "dot-mark", r: 5 }), svg("text", {}),
          svg("circle", { class: "hit", r: 12, fill: "transparent" }));
        g.querySelector("text").textContent = `${k + 1} ${name}`;
        v.layer.appendChild(g);
        v.pointEls.push(g);
      });
    }
  }

  function colourClass(k) {
    if (app.human[k] || !app.state.confidence) return "human";
    const c = app.state.confidence[k];
    const levels = app.info.confidence_levels;
    if (c >= levels.high) return "conf-high";
    if (c < levels.low) return "conf-low";
    return "conf-mid";
  }

  function renderView(v) {
    if (!app.meta || !v.spec) return;
    const [rows, cols] = v.spec.shape;
    v.canvas.style.transform = `translate(${v.tx - 0.5 * v.sx}px, ${v.ty - 0.5 * v.sy}px) scale(${v.sx}, ${v.sy})`;
    Object.assign(v.el.dataset, { sx: v.sx, sy: v.sy, tx: v.tx, ty: v.ty, slice: sliceIndex(v) });
    v.number.textContent = `${sliceIndex(v) + 1} / ${v.spec.count}`;
    const [cx, cy] = toScreen(v, toView(v, app.cursor));
    const [x0, y0] = toScreen(v, [-0.5, -0.5]);
    const [x1, y1] = toScreen(v, [cols - 0.5, rows - 0.5]);
    for (const [line, attrs] of [[v.h, { x1: x0, x2: x1, y1: cy, y2: cy }], [v.vline, { x1: cx, x2: cx, y1: y0, y2: y1 }]]) {
      for (const [a, value] of Object.entries(attrs)) line.setAttribute(a, value);
    }
    if (!app.state) return;
    const here = sliceIndex(v);
    const flags = app.state.flags;
    v.pointEls.forEach((g, k) => {
      const p = app.points[k];
      if (!p) {
        g.style.display = "none";
        delete g.dataset.x;
        return;
      }
      const [sx, sy] = toScreen(v, toView(v, p));
      const near = Math.abs(p[v.spec.axis] - here) < 1;
      g.style.display = "";
      g.dataset.x = p[0];
      g.dataset.y = p[1];
      g.dataset.z = p[2];
      g.dataset.near = near ? "1" : "0";
      g.setAttribute("class", `landmark ${colourClass(k)}${k === app.selected ? " selected" : ""}${near ? "" : " far"}`);
      for (const c of g.querySelectorAll("circle")) {
        c.setAttribute("cx", sx);
        c.setAttribute("cy", sy);
      }
      g.querySelector(".flag-ring").style.display = flags && flags[k] && !app.human[k] ? "" : "none";
      const text = g.querySelector("text");
      text.setAttribute("x", sx + 9);
      text.setAttribute("y", sy - 8);
    });
    const chosen = v.pointEls[app.selected];
    if (chosen && v.layer.lastChild !== chosen) v.layer.appendChild(chosen); // drawn on top
  }

  function renderAll() {
    for (const v of Object.values(app.views)) renderView(v);
  }

  // -- the landmark list -------------------------------------------------------------
  function renderTable() {
    const body = $("landmarks").querySelector("tbody");
    body.replaceChildren();
    if (!app.state) return;
    const conf = app.state.confidence;
    const present = app.state.present;
    const flags = app.state.flags;
    app.state.names.forEach((name, k) => {
      const tr = document.createElement("tr");
      tr.dataset.index = k;
      const hidden = !app.points[k];
      if (k === app.selected) tr.classList.add("selected");
      if (hidden) tr.classList.add("hidden-point");
      const cells = [0, 1, 2, 3].map(() => document.createElement("td"));
      cells[0].textContent = k + 1;
      cells[1].className = "lm-name";
      const dot = document.createElement("span");
      dot.className = `dot ${hidden ? "hidden" : colourClass(k)}`;
      cells[1].append(dot, document.createTextNode(name));
      if (flags && flags[k] && !app.human[k]) cells[1].append(document.createTextNode(" \u26a0"));
      cells[2].className = "conf";
      if (hidden) {
        cells[2].textContent = present && !present[k] && !app.human[k] ? "absent (model)" : "absent";
      } else {
        cells[2].textContent = app.human[k] || !conf ? "\u2014" : conf[k].toFixed(2);
      }
      const toggle = document.createElement("button");
      toggle.className = "toggle";
      toggle.textContent = hidden ? "place" : "absent";
      toggle.title = hidden ? "Select, then click in a view to place it on that slice" : "Mark absent (V)";
      toggle.addEventListener("click", (e) => {
        e.stopPropagation();
        select(k);
        if (!hidden) toggleAbsent();
      });
      cells[3].appendChild(toggle);
      tr.append(...cells);
      tr.addEventListener("click", () => select(k));
      body.appendChild(tr);
    });
    updatePlacing();
  }

  function renderQc(qc) {
    const el = $("qc");
    el.hidden = !qc;
    el.textContent = qc ? `QC: ${qc}` : "";
    if (qc) el.dataset.qc = qc;
  }

  function select(k, follow = true) {
    if (!app.state) return;
    app.selected = clamp(k, 0, app.state.names.length - 1);
    for (const tr of $("landmarks").querySelectorAll("tbody tr")) {
      const on = Number(tr.dataset.index) === app.selected;
      tr.classList.toggle("selected", on);
      if (on) tr.scrollIntoView({ block: "nearest" });
    }
    if (follow) followSelected();
    renderAll();
    updatePlacing();
  }

  function followSelected() {
    const p = app.points[app.selected];
    if (!p) return;
    app.cursor = p.slice();
    keepCursorInView();
    requestSlices();
    renderAll();
    showCursor(null);
  }

  function updatePlacing() {
    const placing = Boolean(app.state) && !app.points[app.selected];
    for (const v of Object.values(app.views)) v.el.classList.toggle("placing", placing);
    $("place-hint").hidden = !placing;
  }

  // -- the list of volumes -----------------------------------------------------------
  async function refreshList() {
    const data = await api("GET", "/api/volumes");
    app.images = data.volumes;
    renderList();
  }

  function renderList() {
    const list = $("images");
    list.replaceChildren();
    for (const item of app.images) {
      const li = document.createElement("li");
      li.dataset.name = item.name;
      li.dataset.status = item.status;
      li.title = `${item.name}: ${item.status}`;
      if (item.name === app.current) li.className = "current";
      const badge = document.createElement("span");
      badge.className = "badge";
      const label = document.createElement("span");
      label.textContent = item.name;
      li.append(badge, label);
      li.addEventListener("click", () => openVolume(item.name));
      list.appendChild(li);
    }
    $("image-count").textContent = `(${app.images.length})`;
  }

  function setStatus(status) {
    const badge = $("status");
    badge.dataset.status = status;
    badge.textContent = status;
    document.body.dataset.status = status;
    const item = app.images.find((i) => i.name === app.current);
    if (item) item.status = status;
    const li = [...$("images").children].find((el) => el.dataset.name === app.current);
    if (li) {
      li.dataset.status = status;
      li.title = `${app.current}: ${status}`;
    }
  }

  function neighbour(step) {
    const i = app.images.findIndex((item) => item.name === app.current);
    if (i < 0) return null;
    const j = i + step;
    return j >= 0 && j < app.images.length ? app.images[j].name : null;
  }

  // -- opening a volume --------------------------------------------------------------
  async function openVolume(name) {
    if (!name) return;
    await flushSync();
    const token = ++app.loadToken;
    const timing = { name, start: performance.now(), meta: null, views: null, landmarks: null };
    app.timings.push(timing);
    app.current = name;
    app.meta = null;
    app.state = null;
    app.points = [];
    document.body.dataset.state = "loading";
    document.body.dataset.image = name;
    delete document.body.dataset.views;
    $("image-name").textContent = name;
    history.replaceState(null, "", `#${encodeURIComponent(name)}`);
    for (const li of $("images").children) {
      li.classList.toggle("current", li.dataset.name === name);
      if (li.dataset.name === name) li.scrollIntoView({ block: "nearest" });
    }
    for (const v of Object.values(app.views)) {
      v.canvas.classList.remove("shown");
      v.slice = null;
    }
    buildPoints();
    renderTable();
    viewerMessage("");
    try {
      const metaRequest = api("GET", volumeUrl(name));
      const stateRequest = api("GET", volumeUrl(name, "/landmarks"));
      stateRequest.catch(() => {}); // reported below, once the header has been looked at
      const meta = await metaRequest;
      if (token !== app.loadToken) return;
      timing.meta = performance.now();
      app.meta = meta;
      setupViews();
      setupWindow(meta.window);
      app.cursor = meta.display.size.map((n) => (n - 1) / 2);
      fitViews();
      requestSlices();
      showOrientation();
      const state = await stateRequest;
      if (token !== app.loadToken) return;
      applyState(state);
      timing.landmarks = performance.now();
      document.body.dataset.state = "ready";
      select(app.selected);
      prefetch(neighbour(1));
    } catch (err) {
      if (token !== app.loadToken) return;
      document.body.dataset.state = "error";
      viewerMessage(`${name}: ${err.message}`);
      toast(`${name}: ${err.message}`, "error");
      setStatus("error");
    }
  }

  function applyState(state) {
    app.state = state;
    app.points = state.points.map((w) => (w ? toDisplay(w) : null));
    app.human = state.human.slice();
    app.selected = Math.min(app.selected, state.names.length - 1);
    setStatus(state.status);
    renderQc(state.qc);
    buildPoints();
    renderTable();
    renderAll();
  }

  async function prefetch(name) {
    if (!name) return;
    try {
      const state = await api("GET", volumeUrl(name, "/landmarks"));
      const item = app.images.find((i) => i.name === name);
      if (item && name !== app.current) {
        item.status = state.status;
        const li = [...$("images").children].find((el) => el.dataset.name === name);
        if (li) li.dataset.status = state.status;
      }
    } catch (_) {
      // a broken neighbour reports itself when it is opened
    }
  }

  function showOrientation() {
    const m = app.meta;
    const lines = [`stored ${m.orientation}, ${m.size.join(" \u00d7 ")} voxels`,
      `${m.spacing.map((s) => +s.toFixed(3)).join(" \u00d7 ")} mm; shown in LPS`];
    if (m.display.obliquity_deg > 1) {
      lines.push(`oblique: the views follow the nearest anatomical axes (${m.display.obliquity_deg.toFixed(1)}\u00b0 off)`);
    }
    $("orientation").textContent = lines.join("\n");
  }

  // -- window ------------------------------------------------------------------------
  function setupWindow(win) {
    const select = $("preset");
    select.replaceChildren();
    win.presets.forEach((p, i) => {
      const option = document.createElement("option");
      option.value = i;
      option.textContent = p.name;
      select.appendChild(option);
    });
    select.value = "0";
    setWindow(win.default[0], win.default[1]);
  }

  function setWindow(centre, width) {
    app.window = { centre, width: Math.max(width, 1e-6) };
    $("level").value = +centre.toPrecision(6);
    $("width").value = +app.window.width.toPrecision(6);
    paintAll();
  }

  function usePreset(i) {
    const presets = app.meta.window.presets;
    const p = presets[((i % presets.length) + presets.length) % presets.length];
    $("preset").value = String(presets.indexOf(p));
    setWindow(p.centre, p.width);
  }

  // -- editing -----------------------------------------------------------------------
  function snapshot() {
    return { points: app.points.map((p) => (p ? p.slice() : null)), human: app.human.slice() };
  }

  function restore(snap) {
    app.points = snap.points.map((p) => (p ? p.slice() : null));
    app.human = snap.human.slice();
  }

  function historyOf(name) {
    if (!app.history.has(name)) app.history.set(name, { undo: [], redo: [] });
    return app.history.get(name);
  }

  function edited() {
    app.editCount += 1;
    setStatus("reviewed");
    renderTable();
    renderAll();
    scheduleSync();
  }

  function commit(before) {
    const h = historyOf(app.current);
    h.undo.push(before);
    if (h.undo.length > 500) h.undo.shift();
    h.redo.length = 0;
    edited();
  }

  function undo() {
    const h = historyOf(app.current);
    if (!app.state || !h.undo.length) return;
    h.redo.push(snapshot());
    restore(h.undo.pop());
    edited();
  }

  function redo() {
    const h = historyOf(app.current);
    if (!app.state || !h.redo.length) return;
    h.undo.push(snapshot());
    restore(h.redo.pop());
    edited();
  }

  function toggleAbsent() {
    const k = app.selected;
    if (!app.state) return;
    if (app.points[k]) {
      const before = snapshot();
      app.points[k] = null;
      app.human[k] = true;
      commit(before);
      toast(`${app.state.names[k]}: absent (click in a view to place it again)`);
    } else {
      updatePlacing();
      toast(`Click in a view to place ${app.state.names[k]} on that slice`);
    }
  }

  function nudge(v, dcol, drow) {
    const k = app.selected;
    if (!app.state || !app.points[k] || !v) return;
    const before = snapshot();
    const [col, row] = toView(v, app.points[k]);
    app.points[k] = clampToVolume(fromView(v, col + dcol, row + drow, app.points[k]));
    app.human[k] = true;
    commit(before);
    followSelected();
  }

  function place(v, col, row) {
    const k = app.selected;
    const base = app.cursor.slice();
    base[v.spec.axis] = sliceIndex(v); // on the slice shown
    const p = fromView(v, col, row, base);
    if (p.some((c, a) => c < -0.5 || c > size(a) - 0.5)) {
      toast("That point is outside the volume", "error");
      return;
    }
    const before = snapshot();
    app.points[k] = p;
    app.human[k] = true;
    commit(before);
    followSelected();
  }

  async function resetToModel() {
    if (!app.state) return;
    const name = app.current;
    try {
      const state = await api("GET", volumeUrl(name, "/prediction"));
      if (name !== app.current) return;
      const before = snapshot();
      Object.assign(app.state, { predicted: state.predicted, confidence: state.confidence,
        present: state.present, flags: state.flags, qc: state.qc });
      app.points = state.predicted.map((w, k) =>
        (w && (!state.present || state.present[k]) ? toDisplay(w) : null));
      app.human = app.points.map(() => false);
      renderQc(state.qc);
      commit(before);
    } catch (err) {
      toast(`${name}: ${err.message}`, "error");
    }
  }

  function worldPoints() {
    return app.points.map((p) => (p ? toWorld(p) : null));
  }

  // -- talking to the server about edits -----------------------------------------------
  function scheduleSync() {
    clearTimeout(app.syncTimer);
    const name = app.current;
    app.syncTimer = setTimeout(() => sync(name), 300);
  }

  async function flushSync() {
    if (app.syncTimer === null) return;
    clearTimeout(app.syncTimer);
    app.syncTimer = null;
    await sync(app.current);
  }

  async function sync(name) {
    app.syncTimer = null;
    if (!name || name !== app.current || !app.state) return;
    try {
      await api("PUT", volumeUrl(name, "/landmarks"), { points: worldPoints() });
    } catch (err) {
      toast(`${name}: ${err.message}`, "error");
    }
  }

  async function save() {
    if (!app.state) return;
    clearTimeout(app.syncTimer);
    app.syncTimer = null;
    const name = app.current;
    const count = app.editCount;
    const button = $("save");
    button.disabled = true;
    try {
      const state = await api("POST", volumeUrl(name, "/save"),
        { points: worldPoints(), format: $("format").value });
      if (name === app.current && count === app.editCount) setStatus("saved");
      const files = state.files.map((f) => f.split(/[\\/]/).pop()).join(", ");
      toast(`Saved ${name} to ${files}`);
      document.body.dataset.saved = `${name}:${count}`;
    } catch (err) {
      toast(`${name}: not saved: ${err.message}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  // -- the cursor read-out -----------------------------------------------------------
  function showCursor(v, col, row) {
    if (!app.meta) return;
    let p = app.cursor;
    let value = "";
    if (v) {
      const base = app.cursor.slice();
      base[v.spec.axis] = sliceIndex(v);
      p = fromView(v, col, row, base);
      const s = v.slice;
      const c = Math.round(col);
      const r = Math.round(row);
      if (s && c >= 0 && r >= 0 && c < s.cols && r < s.rows) value = `\nvalue ${+s.data[r * s.cols + c].toPrecision(6)}`;
    }
    const w = toWorld(p);
    const i = toStored(w);
    $("cursor").textContent = `LPS ${w.map((c) => c.toFixed(1)).join(", ")} mm\n` +
      `voxel ${i.map((c) => c.toFixed(1)).join(", ")}${value}`;
  }

  // -- pointer, wheel, keys -----------------------------------------------------------
  let drag = null;

  function moveCursorIn(v, col, row) {
    const p = fromView(v, col, row, app.cursor);
    app.cursor = clampToVolume(p);
    requestSlices();
    renderAll();
  }

  function stepSlice(v, delta) {
    const axis = v.spec.axis;
    app.cursor[axis] = clamp(sliceIndex(v) + delta, 0, size(axis) - 1);
    requestSlice(v);
    renderAll();
    showCursor(null);
  }

  function setActive(v) {
    app.active = v.name;
    for (const w of Object.values(app.views)) w.el.classList.toggle("active", w === v);
  }

  function wireView(v) {
    v.el.addEventListener("pointerenter", () => setActive(v));
    v.el.addEventListener("contextmenu", (e) => e.preventDefault());
    v.el.addEventListener("pointerdown", (e) => {
      if (!app.meta) return;
      v.el.focus();
      setActive(v);
      const [col, row] = fromEvent(v, e);
      if (e.button === 2) {
        drag = { kind: "window", v, x0: e.clientX, y0: e.clientY, ...app.window };
      } else if (e.button === 0) {
        const g = e.target.closest ? e.target.closest(".landmark") : null;
        if (g && app.state && !g.classList.contains("far")) {
          const k = Number(g.dataset.index);
          if (k !== app.selected) select(k, false);
          const [pc, pr] = toView(v, app.points[k]);
          drag = { kind: "point", v, k, before: snapshot(), moved: false, offset: [pc - col, pr - row] };
        } else if (e.shiftKey) {
          drag = { kind: "pan", v, x0: e.clientX, y0: e.clientY, tx0: v.tx, ty0: v.ty };
        } else if (app.state && !app.points[app.selected]) {
          place(v, col, row);
        } else {
          drag = { kind: "cursor", v };
          moveCursorIn(v, col, row);
        }
      } else {
        return;
      }
      if (drag) v.el.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    v.el.addEventListener("pointermove", (e) => {
      if (!app.meta) return;
      const [col, row] = fromEvent(v, e);
      showCursor(v, col, row);
      if (!drag || drag.v !== v) return;
      if (drag.kind === "point") {
        const k = drag.k;
        const p = clampToVolume(fromView(v, col + drag.offset[0], row + drag.offset[1], app.points[k]));
        app.points[k] = p;
        app.human[k] = true;
        drag.moved = true;
        app.cursor = p.slice();
        requestSlices();
        renderAll();
      } else if (drag.kind === "cursor") {
        moveCursorIn(v, col, row);
      } else if (drag.kind === "pan") {
        v.tx = drag.tx0 + e.clientX - drag.x0;
        v.ty = drag.ty0 + e.clientY - drag.y0;
        v.el.classList.add("panning");
        renderView(v);
      } else if (drag.kind === "window") {
        const width = drag.width * Math.exp((e.clientX - drag.x0) * 0.005);
        const centre = drag.centre - (e.clientY - drag.y0) * drag.width * 0.004;
        setWindow(centre, width);
      }
    });
    const end = () => {
      if (!drag) return;
      const d = drag;
      drag = null;
      v.el.classList.remove("panning");
      if (d.kind === "point" && d.moved) commit(d.before);
    };
    v.el.addEventListener("pointerup", end);
    v.el.addEventListener("pointercancel", end);
    v.el.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (!app.meta) return;
      if (e.ctrlKey || e.metaKey) {
        zoomBy(Math.exp(-e.deltaY * 0.0015));
        return;
      }
      if (e.deltaY === 0) return;
      stepSlice(v, Math.sign(e.deltaY) * (e.shiftKey ? 10 : 1));
    }, { passive: false });
  }

  function step(delta) {
    const name = neighbour(delta);
    if (name) openVolume(name);
  }

  document.addEventListener("keydown", (e) => {
    const help = $("help");
    if (help.open) {
      if (e.key === "?") help.close();
      return;
    }
    const tag = e.target && e.target.tagName;
    if (tag === "INPUT" && e.target.type !== "checkbox") return;
    if (tag === "SELECT" || tag === "TEXTAREA") return;
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key;
    const v = app.views[app.active];
    const amount = e.altKey ? 10 : 1;
    let handled = true;
    if (ctrl && (key === "z" || key === "Z")) {
      if (e.shiftKey) redo(); else undo();
    } else if (ctrl && (key === "y" || key === "Y")) {
      redo();
    } else if (ctrl && (key === "s" || key === "S")) {
      save();
    } else if (ctrl) {
      handled = false;
    } else if (e.shiftKey && key.startsWith("Arrow")) {
      const d = { ArrowLeft: [-amount, 0], ArrowRight: [amount, 0], ArrowUp: [0, -amount], ArrowDown: [0, amount] }[key];
      nudge(v, d[0], d[1]);
    } else if (key === "ArrowDown" || key === "j") {
      select(app.selected + 1);
    } else if (key === "ArrowUp" || key === "k") {
      select(app.selected - 1);
    } else if (key === "ArrowRight" || key === "]") {
      step(1);
    } else if (key === "ArrowLeft" || key === "[") {
      step(-1);
    } else if (key === "PageUp" || key === "PageDown") {
      if (app.meta) stepSlice(v, (key === "PageDown" ? 1 : -1) * (e.shiftKey ? 10 : 1));
    } else if (key === "v" || key === "Delete" || key === "Backspace") {
      toggleAbsent();
    } else if (key === "s") {
      save();
    } else if (key === "c") {
      followSelected();
    } else if (key === "f") {
      fitViews();
    } else if (key === "+" || key === "=") {
      zoomBy(1.25);
    } else if (key === "-") {
      zoomBy(0.8);
    } else if (key === "w") {
      if (app.meta) usePreset(Number($("preset").value) + 1);
    } else if (key === "r") {
      if (app.meta) usePreset(0);
    } else if (key === "l") {
      $("labels").checked = !$("labels").checked;
      showLabels();
    } else if (key === "?") {
      help.showModal();
    } else {
      handled = false;
    }
    if (handled) e.preventDefault();
  });

  function showLabels() {
    for (const v of Object.values(app.views)) v.overlay.classList.toggle("no-labels", !$("labels").checked);
  }

  // -- wiring ------------------------------------------------------------------------
  function wire() {
    $("prev-image").addEventListener("click", () => step(-1));
    $("next-image").addEventListener("click", () => step(1));
    $("undo").addEventListener("click", undo);
    $("redo").addEventListener("click", redo);
    $("reset").addEventListener("click", resetToModel);
    $("save").addEventListener("click", save);
    $("fit").addEventListener("click", fitViews);
    $("zoom-in").addEventListener("click", () => zoomBy(1.25));
    $("zoom-out").addEventListener("click", () => zoomBy(0.8));
    $("help-button").addEventListener("click", () => $("help").showModal());
    $("labels").addEventListener("change", showLabels);
    $("preset").addEventListener("change", (e) => {
      usePreset(Number(e.target.value));
      e.target.blur();
    });
    for (const id of ["level", "width"]) {
      $(id).addEventListener("change", (e) => {
        const centre = Number($("level").value);
        const width = Number($("width").value);
        if (Number.isFinite(centre) && Number.isFinite(width) && width > 0) setWindow(centre, width);
        e.target.blur();
      });
    }
    $("format").addEventListener("change", (e) => e.target.blur());
    window.addEventListener("resize", fitViews);
    window.addEventListener("beforeunload", () => {
      if (app.syncTimer !== null && app.current && app.state) {
        fetch(volumeUrl(app.current, "/landmarks"), { method: "PUT", keepalive: true,
          headers: { ...WRITE_HEADERS, "Content-Type": "application/json" },
          body: JSON.stringify({ points: worldPoints() }) });
      }
    });
  }

  async function start() {
    buildViews();
    wire();
    try {
      app.info = await api("GET", "/api/info");
      $("folder").textContent = app.info.folder.split(/[\\/]/).filter(Boolean).pop() || app.info.folder;
      $("folder").title = `${app.info.folder} (domain ${app.info.domain})`;
      $("format").value = app.info.save_format;
      $("level-high").textContent = app.info.confidence_levels.high;
      $("level-low").textContent = app.info.confidence_levels.low;
      await refreshList();
    } catch (err) {
      document.body.dataset.state = "error";
      viewerMessage(`The server did not answer: ${err.message}`);
      return;
    }
    if (!app.images.length) {
      document.body.dataset.state = "empty";
      viewerMessage("No volumes in this folder (NIfTI, NRRD or MetaImage files).");
      return;
    }
    const wanted = decodeURIComponent(location.hash.slice(1));
    const first = app.images.some((i) => i.name === wanted) ? wanted : app.images[0].name;
    await openVolume(first);
  }

  start();
})();
