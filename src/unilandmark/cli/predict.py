"""``unilandmark predict``: landmarks on new images.

A batch survives bad files (docs/prediction.md): every readable image is predicted, every
input that cannot be read is listed at the end with its reason, the CSV (written
atomically) holds all the good ones, and the exit code is 2 when any input failed.

A long batch loses nothing: the CSV is rewritten atomically with every row so far as it
goes (:class:`RowsSoFar`: whole images only, at most every ``SAVE_EVERY_S`` seconds, and
at the end), and ``--resume`` keeps the images an interrupted run wrote and predicts
only the others.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import typer

from ..core.errors import InputError
from ..core.wording import plural
from ..inference.predictor import Predictor
from .common import EXIT_INPUT, console, err_console, friendly

#: a batch rewrites its CSV (atomically, every row so far) at most this often, in seconds
SAVE_EVERY_S = 10.0
#: ... and no more often than this many times the last rewrite took (a CSV of a very long
#: batch takes a while to write: its rewrites stay a small part of the run)
SAVE_COST_FACTOR = 10.0


class RowsSoFar:
    """The rows of a batch's CSV as it grows: those kept from an earlier run (``--resume``)
    and then each new item's rows, added whole. ``add`` rewrites the file (``write``, with
    every row so far) when ``SAVE_EVERY_S`` seconds have passed since the last rewrite;
    ``save`` at the end. A kill at any moment leaves the file of the last rewrite: every
    image in it has all its rows."""

    def __init__(self, write: Callable[[list[dict]], None], kept: list[dict] | None = None):
        self.write = write
        self.rows: list[dict] = list(kept or [])
        self.dirty = False
        self.last = time.monotonic()
        self.cost = 0.0

    def add(self, rows: list[dict]) -> None:
        """One item's rows; the file is rewritten when it is due."""
        self.rows += rows
        self.dirty = True
        if time.monotonic() - self.last >= max(SAVE_EVERY_S, SAVE_COST_FACTOR * self.cost):
            self.save()

    def save(self) -> None:
        """Rewrite the file with every row so far (nothing when nothing was added)."""
        if not self.dirty:
            return
        start = time.monotonic()
        self.write(self.rows)
        self.last = time.monotonic()
        self.cost = self.last - start
        self.dirty = False


def save_rows(out: Path, rows: list[dict], header=(), layout=None) -> None:
    """Write the prediction CSV (atomically; ``header`` and ``layout``: those of the file
    a resumed run keeps)."""
    from ..predictions.table import write_predictions

    write_predictions(out, rows, header=header, layout=layout)


def save_volume_rows(out: Path, rows: list[dict]) -> None:
    """Write the volume prediction CSV (atomically)."""
    from ..predictions.volume_table import write_volume_predictions

    write_volume_predictions(out, rows)


def earlier_rows(out: Path, resume: bool):
    """The prediction file a ``--resume`` run keeps (:class:`PredictionFile`), or None:
    without ``--resume`` (an existing file is replaced) or when ``out`` does not exist yet.
    A file that is not a prediction table is refused by the table reader, naming it."""
    from ..predictions.table import read_prediction_file

    if not resume or not out.exists():
        return None
    return read_prediction_file(out)


def _id_queues(pairs) -> dict[str, list[str]]:
    """{absolute path: its ids, in order}: results are matched to their ids by path, as
    ``core.naming.with_unique_ids`` does (a failed file does not shift the others)."""
    queues: dict[str, list[str]] = defaultdict(list)
    for path, rid in pairs:
        queues[os.path.abspath(path)].append(rid)
    return queues


