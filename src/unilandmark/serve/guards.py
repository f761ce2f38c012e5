"""The review app's safety rules, shared by the image and the volume app (docs/review.md,
"Safety"): the ``Host`` check (DNS rebinding), the write header, the Content-Security-Policy,
the size limit of every request body, and the error handlers that turn the library's
refusals into one-sentence JSON answers.

- :func:`add_guards`: refuses (400) a request addressed to a host name that is not
  allowed, refuses (403) a request that changes something without ``X-Unilandmark: 1``,
  and sets the CSP (``'self'`` only), ``nosniff`` and ``no-referrer`` on every answer.
- :class:`BodyLimit`: refuses (413) a body over its limit before it is read whole.
- :func:`add_error_handlers`: 404 for a name that is not in the folder, 415 for a
  refused upload, 422 for an unreadable file or a bad value, 409 for a saved file that
  cannot be read back, 500 for a file that cannot be written.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from ..imageio.read import ImageReadError
from .folder import UnknownImage, UploadRejected
from .saving import SavedFileError, SaveError

UPLOAD_PATH = "/api/upload"
#: header every state-changing request must carry (a cross-site form cannot set it)
WRITE_HEADER = "x-unilandmark"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")


def too_big(filename: str, limit: int) -> str:
    """The 413 message of an upload over ``limit`` bytes."""
    return f"{filename}: larger than the upload limit of {size_text(limit)}"


def size_text(n: int) -> str:
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
            return self.upload_bytes, too_big(name, self.upload_bytes)
        return self.json_bytes, (f"the request body is larger than the limit of "
                                 f"{size_text(self.json_bytes)} for this request")

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


def add_guards(app: FastAPI, allowed_hosts: tuple[str, ...] | None) -> None:
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


def add_error_handlers(app: FastAPI) -> None:
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
