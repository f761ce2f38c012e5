"""The review app: a FastAPI application over one folder and one loaded model.

``create_app(folder, detector, ...)`` builds it; :func:`unilandmark.serve.run_server`
serves it. Routes (all JSON unless said; ``NAME`` is an image's file name, URL-encoded):

- ``GET /``: the page; ``GET /static/...``: its script and style (nothing from elsewhere).
- ``GET /api/info``: the folder, domain, landmark names, save formats, limits.
- ``GET /api/images``: ``{"images": [{name, status}]}``.
- ``GET /api/images/NAME``: size, display size, spacing (and its source) and status.
- ``GET /api/images/NAME/display``: the display JPEG (see :mod:`.display`).
- ``GET /api/images/NAME/landmarks``: the review state (predicting once if new).
- ``PUT /api/images/NAME/landmarks`` ``{points}``: store edits (status ``reviewed``).
- ``POST /api/images/NAME/save`` ``{points, format?}``: write files (status ``saved``).
- ``GET /api/images/NAME/prediction``: the state with the model's points attached.
- ``POST /api/images/NAME/ruler`` ``{start, end, length_mm}``: the image's spacing from a
  ruler, written beside it (``NAME.spacing.json``); the state with the new spacing.
- ``POST /api/measure`` ``{name, points}``: measurements of points, nothing stored.
- ``POST /api/upload?filename=F`` (raw bytes): add an image to the folder.
- ``GET /api/site``: the site's corrected images and the adaptation's state, log and last
  result (per-landmark mean shift); ``POST /api/site/train``: adapt the model to the saved
  images in the background (:mod:`.site_training`); the adapted model then predicts.

Points are ``[x, y]`` in original pixels or ``null`` (not visible). Requests that change
anything must carry the header ``X-Unilandmark: 1``, which a page from another site
cannot send without the browser asking first (and this app answers no such question);
``allowed_hosts`` refuses requests addressed to any other host name (DNS rebinding).
Every request body has a size limit, checked before it is read whole (the declared
``Content-Length`` and the bytes as they stream in): the upload limit for
``/api/upload``, a small JSON limit for everything else; over it is answered 413. These
rules live in :mod:`.guards`, shared with the volume app (:mod:`.volume_app`), which
``create_app`` builds instead when the model predicts volumes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ..core.errors import InputError
from ..core.types import Spacing
from .display import DISPLAY_MAX_SIDE, DISPLAY_MEDIA_TYPE, display_image, display_size
from .folder import ImageFolder
from .guards import (  # noqa: F401 - re-exported: the names callers import from here
    CSP,
    LOOPBACK_HOSTS,
    UPLOAD_PATH,
    WRITE_HEADER,
    BodyLimit,
    BodyTooLarge,
    add_error_handlers,
    add_guards,
    host_allowed,
    split_host,
    too_big,
)
from .measurements import measurements_for
from .saving import FORMATS
from .site_training import SiteTrainer
from .state import ImageState, ReviewStore
from .volume_app import create_volume_app
from .volume_state import is_volume_detector

STATIC_DIR = Path(__file__).parent / "static"
#: largest accepted upload, bytes
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: the JSON body limit (every request but an upload): this many bytes, or
#: ``JSON_BYTES_PER_LANDMARK`` per landmark of the model where that is more. A body of
#: points for K landmarks needs well under 100 bytes a landmark, even pretty-printed.
MIN_JSON_BYTES = 64 * 1024
JSON_BYTES_PER_LANDMARK = 2 * 1024
#: confidence at or above ``high`` is drawn as confident, below ``low`` as doubtful
CONFIDENCE_LEVELS = {"high": 0.5, "low": 0.2}


class PointsIn(BaseModel):
    """Points of every landmark, ``[x, y]`` original pixels or ``None`` (not visible)."""

    points: list[list[float] | None]


class SaveIn(PointsIn):
    format: str | None = None


class MeasureIn(PointsIn):
    name: str


class RulerIn(BaseModel):
    """A ruler drawn on the image: its two ends (original pixels) and its length in mm."""

    start: list[float] = Field(min_length=2, max_length=2)
    end: list[float] = Field(min_length=2, max_length=2)
    length_mm: float = Field(gt=0, allow_inf_nan=False)


class _DisplayCache:
    """The last few display images, keyed by file name, modification time and size."""

    def __init__(self, capacity: int = 12):
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, make):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value


def create_app(folder: str | Path, detector, domain: str | None = None, *,
               spacing: Spacing | None = None, save: str = "both",
               csv_path: str | Path | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               display_max_side: int = DISPLAY_MAX_SIDE,
               allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS,
               max_json_bytes: int | None = None, checkpoint: str | Path | None = None,
               load_model=None, adapt_settings: dict | None = None,
               resume_site_model: bool = True) -> FastAPI:
    """The review app for the images directly in ``folder``, predicted by ``detector``.

    ``domain``: the model's domain (None: its only one). ``spacing``: mm per pixel (x, y)
    for images whose file carries none. ``save``: default format, ``csv``, ``labelme`` or
    ``both``; ``csv_path``: the review table (default ``FOLDER/landmarks_reviewed.csv``).
    ``allowed_hosts``: the ``Host`` header values the app answers to, each a name (any
    port) or ``name:port`` (that port only); an IPv6 address in brackets. None switches
    the check off: only for an app behind a proxy that checks the host itself.
    ``max_upload_bytes``: the largest upload; ``max_json_bytes``: the largest body of any
    other request (None: :data:`MIN_JSON_BYTES`, or :data:`JSON_BYTES_PER_LANDMARK` per
    landmark where that is more).

    ``checkpoint``: the model's file, which "Train on the corrections" adapts to the
    folder's saved images (:mod:`.site_training`; None: training is unavailable);
    ``load_model``: path -> detector for the adapted model (default: ``type(detector)
    .from_checkpoint``); ``adapt_settings``: AdaptRequest fields to override;
    ``resume_site_model``: go on with the folder's latest model adapted from
    ``checkpoint`` (``FOLDER/site_models/NNN``), if any (False: the model as given).

    A volume model (every domain 3-D, e.g. the built-in ``brain``) gets the volume app
    instead (:func:`~unilandmark.serve.volume_app.create_volume_app`: the volumes in
    ``folder``, three views, saving to ``csv``, ``markups`` or ``both``); ``spacing`` and
    ``display_max_side`` do not apply to volumes, whose spacing is in their files.
    """
    if is_volume_detector(detector):
        if spacing is not None:
            raise InputError("spacing applies to 2-D images; a volume's spacing is read "
                             "from its file")
        return create_volume_app(folder, detector, domain, save=save, csv_path=csv_path,
                                 allowed_hosts=allowed_hosts, max_json_bytes=max_json_bytes,
                                 max_upload_bytes=max_upload_bytes)
    images = ImageFolder(folder)
    store = ReviewStore(images, detector, domain, spacing=spacing, save=save,
                        csv_path=csv_path)
    if max_json_bytes is None:
        max_json_bytes = max(MIN_JSON_BYTES, JSON_BYTES_PER_LANDMARK * len(store.names))
    trainer = SiteTrainer(store, checkpoint, load_model or (
        lambda path: type(detector).from_checkpoint(path, str(getattr(detector, "device", "cpu")))),
        adapt_settings)
    if resume_site_model:
        trainer.resume()
    cache = _DisplayCache()
    app = FastAPI(title="unilandmark review", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.store = store
    app.state.trainer = trainer
    # inside the guard (added after it is outermost): the host and header checks come first
    app.add_middleware(BodyLimit, upload_bytes=max_upload_bytes, json_bytes=max_json_bytes)
    add_guards(app, allowed_hosts)
    add_error_handlers(app)

    def respond(state: ImageState) -> dict:
        return _state_json(state)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/info")
    def info() -> dict:
        return {"folder": str(images.root), "domain": store.domain,
                "names": list(store.names), "save_format": store.save_format,
                "formats": list(FORMATS), "csv": str(store.csv_path),
                "confidence_levels": CONFIDENCE_LEVELS, "max_upload_bytes": max_upload_bytes,
                "max_json_bytes": max_json_bytes,
                "model": getattr(detector, "model_name", None)}

    @app.get("/api/images")
    def listing() -> dict:
        return {"images": store.listing()}

    @app.get("/api/images/{name}")
    def meta(name: str) -> dict:
        path = images.path(name)
        size, image_spacing, source = store._info(path)
        stat = path.stat()
        status = store.status_of(name)
        return {"name": name, "size": list(size),
                "display_size": list(display_size(size, display_max_side)),
                "spacing": list(image_spacing) if image_spacing else None,
                "spacing_source": source if image_spacing else None,
                "version": f"{stat.st_mtime_ns}-{stat.st_size}", "status": status}

    @app.get("/api/images/{name}/display")
    def display(name: str) -> Response:
        path = images.path(name)
        stat = path.stat()
        shown = cache.get((name, stat.st_mtime_ns, stat.st_size),
                          lambda: display_image(path, display_max_side))
        return Response(shown.data, media_type=DISPLAY_MEDIA_TYPE, headers={
            "X-Original-Size": "{} {}".format(*shown.original_size),
            "X-Display-Size": "{} {}".format(*shown.display_size),
            "Cache-Control": "private, max-age=3600"})

    @app.get("/api/images/{name}/landmarks")
    def landmarks(name: str) -> dict:
        return respond(store.get(name))

    @app.put("/api/images/{name}/landmarks")
    def update(name: str, body: PointsIn) -> dict:
        return respond(store.update(name, body.points))

    @app.post("/api/images/{name}/save")
    def save_image(name: str, body: SaveIn) -> dict:
        return respond(store.save(name, body.points, body.format))

    @app.get("/api/images/{name}/prediction")
    def prediction(name: str) -> dict:
        return respond(store.with_prediction(name))

    @app.post("/api/images/{name}/ruler")
    def ruler(name: str, body: RulerIn) -> dict:
        return respond(store.calibrate(name, body.start, body.end, body.length_mm))

    @app.post("/api/measure")
    def measure_points(body: MeasureIn) -> dict:
        from .state import parse_points

        state = store.get(body.name)
        points = parse_points(body.points, len(store.names), state.size)
        return {"measurements": _measure(store.names, points, state.spacing, state.mirrored)}

    @app.get("/api/site")
    def site_status() -> dict:
        return trainer.status()

    @app.post("/api/site/train")
    def site_train() -> dict:
        return trainer.start()

    @app.post(UPLOAD_PATH)
    async def upload(request: Request, filename: str) -> dict:
        # BodyLimit refuses an upload over the limit already; checked here again so that
        # the route is safe on its own
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload_bytes:
            raise HTTPException(413, too_big(filename, max_upload_bytes))
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > max_upload_bytes:
                raise HTTPException(413, too_big(filename, max_upload_bytes))
        stored = await run_in_threadpool(images.store_upload, filename, bytes(data))
        return {"name": stored}

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _measure(names, points, spacing, mirrored) -> list[dict] | None:
    return measurements_for(names, points, spacing, mirrored)


def _state_json(state: ImageState) -> dict:
    out = state.to_json()
    try:
        out["measurements"] = _measure(state.names, state.points, state.spacing,
                                       state.mirrored)
    except ValueError as err:  # a measurement spec that does not fit: say so, keep going
        out["measurements"] = None
        out["measurements_error"] = str(err)
    return out