def _resume_line(out: Path, kept: int, todo: int, what: str) -> str:
    if todo == 0:
        return f"--resume: all {plural(kept, what)} are already in {out}; nothing to predict"
    return (f"--resume: {plural(kept, what)} already in {out} kept; predicting the other "
            f"{todo}")


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
    any other folder's NIfTI/NRRD/MetaImage files and DICOM series subfolders (not hidden;
    as the review app lists them; sorted, not recursive)."""
    from ..imageio.volume import dicom_series_ids, holds_dicom_series

    suffixes = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
    paths, missing = [], []
    for item in items:
        if item.is_dir():
            if dicom_series_ids(item):
                paths.append(item)
                continue
            found = sorted(p for p in item.iterdir() if not p.name.startswith(".") and (
                (p.is_file() and p.name.lower().endswith(suffixes))
                or (p.is_dir() and holds_dicom_series(p))))
            if not found:
                missing.append((str(item), "no volume files (or DICOM series) in this folder"))
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            missing.append((str(item), "no such file or folder"))
    return paths, missing


def predict_volumes(load: Callable[[], object], items: list[Path], domain: str | None,
                    out: Path, markups: Path | None, words: str,
                    presence_threshold: float | None = None, resume: bool = False) -> None:
    """The volume branch of ``predict``: one row per (volume, landmark) in voxels and world
    mm (docs/volumes.md), optional Slicer markups; unreadable volumes listed at the end.
    ``load`` gives the detector (a PyTorch ``VolumeDetector`` or an ONNX
    ``OnnxVolumeDetector``: the same results, the same rows). The CSV is rewritten as
    volumes finish (:class:`RowsSoFar`); ``resume`` keeps the volumes already in ``out``
    and predicts the others."""
    import numpy as np

    from ..core.errors import InputError as Fault
    from ..core.naming import unique_image_ids
    from ..data.markups import write_markups
    from ..predictions.volume_table import VOLUME_COLUMNS, volume_rows

    kept = earlier_rows(out, resume)
    if kept is not None and not set(kept.header) <= set(VOLUME_COLUMNS):
        raise InputError(f"--resume: {out} is not a volume prediction table (columns "
                         f"{', '.join(c for c in kept.header if c not in VOLUME_COLUMNS)} "
                         "are not); give another --out, or leave out --resume to replace it")
    detector = load()
    detector.presence_threshold = presence_threshold
    err_console.print(f"model: {words} (volumes)", highlight=False)
    paths, failures = volume_inputs(items)
    total = len(paths) + len(failures)
    done_ids = {row["image"] for row in kept.rows} if kept is not None else set()
    todo = [(p, rid) for p, rid in zip(paths, unique_image_ids(paths), strict=True)
            if rid not in done_ids]
    if kept is not None:
        console.print(_resume_line(out, len(done_ids), len(todo), "volume"), highlight=False)
    if markups is not None:
        markups.mkdir(parents=True, exist_ok=True)
    table = RowsSoFar(lambda rows: save_volume_rows(out, rows),
                      kept.rows if kept is not None else None)
    done = 0
    for path, rid in todo:
        try:
            result = detector.predict(path, domain)
        except (Fault, OSError) as err:
            failures.append((str(path), str(err)))
            continue
        if markups is not None:  # an absent landmark is an undefined control point
            shown = result.world if result.present is None else \
                np.where(result.present[:, None], result.world, np.nan)
            write_markups(markups / f"{rid}.mrk.json", list(result.names), shown)
        table.add(volume_rows(rid, result.names, result.voxels, result.world,
                              result.confidence, result.domain, result.present))
        done += 1
    table.save()
    if done:
        console.print(f"wrote {plural(done, 'volume')} to {out}", highlight=False)
    if failures:
        err_console.print(f"[red]{len(failures)} of {total} "
                          f"input(s) could not be predicted[/red]" +
                          ("" if table.rows else f"; nothing written to {out}"),
                          highlight=False)
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
    from ..inference.inputs import image_paths

    return image_paths(list(inputs) + _listed(lists))


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
                                    "name: head-mean (mean of the two ISBI annotators, the "
                                    "default) or head (the senior annotator, for the "
                                    "challenge's protocol)."),
    model: Path = typer.Option(None, "--model", help="An exported ONNX graph (model.onnx, see "
                                                     "`export`; an image or a volume model), "
                                                     "run by onnxruntime instead of "
                                                     "PyTorch."),
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
    spacing_file: Path = typer.Option(
        None, "--spacing-file",
        help="A CSV giving each image its own spacing: image,spacing or "
             "image,spacing_x,spacing_y (image: a file name, a path or a stem); it wins "
             "over the image's header and --spacing."),
    keep_going: bool = typer.Option(
        False, "--keep-going",
        help="Exit 0 even when images are out of scope for the model (QC fail: another "
             "anatomy or view); their rows are written either way."),
    overlay_full: bool = typer.Option(
        False, "--overlay-full-resolution",
        help="Draw the overlays at each image's own pixel size (default: about 660 "
             "pixels wide)."),
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue an interrupted batch: keep the images already in --out and predict "
             "only the others (give the same inputs). Without it an existing --out is "
             "replaced."),
) -> None:
    """Predict landmarks on new images (no ground truth needed).

    Millimetres are written only where a spacing is known: from the image file (DICOM,
    MetaImage, NIfTI, NRRD), from --spacing, or from the model's training spacing with
    --assume-training-spacing; the CSV records the spacing used per image and its source.
    Unreadable files are listed at the end and give exit code 2; the CSV holds every image
    that was read. Images out of scope for the model (QC fail: another anatomy or view)
    are named in an error line and give exit code 2 too, unless --keep-going; the images
    to review are named with the landmarks to check. The CSV is written as the batch goes
    (whole images, atomically), so a killed batch keeps what it finished: --resume
    predicts the rest.
    """
    from dataclasses import replace

    from ..core.limits import checked_spacing
    from ..core.naming import unique_image_ids
    from ..core.preflight import (
        check_device,
        check_onnx_device,
        check_writable_dir,
        check_writable_file,
    )
    from ..evaluation.report import draw_overlay
    from ..inference.results import result_rows
    from .progress import image_progress

    sp = checked_spacing(spacing, "--spacing")
    if sp is not None and assume_training_spacing:
        raise InputError("give --spacing or --assume-training-spacing, not both")
    if model is not None and checkpoint is not None:
        raise InputError("give --checkpoint (PyTorch) or --model (ONNX), not both")
    device = check_device(device) if model is None else check_onnx_device(device)
    check_writable_file(out, "--out")
    if overlay:
        check_writable_dir(overlay, "--overlay")
    if not inputs and not image_list:
        raise InputError("give image files, folders or --list FILE")
    onnx_detector = None
    if model is None:
        from ..checkpoints.builtin import model_path
        from ..checkpoints.checkpoint import load_checkpoint
        from ..inference.volume_detector import VolumeDetector, is_volume_model

        state = load_checkpoint(model_path(checkpoint))
        if is_volume_model(state):
            predict_volumes(lambda: VolumeDetector.from_checkpoint_state(state, device),
                            list(inputs or []) + _listed(image_list), domain, out,
                            markups, model_words(None, checkpoint), presence_threshold,
                            resume)
            return
    else:
        from ..export.loading import open_onnx_model
        from ..export.volume_runner import OnnxVolumeDetector

        onnx_detector = open_onnx_model(model, device=device)
        if isinstance(onnx_detector, OnnxVolumeDetector):
            predict_volumes(lambda: onnx_detector, list(inputs or []) + _listed(image_list),
                            domain, out, markups, model_words(model, None),
                            presence_threshold, resume)
            return
    if markups is not None or presence_threshold is not None:
        raise InputError("--markups and --presence-threshold are for volume models")
    kept = earlier_rows(out, resume)
    paths, failures, skipped = collect_inputs(inputs or [], image_list)
    spacings = None
    if spacing_file is not None:
        from ..imageio.spacing_file import read_spacing_table, spacings_for

        spacings, unused = spacings_for(paths, read_spacing_table(spacing_file),
                                        spacing_file.parent)
        console.print(f"--spacing-file: {len(spacings)} of {plural(len(paths), 'image')} "
                      f"given a spacing by {spacing_file}", highlight=False)
        if unused:
            err_console.print(f"warning: --spacing-file {spacing_file}: {len(unused)} "
                              f"entr{'y' if len(unused) == 1 else 'ies'} matched no image "
                              f"({', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''})",
                              highlight=False, markup=False)
    total = len(paths) + len(failures)
    done_ids = {row["image"] for row in kept.rows} if kept is not None else set()
    todo = [(p, rid) for p, rid in zip(paths, unique_image_ids(paths), strict=True)
            if rid not in done_ids]
    detector: Predictor
    if onnx_detector is not None:
        detector = onnx_detector
    else:
        from ..inference.detector import Detector

        detector = Detector.from_checkpoint(checkpoint, device=device)
    err_console.print(f"model: {model_words(model, checkpoint)}", highlight=False)
    if kept is not None:
        _check_resumed_domain(out, kept, domain, detector.domains)
        console.print(_resume_line(out, len(done_ids), len(todo), "image"), highlight=False)
    table = RowsSoFar(lambda rows: save_rows(out, rows, kept.header if kept else (),
                                             kept.layout if kept else None),
                      kept.rows if kept is not None else None)
    ids = _id_queues(todo)
    results = []
    with image_progress(len(todo), err_console) as advance:
        for result in detector.iter_predict(
                [p for p, _ in todo], domain, spacing=sp, batch_size=batch_size,
                readers=readers, assume_training_spacing=assume_training_spacing,
                reduced_decode=not full_decode, spacings=spacings,
                on_failure=lambda f: (failures.append((f.item, f.reason)), advance())):
            queue = ids.get(os.path.abspath(result.image_path)) if result.image_path else None
            result = replace(result, id=queue.pop(0)) if queue else result
            results.append(result)
            table.add(result_rows([result]))  # the image's rows, whole
            advance()
    table.save()
    if skipped:
        console.print(f"skipped {skipped} file(s) in the folders that are not images",
                      highlight=False)
    if results:
        without = sum(r.spacing is None for r in results)
        note = (f" ({without} image(s) without a spacing: pixels only; see --spacing)"
                if without else "")
        console.print(f"wrote {plural(len(results), 'image')} x {len(results[0].names)} "
                      f"landmarks to {out}{note}", highlight=False)
        console.print(qc_summary(results), highlight=False)
        out_of_scope = print_verdicts(results, detector)
    else:
        out_of_scope = []
    if table.rows and measurements:
        from ..measure import default_output, measure_file, write_measurements
        from ..measure.report import summary_lines

        measured = measure_file(out, domain=results[0].domain if results else
                                (kept.rows[0].get("domain") or domain))
        write_measurements(default_output(out), measured)
        for line in summary_lines(measured, default_output(out)):
            console.print(line, highlight=False)
    if overlay and results:
        overlay.mkdir(parents=True, exist_ok=True)
        for r in results:
            draw_overlay(r.image_path, r.points, None, overlay / f"{r.id}.png",
                         title=f"{r.id} ({r.domain}): mean confidence "
                               f"{float(r.confidence.mean()):.2f}, QC {r.qc}",
                         names=r.names, confidence=r.confidence, flags=r.flags,
                         full_resolution=overlay_full)
        console.print(f"overlays: {overlay}")
    if failures:
        err_console.print(f"[red]{len(failures)} of {total} input(s) "
                          f"could not be predicted[/red]" +
                          ("" if table.rows else f"; nothing written to {out}"),
                          highlight=False)
        for item, reason in failures:
            err_console.print(f"  {item}: {reason}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INPUT)
    if out_of_scope and not keep_going:
        err_console.print(f"[red]{len(out_of_scope)} of {plural(len(results), 'image')} out "
                          "of scope for this model[/red] (their rows are in the CSV with qc "
                          "fail; --keep-going exits 0)", highlight=False)
        raise typer.Exit(EXIT_INPUT)


#: at most this many "check these landmarks" lines are printed (a batch gets a summary)
VERDICT_LINES = 20


def print_verdicts(results, detector) -> list:
    """Say what to do with each image (:mod:`..quality.verdict`): an error line per image
    out of scope; "check these N landmarks" per image for a small batch, else the
    landmarks flagged most often. Returns the results out of scope."""
    from collections import Counter

    from ..quality.verdict import habitual, verdict

    calibrations = getattr(detector, "calibrations", None) or {}
    meta = getattr(detector, "meta", None) or {}
    out_of_scope, reviews = [], []
    for r in results:
        cal = calibrations.get(r.domain) or meta.get("calibration")
        v = verdict(r, always=habitual(cal, len(r.names)))
        if v.out_of_scope:
            out_of_scope.append(r)
            err_console.print(f"error: {r.image_path or r.id}: {v.sentence}",
                              highlight=False, markup=False)
        elif v.qc == "review":
            reviews.append((r, v))
    if reviews and len(reviews) <= VERDICT_LINES:
        for r, v in reviews:
            console.print(f"{r.id}: {v.sentence}", highlight=False, markup=False)
    elif reviews:
        counts = Counter(n for _, v in reviews for n in v.to_check)
        common = ", ".join(f"{n} ({c})" for n, c in counts.most_common(5))
        console.print(f"{len(reviews)} images to review; the landmarks to check most often: "
                      f"{common} (the flag column names them per image)", highlight=False,
                      markup=False)
    return out_of_scope


def _check_resumed_domain(out: Path, kept, domain: str | None, known: dict) -> None:
    """A resumed CSV holds the same domain as this run predicts (one domain's rows are
    never appended to another's)."""
    run = domain or (next(iter(known)) if len(known) == 1 else None)
    there = sorted({row.get("domain", "") for row in kept.rows} - {""})
    if run is not None and there and there != [run]:
        raise InputError(f"--resume: {out} holds predictions of domain "
                         f"{', '.join(there)}, this run predicts {run}: give another --out, "
                         "or leave out --resume to replace it")


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
