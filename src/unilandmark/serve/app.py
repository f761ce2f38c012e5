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
Every request body has a size limit, checked before it is read whole (the declared
``Content-Length`` and the bytes as they stream in): the upload limit for
``/api/upload``, a small JSON limit for everything else; over it is answered 413.
"""

from __future__ import annotations

import re
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
#: the JSON body limit (every request but an upload): this many bytes, or
#: ``JSON_BYTES_PER_LANDMARK`` per landmark of the model where that is more. A body of
#: points for K landmarks needs well under 100 bytes a landmark, even pretty-printed.
MIN_JSON_BYTES = 64 * 1024
JSON_BYTES_PER_LANDMARK = 2 * 1024
UPLOAD_PATH = "/api/upload"
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
               allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS,
               max_json_bytes: int | None = None) -> FastAPI:
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
    """
    images = ImageFolder(folder)
    store = ReviewStore(images, detector, domain, spacing=spacing, save=save,
                        csv_path=csv_path)
    if max_json_bytes is None:
        max_json_bytes = max(MIN_JSON_BYTES, JSON_BYTES_PER_LANDMARK * len(store.names))
    cache = _DisplayCache()
    app = FastAPI(title="unilandmark review", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.store = store
    # inside the guard (added after it is outermost): the host and header checks come first
    app.add_middleware(BodyLimit, upload_bytes=max_upload_bytes, json_bytes=max_json_bytes)
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
                "max_json_bytes": max_json_bytes,
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

    @app.post(UPLOAD_PATH)
    async def upload(request: Request, filename: str) -> dict:
        # BodyLimit refuses an upload over the limit already; checked here again so that
        # the route is safe on its own
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
    return f"{filename}: larger than the upload limit of {_size(limit)}"


def _size(n: int) -> str:
    """``n`` bytes for a message: ``64 MiB``, ``64 KiB``, ``0.5 MiB``, ``100 bytes``."""
    if n >= 2**20:
        return f"{n / 2**20:.4g} MiB"
    if n >= 1024:
        return f"{n / 1024:.4g} KiB"
    return f"{n} bytes"


class BodyTooLarge(HTTPException):
    """A request body over its limit (413), raised while the body streams in."""

    def __init__(self, detail: str):
        super().__init__(413, detail)


class BodyLimit:
    """Refuses (413) a request whose body is larger than its limit, before it is read
    whole: at once when ``Content-Length`` declares too much, else as soon as the bytes
    received pass the limit (a chunked body declares no length). The limit is
    ``upload_bytes`` for ``/api/upload``, ``json_bytes`` for every other path.

    Pure ASGI (not ``BaseHTTPMiddleware``), so that it sees the body as it streams. Past
    the limit the route's ``receive`` raises :class:`BodyTooLarge`, an ``HTTPException``:
    FastAPI passes that on from its body parsing (any other error there becomes a 400),
    and its exception handler answers 413 before the route runs.
    """

    def __init__(self, app, upload_bytes: int, json_bytes: int):
        self.app = app
        self.upload_bytes = upload_bytes
        self.json_bytes = json_bytes

    def _limit(self, scope) -> tuple[int, str]:
        if scope.get("path") == UPLOAD_PATH:
            from urllib.parse import parse_qs

            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            name = (query.get("filename") or ["the upload"])[0]
            return self.upload_bytes, _too_big(name, self.upload_bytes)
        return self.json_bytes, (f"the request body is larger than the limit of "
                                 f"{_size(self.json_bytes)} for this request")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, message = self._limit(scope)
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await JSONResponse({"detail": message}, 413)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message_in = await receive()
            if message_in["type"] == "http.request":
                received += len(message_in.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(message)
            return message_in

        async def tracking_send(message_out):
            nonlocal started
            if message_out["type"] == "http.response.start":
                started = True
            await send(message_out)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception as err:  # noqa: BLE001 - only our own refusal is answered here
            if started or not _is_too_large(err):
                raise
            await JSONResponse({"detail": message}, 413)(scope, receive, send)


def _is_too_large(err: BaseException) -> bool:
    """``err`` is a :class:`BodyTooLarge` (alone, or all of an exception group)."""
    if isinstance(err, BodyTooLarge):
        return True
    leaves = getattr(err, "exceptions", None)
    return bool(leaves) and all(_is_too_large(e) for e in leaves)


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


#: a host name (or IPv4 address), or an IPv6 address in brackets; then an optional port
_HOST = re.compile(r"(?P<name>[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?"
                   r"|\[[0-9a-f:.]+(?:%[a-z0-9_.-]+)?\])"
                   r"(?::(?P<port>[0-9]{1,5}))?")


def split_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header value (or an allowed entry) as ``(name, port or None)``, the name
    lower-case and an IPv6 address in brackets; None when it is not of that form (a name
    is letters, digits, ``.``, ``-`` and ``_``; no wildcards)."""
    value = value.strip().lower()
    if value.count(":") > 1 and not value.startswith("["):
        value = f"[{value}]"  # a bare IPv6 address (in an allowed list)
    match = _HOST.fullmatch(value)
    if match is None:
        return None
    name, port = match.group("name"), match.group("port")
    if port is None:
        return name, None
    return (name, int(port)) if 0 < int(port) < 65536 else None


def host_allowed(host: str, allowed: list[tuple[str, int | None]]) -> bool:
    """Whether a request's ``Host`` header matches one entry of ``allowed`` (an entry
    without a port matches any port; a request without one is on port 80)."""
    got = split_host(host)
    if got is None:
        return False
    name, port = got
    return any(name == a_name and (a_port is None or a_port == (port or 80))
               for a_name, a_port in allowed)


def _add_guards(app: FastAPI, allowed_hosts: tuple[str, ...] | None) -> None:
    allowed = None
    if allowed_hosts is not None:
        allowed = [entry for h in allowed_hosts if (entry := split_host(h)) is not None]

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if allowed is not None:
            host = request.headers.get("host", "")
            if not host_allowed(host, allowed):
                # the allowed names are not listed: the page that sent this may be hostile
                return JSONResponse({"detail": (
                    f"requests addressed to host {host!r} are not served here (this server "
                    "answers to localhost and to the names given with --allow-host)")}, 400)
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
