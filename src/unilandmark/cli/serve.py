"""``unilandmark serve``: the review web app over a folder of images, or of volumes when
the model is a volume model (``--checkpoint brain``)."""

from __future__ import annotations

import errno
import math
import os
import socket
from pathlib import Path

import typer

from ..core.errors import InputError
from ..core.limits import checked_spacing
from .common import console, err_console, friendly

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: addresses that listen on every interface: no name of their own to allow
ANY_ADDRESS = ("0.0.0.0", "::", "")


#: the largest upload the review app can be told to accept, in MB
MAX_UPLOAD_LIMIT_MB = 4096
#: --save values: labelme for images, markups for volumes (checked once the model is read)
SAVE_CHOICES = ("csv", "labelme", "markups", "both")


@friendly
def serve_cmd(
    folder: Path = typer.Argument(Path("."), help="Folder of images (or, with a volume model, "
                                                  "volume files and DICOM series folders) "
                                                  "to review (default: here)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Default: the built-in model."),
    domain: str = typer.Option(None, "--domain", help="Domain (anatomy) of the images; "
                                                      "needed when the model knows several."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to listen on. The default answers this computer "
                                  "only; another address exposes the images to the network "
                                  "without any login."),
    save: str = typer.Option("both", "--save",
                             help="Default save format: csv, labelme or both; volumes: csv, "
                                  "markups (Slicer .mrk.json) or both (changeable in the "
                                  "page)."),
    csv_path: Path = typer.Option(None, "--csv", help="Review table to write (default "
                                                      "FOLDER/landmarks_reviewed.csv; volumes: "
                                                      "FOLDER/landmarks_reviewed_volumes.csv)."),
    spacing: float = typer.Option(None, "--spacing", help="mm per pixel for images whose file "
                                                          "has no spacing, e.g. 0.1 for ISBI."),
    allow_host: list[str] = typer.Option(
        None, "--allow-host", metavar="NAME",
        help="A host name (or address) the app also answers to, besides localhost; "
             "NAME for any port, NAME:PORT for one. Repeatable. Needed with --host 0.0.0.0: "
             "requests addressed to any other name are refused (DNS rebinding)."),
    max_upload_mb: float = typer.Option(64.0, "--max-upload-mb", help="Largest upload, MiB."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    original_model: bool = typer.Option(
        False, "--original-model",
        help="Predict with the model as given, not with the latest model that \"Train on "
             "the corrections\" adapted from it in FOLDER/site_models/ (the default goes "
             "on with that one)."),
) -> None:
    """Review, correct and save landmarks in the browser (a local web app); volumes in
    three views with a volume model."""
    try:
        from ..serve import create_app, run_server
    except ImportError as err:
        raise InputError(f"the review app needs the 'serve' extra ({err.name} is missing): "
                         "pip install 'unilandmark[serve]'") from None
    from ..checkpoints.builtin import model_path
    from ..checkpoints.checkpoint import load_checkpoint
    from ..core.preflight import (
        PreflightError,
        check_device,
        check_writable_dir,
        check_writable_file,
    )
    from ..inference.detector import Detector
    from ..inference.volume_detector import VolumeDetector, is_volume_model
    from ..serve.app import LOOPBACK_HOSTS, split_host
    from ..serve.saving import formats_of
    from ..serve.volume_saving import volume_formats_of

    if save not in SAVE_CHOICES:
        raise InputError(f"save format {save!r}: expected csv, labelme or both for images; "
                         "csv, markups or both for volumes")
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
    extra = []
    for name in allow_host or ():
        if split_host(name) is None:
            raise InputError(f"--allow-host {name!r}: not a host name; give a name or an "
                             "address such as lab-pc.local or 192.168.1.20, optionally with "
                             ":PORT (an IPv6 address in brackets)")
        extra.append(name.strip())
    local = host in LOOPBACK
    if not local and host not in ANY_ADDRESS:
        extra.append(host)  # the address it listens on is a name of its own
    check_port_free(host, port)  # before the model loads and the address is printed
    file = model_path(checkpoint)
    state = load_checkpoint(file, map_location="cpu")
    volumes = is_volume_model(state)
    if volumes:
        volume_formats_of(save)
        if pair is not None:
            raise InputError("--spacing applies to 2-D images; a volume's spacing is read "
                             "from its file")
        detector = VolumeDetector.from_checkpoint_state(state, device, str(file))
    else:
        formats_of(save)
        del state
        detector = Detector.from_checkpoint(checkpoint, device=device)
    app = create_app(folder, detector, domain, spacing=pair,
                     save=save, csv_path=csv_path,
                     max_upload_bytes=int(max_upload_mb * 2**20),
                     allowed_hosts=(*LOOPBACK_HOSTS, *extra),
                     checkpoint=None if volumes else file,
                     resume_site_model=not original_model)
    count = len(app.state.store.folder.names())
    shown = f"[{host}]" if ":" in host else host
    kind = "volumes" if volumes else "images"
    console.print(f"reviewing {count} {kind} in {folder.resolve()} "
                  f"(domain {app.state.store.domain}) at http://{shown}:{port}/  "
                  "(Ctrl+C stops)", highlight=False)
    trainer = getattr(app.state, "trainer", None)  # the volume app has none
    last = trainer.last if trainer is not None else None
    if last and last.get("resumed"):
        console.print(f"predicting with this site's adapted model {last['model']} (from "
                      f"{last['n_images']} corrected images); --original-model uses "
                      f"{file} itself", highlight=False)
    if not local:
        names = ", ".join(extra) or "none yet: add them with --allow-host"
        err_console.print(f"[yellow]warning:[/yellow] listening on {host}: anyone who can "
                          "reach this address can see and change the images' landmarks; "
                          "it answers requests addressed to localhost or an allowed name "
                          f"({names})", highlight=False)
    run_server(app, host, port)


def check_port_free(host: str, port: int) -> None:
    """Refuse (InputError) when the server could not listen on ``host:port``: the port
    is taken, needs privileges, or ``host`` is no address of this computer. Binds as
    uvicorn (asyncio) will, every address ``host`` resolves to, and releases at once."""
    try:
        infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                   0, socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise InputError(f"--host {host}: cannot listen there ({err.strerror}); give an "
                         "address of this computer, e.g. 127.0.0.1 or 0.0.0.0") from None
    for family, kind, proto, address in dict.fromkeys(
            (i[0], i[1], i[2], i[4]) for i in infos):
        try:
            sock = socket.socket(family, kind, proto)
        except OSError:  # a family this system lacks (asyncio skips it too)
            continue
        try:
            if os.name != "nt":  # as uvicorn: a port in TIME_WAIT is free to listen on
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError as err:
            raise InputError(_bind_problem(host, port, err)) from None
        finally:
            sock.close()


def _bind_problem(host: str, port: int, err: OSError) -> str:
    if err.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", None)):
        return (f"--port {port}: port {port} on {host} is already in use (another server, "
                "perhaps another unilandmark serve?); stop it or choose another --port")
    if err.errno in (errno.EACCES, errno.EPERM):
        return (f"--port {port}: no permission to listen on port {port} of {host} "
                "(ports below 1024 need administrator rights); choose another --port")
    if err.errno == errno.EADDRNOTAVAIL:
        return (f"--host {host}: not an address of this computer, so it cannot listen "
                "there; give one of its addresses, e.g. 127.0.0.1 or 0.0.0.0")
    return f"cannot listen on {host} port {port}: {err.strerror or err}"
