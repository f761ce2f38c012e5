"""The review app: a FastAPI application over one folder and one loaded model.

``create_app(folder, detector, ...)`` builds it; :func:`unilandmark.serve.run_server`
serves it. Routes (all JSON unless said; ``NAME`` is an image's file name, URL-encoded):

- ``GET /``: the page; ``GET /static/...``: its script and style (nothing from elsewhere).
- ``GET /api/info``: the folder, domain, landmark names, save formats, limits.
- ``GET /api/images``: ``{"images": [{name, status}]}``.
- ``GET /api/images/NAME``: size, display size, spacing and status (header only).
- ``GET /api/images/NAME/display``: the display JPEG (see :mod:`.display`).
- ``GET /api/images/NAME/landmarks``: the review state (predicting once if new).
- ``PUT /api/images/NAME/landmarks`` ``{points}``: store edits (status ``reviewed``).
- ``POST /api/images/NAME/save`` ``{points, format?}``: write files (status ``saved``).
- ``GET /api/images/NAME/prediction``: the state with the model's points attached.
- ``POST /api/measure`` ``{name, points}``: measurements of points, nothing stored.
- ``POST /api/upload?filename=F`` (raw bytes): add an image to the folder.

Points are ``[x, y]`` in original pixels or ``null`` (not visible). Requests that change
anything must carry the header ``X-Unilandmark: 1``, which a page from another site
cannot send without the browser asking first (and this app answers no such question);
``allowed_hosts`` refuses requests addressed to any other host name (DNS rebinding).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from ..core.types import Spacing
from ..imageio.read import ImageReadError, read_image_info
from .display import DISPLAY_MAX_SIDE, DISPLAY_MEDIA_TYPE, display_image, display_size
from .folder import ImageFolder, UnknownImage, UploadRejected
from .measurements import measurements_for
from .saving import FORMATS, SavedFileError, SaveError
from .state import ImageState, ReviewStore

STATIC_DIR = Path(__file__).parent / "static"
#: largest accepted upload, bytes
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: confidence at or above ``high`` is drawn as confident, below ``low`` as doubtful
CONFIDENCE_LEVELS = {"high": 0.5, "low": 0.2}
#: header every state-changing request must carry (a cross-site form cannot set it)
WRITE_HEADER = "x-unilandmark"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")


class PointsIn(BaseModel):
    """Points of every landmark, ``[x, y]`` original pixels or ``None`` (not visible)."""

    points: list[list[float] | None]


class SaveIn(PointsIn):
    format: str | None = None


class MeasureIn(PointsIn):
    name: str


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
               allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS) -> FastAPI:
    """The review app for the images directly in ``folder``, predicted by ``detector``.

    ``domain``: the model's domain (None: its only one). ``spacing``: mm per pixel (x, y)
    for images whose file carries none. ``save``: default format, ``csv``, ``labelme`` or
    ``both``; ``csv_path``: the review table (default ``FOLDER/landmarks_reviewed.csv``).
    ``allowed_hosts``: host names the app answers to (None: any, e.g. behind ``--host``).
    """
    images = ImageFolder(folder)
    store = ReviewStore(images, detector, domain, spacing=spacing, save=save,
                        csv_path=csv_path)
    cache = _DisplayCache()
    app = FastAPI(title="unilandmark review", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.store = store
    _add_guards(app, allowed_hosts)
    _add_error_handlers(app)

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
                "model": getattr(detector, "model_name", None)}

    @app.get("/api/images")
    def listing() -> dict:
        return {"images": store.listing()}

    @app.get("/api/images/{name}")
    def meta(name: str) -> dict:
        path = images.path(name)
        size, file_spacing = read_image_info(path)
        stat = path.stat()
        status = store.status_of(name)
        return {"name": name, "size": list(size),
                "display_size": list(display_size(size, display_max_side)),
                "spacing": list(file_spacing or spacing or ()) or None,
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

    @app.post("/api/measure")
    def measure_points(body: MeasureIn) -> dict:
        from .state import parse_points

        state = store.get(body.name)
        points = parse_points(body.points, len(store.names), state.size)
        return {"measurements": _measure(store.names, points, state.spacing, state.mirrored)}

    @app.post("/api/upload")
    async def upload(request: Request, filename: str) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload_bytes:
            raise HTTPException(413, _too_big(filename, max_upload_bytes))
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > max_upload_bytes:
                raise HTTPException(413, _too_big(filename, max_upload_bytes))
        stored = await run_in_threadpool(images.store_upload, filename, bytes(data))
        return {"name": stored}

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _too_big(filename: str, limit: int) -> str:
    return f"{filename}: larger than the upload limit of {limit / 2**20:.0f} MiB"


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


def _add_guards(app: FastAPI, allowed_hosts: tuple[str, ...] | None) -> None:
    allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if allowed is not None:
            host = request.headers.get("host", "").lower()
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if hostname not in allowed:
                return JSONResponse({"detail": f"host {host!r} is not served here"}, 400)
        if (request.method not in ("GET", "HEAD", "OPTIONS")
                and request.headers.get(WRITE_HEADER) != "1"):
            return JSONResponse({"detail": f"requests that change anything need the header "
                                           f"'{WRITE_HEADER}: 1'"}, 403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _add_error_handlers(app: FastAPI) -> None:
    def handler(status: int):
        async def handle(_request: Request, err: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(err.args[0] if err.args else err)}, status)
        return handle

    app.add_exception_handler(UnknownImage, handler(404))
    app.add_exception_handler(UploadRejected, handler(415))
    app.add_exception_handler(ImageReadError, handler(422))
    app.add_exception_handler(SavedFileError, handler(409))
    app.add_exception_handler(SaveError, handler(500))
    app.add_exception_handler(ValueError, handler(422))
    app.add_exception_handler(FileNotFoundError, handler(404))

    async def os_error(_request: Request, err: OSError) -> JSONResponse:
        where = f"{err.filename}: " if err.filename else ""
        return JSONResponse({"detail": f"{where}{err.strerror or err}"}, 500)

    app.add_exception_handler(OSError, os_error)
