// unilandmark review: the page. Plain JavaScript, no build step, nothing from elsewhere.
//
// Coordinates: every point is (x, y) in ORIGINAL image pixels (x right, y down, centre of
// the top-left pixel is (0, 0)); null means "not visible". The display image is stretched
// over [-0.5, W - 0.5] x [-0.5, H - 0.5] of that frame, so it never needs a mapping of its
// own. The view maps original pixels to screen pixels: screen = original * scale + t.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const WRITE_HEADERS = { "X-Unilandmark": "1" };

  const app = {
    info: null,
    images: [], // [{name, status}]
    current: null, // file name of the image on screen
    state: null, // the server's state of that image
    points: [], // current points, [x, y] or null
    human: [], // per landmark: placed by a person
    selected: 0,
    size: [1, 1], // original (width, height)
    view: { scale: 1, tx: 0, ty: 0 },
    history: new Map(), // image name -> {undo: [], redo: []}
    loadToken: 0,
    syncTimer: null,
    editCount: 0,
    timings: [], // {name, start, landmarks, image}: performance.now() marks
    ruler: null, // while calibrating: {ends: [[x, y], ...]} in original pixels
  };
  window.unilandmark = app; // for tests, the curious and site.js (app.api, app.reload, ...)

  const viewer = $("viewer");
  const canvas = $("canvas");
  const picture = $("picture");
  const pointsLayer = $("points");

  // -- server ------------------------------------------------------------------------
  function imageUrl(name, tail = "") {
    return `/api/images/${encodeURIComponent(name)}${tail}`;
  }

  function describe(data, response) {
    if (data && typeof data.detail === "string") return data.detail;
    if (data && Array.isArray(data.detail)) {
      return data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    }
    return `${response.status} ${response.statusText}`;
  }

  async function api(method, url, body, raw = false) {
    const options = { method, headers: {} };
    if (method !== "GET") Object.assign(options.headers, WRITE_HEADERS);
    if (body !== undefined) {
      if (raw) {
        options.body = body;
      } else {
        options.headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(body);
      }
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

  // -- image list --------------------------------------------------------------------
  async function refreshList() {
    const data = await api("GET", "/api/images");
    app.images = data.images;
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
      li.addEventListener("click", () => openImage(item.name));
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

  // -- opening an image --------------------------------------------------------------
  async function openImage(name) {
    if (!name) return;
    if (app.ruler) stopRuler();
    await flushSync();
    const token = ++app.loadToken;
    const timing = { name, start: performance.now(), landmarks: null, image: null };
    app.timings.push(timing);
    app.current = name;
    app.state = null;
    app.points = [];
    document.body.dataset.state = "loading";
    document.body.dataset.image = name;
    $("image-name").textContent = name;
    history.replaceState(null, "", `#${encodeURIComponent(name)}`);
    for (const li of $("images").children) {
      li.classList.toggle("current", li.dataset.name === name);
      if (li.dataset.name === name) li.scrollIntoView({ block: "nearest" });
    }
    pointsLayer.replaceChildren();
    renderTable();
    viewerMessage("");
    picture.classList.remove("shown");
    try {
      const meta = await api("GET", imageUrl(name));
      if (token !== app.loadToken) return;
      app.size = meta.size;
      picture.style.width = `${meta.size[0]}px`;
      picture.style.height = `${meta.size[1]}px`;
      picture.onload = () => {
        if (token !== app.loadToken) return;
        timing.image = performance.now();
        picture.classList.add("shown");
      };
      picture.onerror = () => {
        if (token === app.loadToken) viewerMessage(`${name}: the image could not be shown`);
      };
      picture.src = `${imageUrl(name, "/display")}?v=${encodeURIComponent(meta.version)}`;
      fitView();
      const state = await api("GET", imageUrl(name, "/landmarks"));
      if (token !== app.loadToken) return;
      applyState(state);
      timing.landmarks = performance.now();
      document.body.dataset.state = "ready";
      prefetch(neighbour(1));
    } catch (err) {
      if (token !== app.loadToken) return;
      document.body.dataset.state = "error";
      viewerMessage(`${name}: ${err.message}`);
      setStatus("error");
    }
  }

  function applyState(state) {
    app.state = state;
    app.points = state.points.map((p) => (p ? [p[0], p[1]] : null));
    app.human = state.human.slice();
    app.selected = Math.min(app.selected, state.names.length - 1);
    setStatus(state.status);
    renderQc(state.qc);
    buildPoints();
    renderTable();
    render();
    renderMeasurements(state.measurements);
    renderSpacing();
  }

  const SPACING_SOURCES = { ruler: "from a ruler in this image", file: "from the image file",
    option: "given to serve (--spacing)" };

  function renderSpacing() {
    const line = $("spacing-line");
    const s = app.state && app.state.spacing;
    line.classList.toggle("warning", !s);
    if (s) {
      const value = Math.abs(s[0] - s[1]) < 1e-9 ? s[0].toPrecision(4) : `${s[0].toPrecision(4)} \u00d7 ${s[1].toPrecision(4)}`;
      line.textContent = `Spacing ${value} mm/pixel, ${SPACING_SOURCES[app.state.spacing_source] || "known"}.`;
    } else {
      line.textContent = "No spacing: distances in mm need one. Click Ruler (C) and the two " +
        "ends of a ruler of known length in the image, or start serve with --spacing.";
    }
  }

  // -- ruler: two clicks and a length set the image's spacing ---------------------------
  function startRuler() {
    if (!app.state) return;
    app.ruler = { ends: [] };
    viewer.classList.add("measuring");
    viewerMessage("Ruler: click one end of a ruler of known length (Esc cancels).");
    drawRuler();
  }

  function stopRuler() {
    app.ruler = null;
    viewer.classList.remove("measuring");
    viewerMessage("");
    drawRuler();
  }

  function drawRuler() {
    let layer = $("ruler-layer");
    if (!layer) {
      layer = svg("g", { id: "ruler-layer" });
      canvas.appendChild(layer);
    }
    layer.replaceChildren();
    if (!app.ruler) return;
    const v = app.view;
    const pts = app.ruler.ends.map((p) => [p[0] * v.scale + v.tx, p[1] * v.scale + v.ty]);
    for (const p of pts) layer.appendChild(svg("circle", { class: "ruler-end", cx: p[0], cy: p[1], r: 4 }));
    if (pts.length === 2) {
      layer.appendChild(svg("line", { class: "ruler-line", x1: pts[0][0], y1: pts[0][1], x2: pts[1][0], y2: pts[1][1] }));
    }
  }

  function rulerClick(p) {
    if (!onImage(p)) return;
    app.ruler.ends.push(p);
    drawRuler();
    if (app.ruler.ends.length === 1) {
      viewerMessage("Ruler: now click its other end.");
      return;
    }
    const [a, b] = app.ruler.ends;
    const pixels = Math.hypot(b[0] - a[0], b[1] - a[1]);
    $("ruler-pixels").textContent = `The ruler spans ${pixels.toFixed(1)} pixels.`;
    $("ruler-dialog").returnValue = "";
    $("ruler-dialog").showModal();
    $("ruler-length").select();
  }

  async function finishRuler() {
    const dialog = $("ruler-dialog");
    const ruler = app.ruler;
    const name = app.current;
    if (!ruler || dialog.returnValue !== "ok" || ruler.ends.length !== 2) {
      stopRuler();
      return;
    }
    const length = Number($("ruler-length").value);
    try {
      const state = await api("POST", imageUrl(name, "/ruler"),
        { start: ruler.ends[0], end: ruler.ends[1], length_mm: length });
      if (name === app.current) {
        app.state.spacing = state.spacing;
        app.state.spacing_source = state.spacing_source;
        renderSpacing();
        measureSoon();
      }
      toast(`${name}: spacing ${state.spacing[0].toPrecision(4)} mm/pixel from the ruler, saved beside the image`);
    } catch (err) {
      toast(`Ruler: ${err.message}`, "error");
    }
    stopRuler();
  }

  function neighbour(step) {
    const i = app.images.findIndex((item) => item.name === app.current);
    if (i < 0 || !app.images.length) return null;
    const j = i + step;
    return j >= 0 && j < app.images.length ? app.images[j].name : null;
  }

  async function prefetch(name) {
    if (!name) return;
    try {
      const meta = await api("GET", imageUrl(name));
      const image = new Image();
      image.src = `${imageUrl(name, "/display")}?v=${encodeURIComponent(meta.version)}`;
      const state = await api("GET", imageUrl(name, "/landmarks"));
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

  // -- view --------------------------------------------------------------------------
  function viewerSize() {
    const rect = viewer.getBoundingClientRect();
    return [rect.width, rect.height];
  }

  function fitView() {
    const [w, h] = viewerSize();
    const [W, H] = app.size;
    const scale = Math.max(1e-3, Math.min(w / W, h / H) * 0.96);
    app.view = { scale, tx: (w - W * scale) / 2 + 0.5 * scale, ty: (h - H * scale) / 2 + 0.5 * scale };
    render();
  }

  function zoomAt(sx, sy, factor) {
    const v = app.view;
    const scale = Math.min(64, Math.max(0.02, v.scale * factor));
    const ox = (sx - v.tx) / v.scale;
    const oy = (sy - v.ty) / v.scale;
    app.view = { scale, tx: sx - ox * scale, ty: sy - oy * scale };
    render();
  }

  function toOriginal(event) {
    const rect = viewer.getBoundingClientRect();
    const v = app.view;
    return [(event.clientX - rect.left - v.tx) / v.scale, (event.clientY - rect.top - v.ty) / v.scale];
  }

  function clampToImage(p) {
    const [W, H] = app.size;
    return [Math.min(W - 0.5, Math.max(-0.5, p[0])), Math.min(H - 0.5, Math.max(-0.5, p[1]))];
  }

  function onImage(p) {
    const [W, H] = app.size;
    return p[0] >= -0.5 && p[0] <= W - 0.5 && p[1] >= -0.5 && p[1] <= H - 0.5;
  }

  function applyFilter() {
    const c = $("contrast").value;
    const b = $("brightness").value;
    const inv = $("invert").checked ? 1 : 0;
    picture.style.filter = `brightness(${b}) contrast(${c}) invert(${inv})`;
  }

  // -- drawing -----------------------------------------------------------------------
  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }

  function buildPoints() {
    pointsLayer.replaceChildren();
    if (!app.state) return;
    app.state.names.forEach((name, k) => {
      const g = svg("g", { class: "landmark", "data-index": k, "data-name": name });
      g.append(svg("circle", { class: "flag-ring", r: 11 }), svg("circle", { class: "select-ring", r: 9 }),
        svg("circle", { class: "dot-mark", r: 5 }), svg("text", {}),
        svg("circle", { class: "hit", r: 12, fill: "transparent" }));
      g.querySelector("text").textContent = `${k + 1} ${name}`;
      pointsLayer.appendChild(g);
    });
  }

  function colourClass(k) {
    if (app.human[k] || !app.state.confidence) return "human";
    // a flagged landmark is never drawn in a confident colour: the colours agree with the flags
    if (app.state.flags && app.state.flags[k]) return "flagged";
    const c = app.state.confidence[k];
    const levels = app.info.confidence_levels;
    if (c >= levels.high) return "conf-high";
    if (c < levels.low) return "conf-low";
    return "conf-mid";
  }

  function render() {
    drawRuler();
    const v = app.view;
    picture.style.transform = `translate(${v.tx - 0.5 * v.scale}px, ${v.ty - 0.5 * v.scale}px) scale(${v.scale})`;
    canvas.dataset.scale = v.scale;
    canvas.dataset.tx = v.tx;
    canvas.dataset.ty = v.ty;
    if (!app.state) return;
    const flags = app.state.flags;
    [...pointsLayer.children].forEach((g, k) => renderPoint(g, k, flags));
  }

  function renderPoint(g, k, flags) {
    const p = app.points[k];
    if (!p) {
      g.style.display = "none";
      g.removeAttribute("data-x");
      g.removeAttribute("data-y");
      return;
    }
    const v = app.view;
    const sx = p[0] * v.scale + v.tx;
    const sy = p[1] * v.scale + v.ty;
    g.style.display = "";
    g.dataset.x = p[0];
    g.dataset.y = p[1];
    g.setAttribute("class", `landmark ${colourClass(k)}${k === app.selected ? " selected" : ""}`);
    for (const c of g.querySelectorAll("circle")) {
      c.setAttribute("cx", sx);
      c.setAttribute("cy", sy);
    }
    const flagged = flags && flags[k] && !app.human[k];
    g.querySelector(".flag-ring").style.display = flagged ? "" : "none";
    const text = g.querySelector("text");
    text.setAttribute("x", sx + 9);
    text.setAttribute("y", sy - 8);
  }

  function renderTable() {
    const body = $("landmarks").querySelector("tbody");
    body.replaceChildren();
    if (!app.state) return;
    const conf = app.state.confidence;
    const flags = app.state.flags;
    app.state.names.forEach((name, k) => {
      const tr = document.createElement("tr");
      tr.dataset.index = k;
      const hidden = !app.points[k];
      if (k === app.selected) tr.classList.add("selected");
      if (hidden) tr.classList.add("hidden-point");
      const cells = [document.createElement("td"), document.createElement("td"),
        document.createElement("td"), document.createElement("td")];
      cells[0].textContent = k + 1;
      cells[1].className = "lm-name";
      const dot = document.createElement("span");
      dot.className = `dot ${hidden ? "hidden" : colourClass(k)}`;
      cells[1].append(dot, document.createTextNode(name));
      if (flags && flags[k] && !app.human[k]) cells[1].append(document.createTextNode(" \u26a0"));
      cells[2].className = "conf";
      cells[2].textContent = hidden ? "hidden" : app.human[k] || !conf ? "\u2014" : conf[k].toFixed(2);
      const toggle = document.createElement("button");
      toggle.className = "toggle";
      toggle.textContent = hidden ? "place" : "hide";
      toggle.title = hidden ? "Select, then click on the image to place it" : "Mark not visible (V)";
      toggle.addEventListener("click", (e) => {
        e.stopPropagation();
        select(k);
        if (!hidden) toggleVisible();
      });
      cells[3].appendChild(toggle);
      tr.append(...cells);
      tr.addEventListener("click", () => select(k));
      tr.addEventListener("dblclick", () => centreOn(k));
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

  function renderMeasurements(list) {
    const box = $("measurements-box");
    box.hidden = !list || !list.length;
    const missing = (list || []).some((m) => m.value === null || m.value === undefined);
    const note = $("measurements-note");
    note.hidden = !(missing && app.state && !app.state.spacing);
    note.textContent = "\u2014: a distance in mm needs the image's spacing: use the Ruler (C), " +
      "or start serve with --spacing.";
    const body = $("measurements").querySelector("tbody");
    body.replaceChildren();
    for (const m of list || []) {
      const tr = document.createElement("tr");
      const unit = m.unit === "deg" ? "\u00b0" : m.unit && m.unit !== "ratio" ? ` ${m.unit}` : "";
      const value = m.value === null || m.value === undefined ? "\u2014" : `${m.value.toFixed(2)}${unit}`;
      const cls = m.class ? (m.label ? `${m.label} (${m.class})` : `class ${m.class}`) : "";
      for (const text of [m.name, value, cls]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      tr.children[1].className = "value";
      body.appendChild(tr);
    }
  }

  function select(k) {
    if (!app.state) return;
    app.selected = Math.max(0, Math.min(app.state.names.length - 1, k));
    for (const tr of $("landmarks").querySelectorAll("tbody tr")) {
      const on = Number(tr.dataset.index) === app.selected;
      tr.classList.toggle("selected", on);
      if (on) tr.scrollIntoView({ block: "nearest" });
    }
    render();
    updatePlacing();
  }

  function updatePlacing() {
    const placing = Boolean(app.state) && !app.points[app.selected];
    viewer.classList.toggle("placing", placing);
    $("place-hint").hidden = !placing;
  }

  function centreOn(k) {
    const p = app.points[k];
    if (!p) return;
    const [w, h] = viewerSize();
    app.view.tx = w / 2 - p[0] * app.view.scale;
    app.view.ty = h / 2 - p[1] * app.view.scale;
    render();
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
    render();
    scheduleSync();
    measureSoon();
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

  function nudge(dx, dy) {
    const k = app.selected;
    if (!app.state || !app.points[k]) return;
    const before = snapshot();
    app.points[k] = clampToImage([app.points[k][0] + dx, app.points[k][1] + dy]);
    app.human[k] = true;
    commit(before);
  }

  function toggleVisible() {
    const k = app.selected;
    if (!app.state) return;
    if (app.points[k]) {
      const before = snapshot();
      app.points[k] = null;
      app.human[k] = true;
      commit(before);
      toast(`${app.state.names[k]}: not visible (click on the image to place it again)`);
    } else {
      updatePlacing();
      toast(`Click on the image to place ${app.state.names[k]}`);
    }
  }

  function place(p) {
    const k = app.selected;
    if (!onImage(p)) {
      toast("That point is outside the image", "error");
      return;
    }
    const before = snapshot();
    app.points[k] = p;
    app.human[k] = true;
    commit(before);
  }

  async function resetToModel() {
    if (!app.state) return;
    const name = app.current;
    try {
      const state = await api("GET", imageUrl(name, "/prediction"));
      if (name !== app.current) return;
      const before = snapshot();
      Object.assign(app.state, { predicted: state.predicted, confidence: state.confidence,
        flags: state.flags, qc: state.qc });
      app.points = state.predicted.map((p) => (p ? p.slice() : null));
      app.human = app.points.map(() => false);
      renderQc(state.qc);
      commit(before);
    } catch (err) {
      toast(`${name}: ${err.message}`, "error");
    }
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
    const count = app.editCount;
    try {
      const state = await api("PUT", imageUrl(name, "/landmarks"), { points: app.points });
      if (name === app.current && count === app.editCount) renderMeasurements(state.measurements);
    } catch (err) {
      toast(`${name}: ${err.message}`, "error");
    }
  }

  let measuring = false;
  let measureAgain = false;
  async function measureSoon() {
    if (!app.state) return;
    if (measuring) {
      measureAgain = true;
      return;
    }
    measuring = true;
    const name = app.current;
    try {
      const data = await api("POST", "/api/measure", { name, points: app.points });
      if (name === app.current) renderMeasurements(data.measurements);
    } catch (_) {
      // the next sync reports real faults
    } finally {
      measuring = false;
      if (measureAgain) {
        measureAgain = false;
        measureSoon();
      }
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
      const state = await api("POST", imageUrl(name, "/save"),
        { points: app.points, format: $("format").value });
      if (name === app.current && count === app.editCount) {
        setStatus("saved");
        renderMeasurements(state.measurements);
      }
      const files = state.files.map((f) => f.split(/[\\/]/).pop()).join(", ");
      toast(`Saved ${name} to ${files}`);
      document.body.dataset.saved = `${name}:${count}`;
      document.dispatchEvent(new CustomEvent("unilandmark:saved", { detail: { name } }));
    } catch (err) {
      toast(`${name}: not saved: ${err.message}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  // -- uploads -----------------------------------------------------------------------
  async function upload(file) {
    if (!file) return;
    const limit = app.info.max_upload_bytes;
    if (file.size > limit) {
      toast(`${file.name}: larger than the upload limit of ${Math.round(limit / 2 ** 20)} MiB`, "error");
      return;
    }
    try {
      const data = await api("POST", `/api/upload?filename=${encodeURIComponent(file.name)}`, file, true);
      toast(`Added ${data.name}`);
      await refreshList();
      await openImage(data.name);
    } catch (err) {
      toast(`Not added: ${err.message}`, "error");
    }
  }

  // -- pointer, wheel, keys -----------------------------------------------------------
  let drag = null;

  viewer.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    viewer.focus();
    if (app.ruler) {
      rulerClick(toOriginal(e));
      e.preventDefault();
      return;
    }
    const g = e.target.closest ? e.target.closest(".landmark") : null;
    const rect = viewer.getBoundingClientRect();
    if (g && app.state) {
      const k = Number(g.dataset.index);
      select(k);
      const o = toOriginal(e);
      drag = { kind: "point", k, before: snapshot(), moved: false,
        offset: [app.points[k][0] - o[0], app.points[k][1] - o[1]] };
    } else {
      drag = { kind: "pan", x0: e.clientX - rect.left, y0: e.clientY - rect.top,
        tx0: app.view.tx, ty0: app.view.ty, moved: false };
    }
    viewer.setPointerCapture(e.pointerId);
    e.preventDefault();
  });

  viewer.addEventListener("pointermove", (e) => {
    const o = toOriginal(e);
    $("cursor").textContent = onImage(o) ? `x ${o[0].toFixed(1)}  y ${o[1].toFixed(1)}` : "";
    if (!drag) return;
    if (drag.kind === "point") {
      app.points[drag.k] = clampToImage([o[0] + drag.offset[0], o[1] + drag.offset[1]]);
      app.human[drag.k] = true;
      drag.moved = true;
      renderPoint(pointsLayer.children[drag.k], drag.k, app.state.flags);
      measureSoon();
    } else {
      const rect = viewer.getBoundingClientRect();
      const dx = e.clientX - rect.left - drag.x0;
      const dy = e.clientY - rect.top - drag.y0;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        viewer.classList.add("panning");
        app.view.tx = drag.tx0 + dx;
        app.view.ty = drag.ty0 + dy;
        render();
      }
    }
  });

  function endDrag(e) {
    if (!drag) return;
    const d = drag;
    drag = null;
    viewer.classList.remove("panning");
    if (d.kind === "point" && d.moved) commit(d.before);
    if (d.kind === "pan" && !d.moved && e.type === "pointerup" && app.state && !app.points[app.selected]) {
      place(toOriginal(e));
    }
  }
  viewer.addEventListener("pointerup", endDrag);
  viewer.addEventListener("pointercancel", endDrag);

  viewer.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rect = viewer.getBoundingClientRect();
    zoomAt(e.clientX - rect.left, e.clientY - rect.top, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });

  function zoomCentre(factor) {
    const [w, h] = viewerSize();
    zoomAt(w / 2, h / 2, factor);
  }

  function step(delta) {
    const name = neighbour(delta);
    if (name) openImage(name);
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
    const size = e.altKey ? 10 : 1;
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
      const d = { ArrowLeft: [-size, 0], ArrowRight: [size, 0], ArrowUp: [0, -size], ArrowDown: [0, size] }[key];
      nudge(d[0], d[1]);
    } else if (key === "ArrowDown" || key === "j") {
      select(app.selected + 1);
    } else if (key === "ArrowUp" || key === "k") {
      select(app.selected - 1);
    } else if (key === "ArrowRight" || key === "]" || key === "PageDown") {
      step(1);
    } else if (key === "ArrowLeft" || key === "[" || key === "PageUp") {
      step(-1);
    } else if (key === "v" || key === "Delete" || key === "Backspace") {
      toggleVisible();
    } else if (key === "s") {
      save();
    } else if (key === "f") {
      fitView();
    } else if (key === "+" || key === "=") {
      zoomCentre(1.25);
    } else if (key === "-") {
      zoomCentre(0.8);
    } else if (key === "l") {
      $("labels").checked = !$("labels").checked;
      canvas.classList.toggle("no-labels", !$("labels").checked);
    } else if (key === "i") {
      $("invert").checked = !$("invert").checked;
      applyFilter();
    } else if (key === "c") {
      startRuler();
    } else if (key === "Escape" && app.ruler) {
      stopRuler();
    } else if (key === "r") {
      resetFilter();
    } else if (key === "?") {
      help.showModal();
    } else {
      handled = false;
    }
    if (handled) e.preventDefault();
  });

  function resetFilter() {
    $("contrast").value = 1;
    $("brightness").value = 1;
    $("invert").checked = false;
    applyFilter();
  }

  // -- wiring ------------------------------------------------------------------------
  function wire() {
    $("prev-image").addEventListener("click", () => step(-1));
    $("next-image").addEventListener("click", () => step(1));
    $("undo").addEventListener("click", undo);
    $("redo").addEventListener("click", redo);
    $("reset").addEventListener("click", resetToModel);
    $("save").addEventListener("click", save);
    $("fit").addEventListener("click", fitView);
    $("zoom-in").addEventListener("click", () => zoomCentre(1.25));
    $("zoom-out").addEventListener("click", () => zoomCentre(0.8));
    $("reset-view").addEventListener("click", resetFilter);
    $("help-button").addEventListener("click", () => $("help").showModal());
    $("ruler").addEventListener("click", startRuler);
    $("ruler-dialog").addEventListener("close", finishRuler);
    for (const id of ["contrast", "brightness", "invert"]) $(id).addEventListener("input", applyFilter);
    // give the keys back to the page once a control has been used
    for (const id of ["contrast", "brightness", "format"]) $(id).addEventListener("change", (e) => e.target.blur());
    $("labels").addEventListener("change", () => canvas.classList.toggle("no-labels", !$("labels").checked));
    $("upload").addEventListener("change", (e) => {
      upload(e.target.files[0]);
      e.target.value = "";
    });
    const panel = $("images-panel");
    panel.addEventListener("dragover", (e) => {
      e.preventDefault();
      panel.classList.add("dropping");
    });
    panel.addEventListener("dragleave", () => panel.classList.remove("dropping"));
    panel.addEventListener("drop", (e) => {
      e.preventDefault();
      panel.classList.remove("dropping");
      upload(e.dataTransfer.files[0]);
    });
    window.addEventListener("resize", render);
    window.addEventListener("beforeunload", () => {
      if (app.syncTimer !== null && app.current) {
        fetch(imageUrl(app.current, "/landmarks"), { method: "PUT", keepalive: true,
          headers: { ...WRITE_HEADERS, "Content-Type": "application/json" },
          body: JSON.stringify({ points: app.points }) });
      }
    });
  }

  // what site.js (the clinic's loop) needs of the page
  Object.assign(app, {
    api, toast, refreshList,
    // the current image again, from the server (after the model changed); the undo
    // history of an image that only held the model's points starts anew
    reload: async () => {
      if (!app.current) return;
      if (app.state && app.state.status === "predicted") app.history.delete(app.current);
      await openImage(app.current);
    },
  });

  async function start() {
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
      viewerMessage("No images in this folder yet: add one with \u201cAdd image\u2026\u201d.");
      return;
    }
    const wanted = decodeURIComponent(location.hash.slice(1));
    const first = app.images.some((i) => i.name === wanted) ? wanted : app.images[0].name;
    await openImage(first);
  }

  start();
})();
