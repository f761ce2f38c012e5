// unilandmark review: the clinic's loop (GET /api/site, POST /api/site/train).
//
// Shows how many corrected (saved) images this site has, starts an adaptation of the
// model to them, follows it, and once the adapted model predicts, opens the current
// image again (an image that only held the old model's points is predicted anew) and
// shows the per-landmark mean shift of the last adaptation.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const app = window.unilandmark;
  const site = { state: null, timer: null, seen: null };
  app.site = site; // for tests

  function fmt(value) {
    return value === null || value === undefined ? "?" : Number(value).toFixed(2);
  }

  function render(status) {
    site.state = status;
    const box = $("site-box");
    box.dataset.state = status.state;
    const n = status.corrected;
    $("site-count").textContent = `${n} corrected image${n === 1 ? "" : "s"} saved`;
    const button = $("site-train");
    button.disabled = status.state === "running" || Boolean(status.unavailable);
    button.title = status.unavailable || "Adapt the model to this site's saved images, then predict the other images with it";
    let line = "";
    if (status.state === "running") {
      const last = status.log.length ? status.log[status.log.length - 1] : "starting";
      line = `Training (${Math.round(status.running_s || 0)} s): ${last}`;
    } else if (status.state === "failed") {
      line = `Training failed: ${status.error}`;
    } else if (status.unavailable) {
      line = status.unavailable;
    } else if (status.state === "done" && status.last && status.last.resumed) {
      line = "This site's adapted model (from an earlier session) predicts the images not yet reviewed.";
    } else if (status.state === "done") {
      line = "The adapted model predicts the images not yet reviewed.";
    }
    $("site-status").textContent = line;
    renderLast(status.last);
  }

  function renderLast(last) {
    const details = $("site-last");
    details.hidden = !last;
    if (!last) return;
    const unit = last.unit || "";
    const shifts = (last.names || []).map((name, k) => [name, last.mean_shift[k]]);
    shifts.sort((a, b) => b[1] - a[1]);
    const top = shifts.slice(0, 3).map(([n, v]) => `${n} ${fmt(v)} ${unit}`).join(", ");
    $("site-summary").textContent =
      `Last adaptation: ${last.n_images} images` +
      (last.seconds === null || last.seconds === undefined ? "" : `, ${Math.round(last.seconds)} s`) +
      `; moved most: ${top}`;
    const body = $("site-shift").tBodies[0];
    body.replaceChildren();
    for (const [name, value] of shifts) {
      const tr = document.createElement("tr");
      const a = document.createElement("td");
      a.textContent = name;
      const b = document.createElement("td");
      b.className = "num";
      b.textContent = `${fmt(value)} ${unit}`;
      tr.append(a, b);
      body.appendChild(tr);
    }
  }

  async function poll() {
    clearTimeout(site.timer);
    try {
      const status = await app.api("GET", "/api/site");
      const finished = site.seen === "running" && status.state !== "running";
      site.seen = status.state;
      render(status);
      if (finished && status.state === "done") {
        app.toast("The adapted model is loaded: images not yet reviewed are predicted with it");
        await app.refreshList();
        await app.reload();
        document.body.dataset.adapted = String((Number(document.body.dataset.adapted) || 0) + 1);
      } else if (finished) {
        app.toast(`Training failed: ${status.error}`, "error");
      }
    } catch (err) {
      $("site-status").textContent = `Site status unavailable: ${err.message}`;
    }
    site.timer = setTimeout(poll, site.seen === "running" ? 1000 : 5000);
  }

  async function train() {
    try {
      const status = await app.api("POST", "/api/site/train");
      site.seen = status.state;
      render(status);
    } catch (err) {
      app.toast(`Cannot train: ${err.message}`, "error");
    }
    poll();
  }

  $("site-train").addEventListener("click", train);
  document.addEventListener("unilandmark:saved", poll);
  poll();
})();
