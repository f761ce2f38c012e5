"""``unilandmark serve``: a local web app to review, correct and export landmarks.

``create_app(folder, detector)`` builds the FastAPI app (see :mod:`.app` for its routes;
for a volume model, the volume app of :mod:`.volume_app`: three views served slice by
slice, :mod:`.slices`); ``run_server(app, host, port)`` serves it. Needs the ``serve`` extra
(``pip install unilandmark[serve]``: FastAPI, uvicorn, Pillow).
"""

from .app import create_app
from .server import BackgroundServer, run_server

__all__ = ["BackgroundServer", "create_app", "run_server"]
