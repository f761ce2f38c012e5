"""``unilandmark predict``: landmarks on new images.

A batch survives bad files (docs/prediction.md): every readable image is predicted, every
input that cannot be read is listed at the end with its reason, the CSV (written
atomically) holds all the good ones, and the exit code is 2 when any input failed.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.errors import InputError
from ..core.wording import plural
from ..inference.predictor import Predictor
from .common import EXIT_INPUT, console, err_console, friendly


def model_words(onnx: Path | None, checkpoint) -> str:
    """Which model answers, in words: a built-in one by name and what it learned, else
    the file."""
    from ..checkpoints.builtin import BUILTIN_DESCRIPTIONS, builtin_name, model_path

    if onnx is not None:
        return f"{onnx} (ONNX)"
    path = model_path(checkpoint)
    name = builtin_name(path)
    if name is not None:
        return f"built-in {name!r}: {BUILTIN_DESCRIPTIONS.get(name, '')} ({path.name})"
    return str(path)


def _listed(lists) -> list[Path]:
    """The paths of ``--list`` files (one per line, relative to the list's folder)."""
    out = []
    for listing in lists or []:
        for line in Path(listing).read_text(encoding="utf-8-sig").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                p = Path(line)
                out.append(p if p.is_absolute() else Path(listing).parent / p)
    return out


def volume_inputs(items: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Volumes to predict: files as given, a folder holding a DICOM series as one volume,
    any other folder's NIfTI/NRRD/MetaImage files (sorted, not recursive)."""
    from ..imageio.volume import dicom_series_ids

    suffixes = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
    paths, missing = [], []
    for item in items:
        if item.is_dir():
            if dicom_series_ids(item):
                paths.append(item)
                continue
            found = sorted(p for p in item.iterdir() if p.is_file() and
                           p.name.lower().endswith(suffixes) and not p.name.startswith("."))
            if not found:
                missing.append((str(item), "no volume files (or DICOM series) in this folder"))
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            missing.append((str(item), "no such file or folder"))
    return paths, missing


def predict_volumes(state: dict, items: list[Path], domain: str | None, out: Path,
                    markups: Path | None, device: str, words: str,
                    presence_threshold: float | None = None) -> None:
    """The volume branch of ``predict``: one row per (volume, landmark) in voxels and world
    mm (docs/volumes.md), optional Slicer markups; unreadable volumes listed at the end."""
    import numpy as np

    from ..core.errors import InputError as Fault
    from ..core.naming import unique_image_ids
    from ..data.markups import write_markups
    from ..inference.volume_detector import VolumeDetector
    from ..predictions.volume_table import volume_rows, write_volume_predictions

    detector = VolumeDetector.from_checkpoint_state(state, device)
    detector.presence_threshold = presence_threshold
    err_console.print(f"model: {words} (volumes)", highlight=False)
    paths, failures = volume_inputs(items)
    total = len(paths) + len(failures)
    if markups is not None:
        markups.mkdir(parents=True, exist_ok=True)
    rows, done = [], 0
    for path, rid in zip(paths, unique_image_ids(paths), strict=True):
        try:
            result = detector.predict(path, domain)
        except (Fault, OSError) as err:
            failures.append((str(path), str(err)))
            continue
        rows += volume_rows(rid, result.names, result.voxels, result.world,
                            result.confidence, result.domain, result.present)
        if markups is not None:  # an absent landmark is an undefined control point
            shown = result.world if result.present is None else \
                np.where(result.present[:, None], result.world, np.nan)
            write_markups(markups / f"{rid}.mrk.json", list(result.names), shown)
        done += 1
    if rows:
        write_volume_predictions(out, rows)
        console.print(f"wrote {plural(done, 'volume')} to {out}", highlight=False)
    if failures:
        err_console.print(f"[red]{len(failures)} of {total} "
                          f"input(s) could not be predicted[/red]" +
                          ("" if rows else f"; nothing written to {out}"), highlight=False)
        for item, reason in failures:
            err_console.print(f"  {item}: {reason}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INPUT)


CSV_HELP = ("Prediction CSV to write: image,landmark,x,y,name, x_mm,y_mm (only where a "
            "spacing is known), confidence, domain, risk (a calibrated model's), flag, qc, "
            "orientation, "
            "spacing_x,spacing_y,spacing_source (file, option, model or empty); see "
            "docs/protocols.md and docs/prediction.md.")


def collect_inputs(inputs: list[Path], lists: list[Path] | None = None
                   ) -> tuple[list[Path], list[tuple[str, str]], int]:
    """The image files to predict, in order: files as given, every image file of a folder
    (by name or content, sorted, not recursive), the lines of each list file (one path per
    line, relative to the list's folder; blank lines and ``#`` comments skipped).

    Returns (paths, missing [(input, reason)] for inputs that do not exist, the number of
    files in folders skipped as not images). A list file that cannot be read raises.
    """
    from ..imageio.read import is_image_file

    items: list[Path] = list(inputs) + _listed(lists)
    paths, missing, skipped = [], [], 0
    for item in items:
        if item.is_dir():
            # hidden files (a macOS "._scan.png" resource fork beside scan.png, ".DS_Store")
            # are not the user's images: left out, as the review app does
            files = sorted(p for p in item.iterdir() if p.is_file() and
                           not p.name.startswith("."))
            found = [p for p in files if is_image_file(p)]
            skipped += len(files) - len(found)
            if not found:
                missing.append((str(item), "no image files in this folder"))
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            missing.append((str(item), "no such file or folder"))
    return paths, missing, skipped


@friendly
def predict_cmd(
    inputs: list[Path] = typer.Argument(None, help="Image files and/or folders (every image "
                                                   "file in a folder, not recursive)."),
    image_list: list[Path] = typer.Option(None, "--list", help="A text file of image paths, "
                                          "one per line (relative to its folder); "
                                          "repeatable."),
    domain: str = typer.Option(None, "--domain", help="Domain (anatomy) of the images, e.g. "
                                                      "head; optional for one-domain models."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Trained checkpoint (best.pt) "
                                    "or model file (.safetensors), or a built-in model by "
                                    "name: head (senior annotator, the default) or head-mean "
                                    "(mean of the two ISBI annotators)."),
    model: Path = typer.Option(None, "--model", help="An exported ONNX graph (model.onnx, see "
                                                     "`export`), run by onnxruntime instead "
                                                     "of PyTorch."),
    out: Path = typer.Option(..., "--out", help=CSV_HELP),
    overlay: Path = typer.Option(None, "--overlay", help="Also draw each image with its "
                                                         "named landmarks into this folder."),
    device: str = typer.Option("auto", help="auto (a GPU where there is one), cpu, cuda, "
                                            "cuda:1, ..."),
    batch_size: int = typer.Option(4, min=1, help="Images per forward pass."),
    readers: int = typer.Option(2, min=0, help="Threads reading the next images while the "
                                               "model runs (0: read in line)."),
    spacing: float = typer.Option(None, help="mm per pixel for images whose file has no "
                                             "spacing (PNG, JPEG, ...), e.g. 0.1 for ISBI "
                                             "2015; the file's own spacing wins."),
    assume_training_spacing: bool = typer.Option(
        False, "--assume-training-spacing",
        help="For images without a spacing, use the median spacing of the model's training "
             "images (only when you know your images share it)."),
    full_decode: bool = typer.Option(
        False, "--full-decode",
        help="Decode every JPEG at full size (default: at the smallest size that still has "
             "the pixels the model's finest stage looks at; the landmarks are always in the "
             "original image's pixels)."),
    measurements: bool = typer.Option(False, "--measurements",
                                      help="Also write the clinical measurements and classes "
                                           "to <out stem>_measurements.csv (see `measure`)."),
    markups: Path = typer.Option(None, "--markups",
                                 help="Volumes: also write each volume's landmarks as a 3D "
                                      "Slicer markups file <DIR>/<volume>.mrk.json (LPS)."),
    presence_threshold: float = typer.Option(
        None, "--presence-threshold", min=0.0, max=1.0,
        help="Volumes: report a landmark absent when its heatmap peak is below this "
             "(default: the model's own, chosen on its validation split; 0: never absent)."),
) -> None:
    """Predict landmarks on new images (no ground truth needed).

    Millimetres are written only where a spacing is known: from the image file (DICOM,
    MetaImage, NIfTI, NRRD), from --spacing, or from the model's training spacing with
    --assume-training-spacing; the CSV records the spacing used per image and its source.
    Unreadable files are listed at the end and give exit code 2; the CSV holds every image
    that was read.
    """
    from ..core.limits import checked_spacing
    from ..core.naming import with_unique_ids
    from ..core.preflight import check_device, check_writable_dir, check_writable_file
    from ..evaluation.report import draw_overlay
    from ..inference.results import result_rows
    from ..predictions.table import write_predictions
    from .progress import image_progress

    sp = checked_spacing(spacing, "--spacing")
    if sp is not None and assume_training_spacing:
        raise InputError("give --spacing or --assume-training-spacing, not both")
    if model is not None and checkpoint is not None:
        raise InputError("give --checkpoint (PyTorch) or --model (ONNX), not both")
    if model is None:
        device = check_device(device)
    check_writable_file(out, "--out")
    if overlay:
        check_writable_dir(overlay, "--overlay")
    if not inputs and not image_list:
        raise InputError("give image files, folders or --list FILE")
    if model is None:
        from ..checkpoints.builtin import model_path
        from ..checkpoints.checkpoint import load_checkpoint
        from ..inference.volume_detector import is_volume_model

        state = load_checkpoint(model_path(checkpoint))
        if is_volume_model(state):
            predict_volumes(state, list(inputs or []) + _listed(image_list), domain, out,
                            markups, device, model_words(None, checkpoint),
                            presence_threshold)
            return
    if markups is not None or presence_threshold is not None:
        raise InputError("--markups and --presence-threshold are for volume models")
    paths, failures, skipped = collect_inputs(inputs or [], image_list)
    total = len(paths) + len(failures)
    detector: Predictor
    if model is not None:
        from ..export.runner import OnnxDetector

        detector = OnnxDetector(model, device=device)
    else:
        from ..inference.detector import Detector

        detector = Detector.from_checkpoint(checkpoint, device=device)
    err_console.print(f"model: {model_words(model, checkpoint)}", highlight=False)
    with image_progress(len(paths), err_console) as advance:
        results = detector.predict_many(
            paths, domain, spacing=sp, batch_size=batch_size, readers=readers,
            assume_training_spacing=assume_training_spacing, reduced_decode=not full_decode,
            on_result=lambda _: advance(),
            on_failure=lambda f: (failures.append((f.item, f.reason)), advance()))
    results = with_unique_ids(results, paths)
    if skipped:
        console.print(f"skipped {skipped} file(s) in the folders that are not images",
                      highlight=False)
    if results:
        write_predictions(out, result_rows(results))
        without = sum(r.spacing is None for r in results)
        note = (f" ({without} image(s) without a spacing: pixels only; see --spacing)"
                if without else "")
        console.print(f"wrote {plural(len(results), 'image')} x {len(results[0].names)} "
                      f"landmarks to {out}{note}", highlight=False)
        console.print(qc_summary(results), highlight=False)
    if results and measurements:
        from ..measure import default_output, measure_file, write_measurements
        from ..measure.report import summary_lines

        table = measure_file(out, domain=results[0].domain)
        write_measurements(default_output(out), table)
        for line in summary_lines(table, default_output(out)):
            console.print(line, highlight=False)
    if overlay and results:
        overlay.mkdir(parents=True, exist_ok=True)
        for r in results:
            draw_overlay(r.image_path, r.points, None, overlay / f"{r.id}.png",
                         title=f"{r.id} ({r.domain}): mean confidence "
                               f"{float(r.confidence.mean()):.2f}, QC {r.qc}",
                         names=r.names, confidence=r.confidence)
        console.print(f"overlays: {overlay}")
    if failures:
        err_console.print(f"[red]{len(failures)} of {total} input(s) "
                          f"could not be predicted[/red]" +
                          ("" if results else f"; nothing written to {out}"), highlight=False)
        for item, reason in failures:
            err_console.print(f"  {item}: {reason}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INPUT)


def qc_summary(results) -> str:
    """One line: images per QC status and landmarks flagged."""
    counts = {s: sum(r.qc == s for r in results) for s in ("pass", "review", "fail")}
    flagged = sum(int(r.flags.sum()) for r in results if r.flags is not None)
    total = sum(len(r.points) for r in results)
    calibrated = all(r.risk is not None for r in results)
    return (f"QC: {counts['pass']} pass, {counts['review']} review, {counts['fail']} fail; "
            f"{flagged} of {total} landmarks flagged"
            + ("" if calibrated else " (this model has no calibration: only points outside "
               "the image or far off the training shapes are flagged; see docs/quality.md)"))
