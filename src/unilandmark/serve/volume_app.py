"""The review app for volumes: a FastAPI application over one folder of volumes and one
loaded volume model (``create_app`` builds it when the model predicts volumes).

Routes (JSON unless said; ``NAME`` is a volume's file name, or the name of a DICOM series
folder in the folder, URL-encoded):

- ``GET /``: the volume page (``static/volume.html``); ``GET /static/...``: its script
  and style.
- ``GET /api/info``: ``kind`` = ``volume``, the folder, domain, landmark names, save
  formats, the review table, limits.
- ``GET /api/volumes``: ``{"volumes": [{name, status}]}``.
- ``GET /api/volumes/NAME``: the volume's geometry, the display frame and its three views
  (slice counts, pixel sizes, the anatomical letters at each edge), the window's default
  and presets (reads the volume into memory; :meth:`.slices.LoadedVolume.info`).
- ``GET /api/volumes/NAME/slice/VIEW/INDEX``: one slice of ``axial``, ``coronal`` or
  ``sagittal``, raw little-endian values (``application/octet-stream``), headers
  ``X-Slice-Shape: ROWS COLS`` and ``X-Slice-Dtype`` (``uint8``, ``int16``, ``uint16``
  or ``float32``). Never more than one slice per request.
- ``GET /api/volumes/NAME/landmarks``: the review state (predicting once if new).
- ``PUT /api/volumes/NAME/landmarks`` ``{points}``: store edits (status ``reviewed``).
- ``POST /api/volumes/NAME/save`` ``{points, format?}``: write the files (``saved``).
- ``GET /api/volumes/NAME/prediction``: the state with the model's points attached.

Points are ``[x, y, z]`` world millimetres in LPS, or ``null`` (absent). The safety rules
are the image app's (:mod:`.guards`): the ``Host`` check, ``X-Unilandmark: 1`` on every
request that changes something, the JSON body limit, CSP ``'self'``, and names looked up
in the folder's own listing only. There is no upload route for volumes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from .guards import LOOPBACK_HOSTS, BodyLimit, add_error_handlers, add_guards
from .slices import VIEWS
from .volume_folder import VolumeFolder
from .volume_saving import VOLUME_FORMATS
from .volume_state import VolumeReviewStore, VolumeState

STATIC_DIR = Path(__file__).parent / "static"
#: the JSON body limit: this many bytes, or ``JSON_BYTES_PER_LANDMARK`` per landmark
MIN_JSON_BYTES = 64 * 1024
JSON_BYTES_PER_LANDMARK = 2 * 1024
CONFIDENCE_LEVELS = {"high": 0.5, "low": 0.2}
SLICE_MEDIA_TYPE = "application/octet-stream"


class VolumePointsIn(BaseModel):
    """Points of every landmark, ``[x, y, z]`` LPS mm or ``None`` (absent)."""

    points: list[list[float] | None]


class VolumeSaveIn(VolumePointsIn):
    format: str | None = None


def create_volume_app(folder: str | Path, detector, domain: str | None = None, *,
                      save: str = "both", csv_path: str | Path | None = None,
                      allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS,
                      max_json_bytes: int | None = None,
                      max_upload_bytes: int = 64 * 1024 * 1024) -> FastAPI:
    """The review app for the volumes directly in ``folder`` (files, and DICOM series
    subfolders: :mod:`.volume_folder`), predicted by ``detector``
    (a :class:`~unilandmark.inference.volume_detector.VolumeDetector`, or anything with
    its ``domains`` and ``predict((array, geometry), domain)``).

    ``save``: default format, ``csv``, ``markups`` or ``both``; ``csv_path``: the review
    table (default ``FOLDER/landmarks_reviewed_volumes.csv``). ``allowed_hosts`` and
    ``max_json_bytes`` as for images (:func:`unilandmark.serve.create_app`);
    ``max_upload_bytes`` only bounds a body sent to the (absent) upload route.
    """
    volumes = VolumeFolder(folder)
    store = VolumeReviewStore(volumes, detector, domain, save=save, csv_path=csv_path)
    if max_json_bytes is None:
        max_json_bytes = max(MIN_JSON_BYTES, JSON_BYTES_PER_LANDMARK * len(store.names))
    app = FastAPI(title="unilandmark review (volumes)", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.store = store
    app.add_middleware(BodyLimit, upload_bytes=max_upload_bytes, json_bytes=max_json_bytes)
    add_guards(app, allowed_hosts)
    add_error_handlers(app)

    def respond(state: VolumeState) -> dict:
        return state.to_json()

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "volume.html", media_type="text/html")

    @app.get("/api/info")
    def info() -> dict:
        return {"kind": "volume", "folder": str(volumes.root), "domain": store.domain,
                "names": list(store.names), "save_format": store.save_format,
                "formats": list(VOLUME_FORMATS), "csv": str(store.csv_path),
                "confidence_levels": CONFIDENCE_LEVELS, "max_json_bytes": max_json_bytes,
                "views": list(VIEWS), "frame": "LPS",
                "model": getattr(detector, "model_name", None)}

    @app.get("/api/volumes")
    def listing() -> dict:
        return {"volumes": store.listing()}

    @app.get("/api/volumes/{name}")
    def meta(name: str) -> dict:
        loaded = store.volume(name)
        return {"name": name, "status": store.status_of(name), **loaded.info()}

    @app.get("/api/volumes/{name}/slice/{view}/{index}")
    def slice_(name: str, view: str, index: int) -> Response:
        if view not in VIEWS:
            raise HTTPException(404, f"no view {view!r}; views: {', '.join(VIEWS)}")
        loaded = store.volume(name)
        try:
            cut = loaded.slice_bytes(view, index)
        except IndexError as err:
            raise HTTPException(404, f"{name}: {err}") from None
        return Response(cut.data, media_type=SLICE_MEDIA_TYPE, headers={
            "X-Slice-Shape": f"{cut.rows} {cut.cols}", "X-Slice-Dtype": cut.dtype,
            "X-Volume-Version": loaded.version, "Cache-Control": "private, max-age=3600"})

    @app.get("/api/volumes/{name}/landmarks")
    def landmarks(name: str) -> dict:
        return respond(store.get(name))

    @app.put("/api/volumes/{name}/landmarks")
    def update(name: str, body: VolumePointsIn) -> dict:
        return respond(store.update(name, body.points))

    @app.post("/api/volumes/{name}/save")
    def save_volume(name: str, body: VolumeSaveIn) -> dict:
        return respond(store.save(name, body.points, body.format))

    @app.get("/api/volumes/{name}/prediction")
    def prediction(name: str) -> dict:
        return respond(store.with_prediction(name))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
