"""``unilandmark serve``: the review web app over a folder of images."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ..core.errors import InputError
from ..core.limits import checked_spacing
from .common import console, err_console, friendly

LOOPBACK = ("127.0.0.1", "localhost", "::1")


#: the largest upload the review app can be told to accept, in MB
MAX_UPLOAD_LIMIT_MB = 4096


@friendly
def serve_cmd(
    folder: Path = typer.Argument(Path("."), help="Folder of images to review (default: here)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Default: the built-in model."),
    domain: str = typer.Option(None, "--domain", help="Domain (anatomy) of the images; "
                                                      "needed when the model knows several."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to listen on. The default answers this computer "
                                  "only; another address exposes the images to the network "
                                  "without any login."),
    save: str = typer.Option("both", "--save",
                             help="Default save format: csv, labelme or both (changeable in "
                                  "the page)."),
    csv_path: Path = typer.Option(None, "--csv", help="Review table to write "
                                                      "(default FOLDER/landmarks_reviewed.csv)."),
    spacing: float = typer.Option(None, "--spacing", help="mm per pixel for images whose file "
                                                          "has no spacing, e.g. 0.1 for ISBI."),
    max_upload_mb: float = typer.Option(64.0, "--max-upload-mb", help="Largest upload, MiB."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
) -> None:
    """Review, correct and save landmarks in the browser (a local web app)."""
    try:
        from ..serve import create_app, run_server
    except ImportError as err:
        raise InputError(f"the review app needs the 'serve' extra ({err.name} is missing): "
                         "pip install 'unilandmark[serve]'") from None
    from ..core.preflight import (
        PreflightError,
        check_device,
        check_writable_dir,
        check_writable_file,
    )
    from ..inference.detector import Detector
    from ..serve.saving import formats_of

    formats_of(save)
    device = check_device(device)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    try:  # reviewing a read-only folder is fine; saving there is not
        check_writable_dir(folder, "FOLDER")
        if csv_path is not None:
            check_writable_file(csv_path, "--csv")
    except PreflightError as err:
        err_console.print(f"[yellow]warning:[/yellow] {err}; Save will fail until that "
                          "is fixed", highlight=False)
    if not 0 < port < 65536:
        raise InputError(f"--port must lie in 1..65535, got {port}")
    pair = checked_spacing(spacing, "--spacing")
    if not (math.isfinite(max_upload_mb) and 0 < max_upload_mb <= MAX_UPLOAD_LIMIT_MB):
        raise InputError(f"--max-upload-mb must be a number of megabytes in "
                         f"(0, {MAX_UPLOAD_LIMIT_MB}], got {max_upload_mb}")
    detector = Detector.from_checkpoint(checkpoint, device=device)
    local = host in LOOPBACK
    app = create_app(folder, detector, domain, spacing=pair,
                     save=save, csv_path=csv_path,
                     max_upload_bytes=int(max_upload_mb * 2**20),
                     allowed_hosts=(*LOOPBACK, "[::1]") if local else None)
    count = len(app.state.store.folder.names())
    shown = f"[{host}]" if ":" in host else host
    console.print(f"reviewing {count} images in {folder.resolve()} "
                  f"(domain {app.state.store.domain}) at http://{shown}:{port}/  "
                  "(Ctrl+C stops)", highlight=False)
    if not local:
        err_console.print(f"[yellow]warning:[/yellow] listening on {host}: anyone who can "
                          "reach this address can see and change the images' landmarks",
                          highlight=False)
    run_server(app, host, port)
