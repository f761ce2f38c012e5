"""Running the review app with uvicorn: in the foreground (the CLI) or in a thread (tests,
benchmarks)."""

from __future__ import annotations

import threading
import time

import uvicorn


def run_server(app, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` until interrupted (Ctrl+C)."""
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class BackgroundServer:
    """``with BackgroundServer(app) as url:`` serves ``app`` on 127.0.0.1 at a free port in
    a daemon thread, and stops it on exit."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0):
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.host = host
        self.timeout = timeout
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the review server did not start on {self.host}")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=self.timeout)
