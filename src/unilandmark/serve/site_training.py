"""The clinic's loop in the review app: adapt the model to the corrected images, go on.

A site predicts its folder, corrects the first images and saves them (the review table,
``landmarks_reviewed.csv``); "Train on the corrections" adapts the model's domain to the
site from every saved image (``unilandmark adapt --domain D`` in place:
:mod:`..workflows.adapt`, site mode), in a background thread, always from the model the
app was started with (so corrections never compound one adaptation on another). When it
ends, the adapted model replaces the app's: images not yet reviewed are predicted again
when opened; reviewed and saved points stay. The status says how many corrected images
the site has and what the last adaptation changed (per-landmark mean shift).

Each adaptation writes ``FOLDER/site_models/NNN/`` (``model.pt``, ``adaptation.json``,
``adaptation.md``, the stages' run folders): the model to give ``predict --checkpoint``
for the rest of the site's images. An app started again on the folder goes on with the
latest of them (:meth:`SiteTrainer.resume`) when it was adapted from the model the app
was started with, and shows what it changed.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from ..core.errors import InputError
from .saving import saved_ids

#: where the adapted models go, inside the reviewed folder
SITE_MODELS = "site_models"
#: an adaptation needs at least this many corrected images (a batch needs two)
MIN_CORRECTED = 2
#: log lines kept for the page
LOG_LINES = 40


def last_adaptation(summary: dict, model: Path) -> dict:
    """What the page shows of an adaptation: its ``adaptation.json`` ``summary`` (site
    mode) and the model file it wrote."""
    site = summary.get("site") or {}
    return {"model": str(model), "n_images": site.get("n_images"),
            "unit": site.get("unit"), "names": site.get("landmark_names"),
            "mean_shift": site.get("mean_shift_magnitude"),
            "offset_before": site.get("offset_before"),
            "offset_after": site.get("offset_after"),
            "calibration": site.get("calibration"), "seconds": summary.get("seconds"),
            "resumed": False}


def _same_file(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError, TypeError):
        return False


class SiteTrainer:
    """Adapts the store's domain to the folder's saved images, one run at a time.

    ``checkpoint``: the model file the app started with (None: training unavailable,
    ``status`` says why); ``settings``: :class:`..workflows.adapt.AdaptRequest` fields
    to override (e.g. ``epochs`` for a quick run); ``load``: path -> detector (the app's
    device and options).
    """

    def __init__(self, store, checkpoint: str | Path | None, load, settings: dict | None = None):
        self.store, self.checkpoint, self.load = store, checkpoint, load
        self.settings = dict(settings or {})
        self.state, self.error, self.lines = "idle", None, []
        self.last: dict | None = None
        self.started: float | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- what the page shows --------------------------------------------------------------
    def corrected(self) -> list[str]:
        """Ids of the images saved in the review table (the site's training images)."""
        return sorted(saved_ids(self.store.csv_path))

    def unavailable(self) -> str | None:
        """Why training cannot start now (None: it can)."""
        if self.checkpoint is None:
            return ("this model has no file to adapt (an ONNX model or a model given in "
                    "code); start `unilandmark serve` with --checkpoint")
        if "csv" not in self.store.save_format and self.store.save_format != "both":
            return ("training reads the review table: save to csv (serve --save csv or "
                    "both)")
        n = len(self.corrected())
        if n < MIN_CORRECTED:
            return f"save at least {MIN_CORRECTED} corrected images first ({n} so far)"
        return None

    def status(self) -> dict:
        with self._lock:
            return {"state": self.state, "error": self.error, "log": list(self.lines),
                    "corrected": len(self.corrected()), "min_corrected": MIN_CORRECTED,
                    "unavailable": self.unavailable() if self.state != "running" else None,
                    "running_s": time.time() - self.started
                    if self.state == "running" and self.started else None,
                    "last": self.last}

    # -- running ------------------------------------------------------------------------
    def start(self) -> dict:
        """Start an adaptation from every saved image; refused while one runs."""
        with self._lock:
            if self.state == "running":
                raise InputError("an adaptation is already running; wait for it to end")
            why = self.unavailable()
            if why:
                raise InputError(f"cannot train: {why}")
            self.state, self.error, self.lines = "running", None, []
            self.started = time.time()
            self._thread = threading.Thread(target=self._run, name="site-adaptation",
                                            daemon=True)
            self._thread.start()
        return self.status()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the running adaptation (tests, shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def resume(self) -> Path | None:
        """Go on with the folder's latest adapted model (``site_models/NNN``, highest NNN
        with its ``model.pt`` and ``adaptation.json``) when it adapted this store's domain
        from ``checkpoint``; the store predicts with it and the status shows it as the
        last adaptation. Returns its folder, or None (none there, or it was adapted from
        another model: then the app keeps its own, and a later run starts from it)."""
        if self.checkpoint is None:
            return None
        done = [p for p in self._runs() if (p / "model.pt").is_file()
                and (p / "adaptation.json").is_file()]
        if not done:
            return None
        latest = done[-1]
        try:
            summary = json.loads((latest / "adaptation.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"{latest / 'adaptation.json'}: unreadable ({err}); move the "
                             "folder away or start `unilandmark serve` with "
                             "--original-model") from err
        site = summary.get("site") if isinstance(summary, dict) else None
        domain = (summary.get("new_domain") or {}).get("name") if site else None
        if not site or domain != self.store.domain or \
                not _same_file(summary.get("checkpoint"), self.checkpoint):
            return None
        self.store.replace_detector(self.load(latest / "model.pt"))
        last = last_adaptation(summary, latest / "model.pt")
        last["resumed"] = True
        with self._lock:
            self.state, self.last = "done", last
        return latest

    def _log(self, line: str) -> None:
        with self._lock:
            self.lines = (self.lines + [str(line)])[-LOG_LINES:]

    def _runs(self) -> list[Path]:
        """The folder's adaptation folders ``site_models/NNN``, in the order of NNN."""
        root = self.store.folder.root / SITE_MODELS
        if not root.is_dir():
            return []
        return sorted((p for p in root.glob("[0-9][0-9][0-9]") if p.name.isdigit()),
                      key=lambda p: int(p.name))

    def _out_dir(self) -> Path:
        runs = self._runs()
        taken = int(runs[-1].name) if runs else 0
        return self.store.folder.root / SITE_MODELS / f"{taken + 1:03d}"

    def _run(self) -> None:
        from ..workflows.adapt import AdaptRequest, run_adaptation

        try:
            out = self._out_dir()
            request = AdaptRequest(**{
                "data": str(self.store.csv_path), "dataset": "csv",
                "options": {"images": str(self.store.folder.root),
                            **({"spacing": self.store.spacing[0]}
                               if self.store.spacing and
                               self.store.spacing[0] == self.store.spacing[1] else {})},
                "domain": self.store.domain, "out": str(out),
                "checkpoint": str(self.checkpoint), "check_old": False,
                "cache_dir": None, **self.settings})
            result = run_adaptation(request, progress=False, log=self._log, warn=self._log)
            detector = self.load(result.model_path)
            self.store.replace_detector(detector)
            last = last_adaptation(result.summary, result.model_path)
            with self._lock:
                self.state, self.last = "done", last
        except Exception as err:  # reported to the page; the app keeps its model
            with self._lock:
                self.state, self.error = "failed", f"{type(err).__name__}: {err}"
