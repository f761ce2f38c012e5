"""Dataset adapters: each builds a :class:`DatasetSpec` from files already on disk.

``DATASETS`` maps a name to its builder; no builder downloads anything. Every builder
collects all faults of its dataset and raises one :class:`DatasetError` listing them.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
from collections import Counter
from pathlib import Path

import numpy as np

from ...core.errors import InputError, UnknownNameError
from ...core.limits import checked_spacing
from ...core.types import DatasetSpec, Record, error_unit
from ...imageio.read import ImageReadError, read_image_info
from ..annotations import parse_chest_txt, parse_isbi_txt, parse_labelme, parse_payer_hand_csv
from ..faults import FaultLog
from ..files import images_by_stem
from ..synthetic3d import synthetic_volumes_dataset
from .csv import csv_dataset
from .volumes import afids_templates, volume_csv_dataset

ISBI_LANDMARKS = (
    "sella", "nasion", "orbitale", "porion", "subspinale", "supramentale", "pogonion",
    "menton", "gnathion", "gonion", "lower incisal incision", "upper incisal incision",
    "upper lip", "lower lip", "subnasale", "soft tissue pogonion",
    "posterior nasal spine", "anterior nasal spine", "articulare",
)
ISBI_FOLDERS = {"train": "TrainingData", "test1": "Test1Data", "test2": "Test2Data"}
ISBI_ANNOTATORS = ("senior", "junior", "mean")
ISBI_SPACING = (0.1, 0.1)
#: errata of known copies of the release: images stored as the left-right mirror of the
#: image their annotations were made on, {id: sha256 of the stored file}. Test2 image 322
#: of the JPEG copy faces left while both annotators' points are those of the right-facing
#: image (nasion behind sella, incisors on the spine; see docs/datasets.md). The
#: fingerprint limits the correction to exactly that file: another copy (e.g. the
#: original BMP release, whose annotations fit) is left as it is.
ISBI_MIRRORED_COPIES = {
    "322": "f550e579cb0c30e67376f665178b46eda8494d23b9b41a3c2f04a9d97b985a3a",
}

HAND_LANDMARKS = 37
CHEST_LANDMARKS = ("right lung apex", "right costophrenic angle", "right hilum",
                   "left lung apex", "left costophrenic angle", "left hilum")
CHEST_EXCLUDED = ("0059", "0178", "0228", "0267", "0276", "0285", "0295", "0303", "0310")




def _sequential_split(ids: list[str], sizes: dict[str, int]) -> dict[str, tuple[str, ...]]:
    """Consecutive chunks of ``ids`` with the given sizes; the last name takes the rest."""
    out, start = {}, 0
    names = list(sizes)
    for i, name in enumerate(names):
        stop = len(ids) if i == len(names) - 1 else start + sizes[name]
        out[name] = tuple(ids[start:stop])
        start = stop
    return out


def _holdout(ids: list[str]) -> dict[str, tuple[str, ...]]:
    """Every third id (sorted) held out: a fixed split for small subsets of a dataset."""
    ids = _sort_ids(ids) if all(i.isdigit() for i in ids) else sorted(ids)
    test = ids[2::3]
    return {"holdout-train": tuple(i for i in ids if i not in test),
            "holdout-test": tuple(test)}


def _sort_ids(ids) -> list[str]:
    return sorted(ids, key=lambda s: (int(s), s) if s.isdigit() else (float("inf"), s))


def isbi2015(root: str | Path, annotator: str = "senior", errata: bool = True) -> DatasetSpec:
    """ISBI 2015 cephalograms in the original release layout.

    ``root`` holds ``RawImage/{TrainingData,Test1Data,Test2Data}`` (any image extension)
    and ``AnnotationsByMD/400_{senior,junior}``. ``annotator``: ``senior`` (the
    challenge's ground truth), ``junior``, or ``mean`` of both (GU2Net's). Splits:
    ``train`` (1-150), ``test1`` (151-300), ``test2`` (301-400) by folder, and
    ``gu2net-train`` (1-130), ``gu2net-val`` (131-150), ``gu2net-test`` (151-400).

    ``errata`` (default True): where an image file is a known mirrored copy
    (``ISBI_MIRRORED_COPIES``, matched by content), its annotations are mirrored
    (x -> W - 1 - x) to fit the stored image; ``info['errata']`` lists what was corrected.
    """
    root = Path(root)
    if annotator not in ISBI_ANNOTATORS:
        raise InputError(f"isbi2015: unknown annotator {annotator!r}; expected {ISBI_ANNOTATORS}")
    log = FaultLog("isbi2015")
    k = len(ISBI_LANDMARKS)
    records, splits, corrected = [], {}, []
    for split, folder in ISBI_FOLDERS.items():
        images = images_by_stem(root / "RawImage" / folder)
        if not images:
            log.add(root / "RawImage" / folder, "", "no image files found")
        splits[split] = tuple(_sort_ids(images))
        for rid in splits[split]:
            wanted = ("senior", "junior") if annotator == "mean" else (annotator,)
            parsed = []
            for who in wanted:
                txt = root / "AnnotationsByMD" / f"400_{who}" / f"{rid}.txt"
                if not txt.is_file():
                    log.add(txt, rid, "annotation file missing")
                    continue
                parsed.append(parse_isbi_txt(txt, k, log, rid))
            if len(parsed) != len(wanted) or any(p is None for p in parsed):
                continue
            points = np.mean(parsed, axis=0)
            meta = {}
            if errata and _is_mirrored_copy(rid, images[rid]):
                (width, _), _ = read_image_info(images[rid])
                points = np.stack([(width - 1) - points[:, 0], points[:, 1]], -1)
                meta.update(annotation_mirrored=True, orientation="mirrored")
                corrected.append(f"{rid}: the stored image is the mirror of the annotated one; "
                                 "annotations mirrored to fit it")
            records.append(Record(id=rid, image_path=str(images[rid]), points=points,
                                  visible=np.ones(k, dtype=bool), spacing=ISBI_SPACING,
                                  meta=meta))
    log.raise_if_any()
    ids = _sort_ids([r.id for r in records])
    number = {i: int(i) for i in ids if i.isdigit()}
    splits["gu2net-train"] = tuple(i for i in ids if number.get(i, 0) and number[i] <= 130)
    splits["gu2net-val"] = tuple(i for i in ids if 131 <= number.get(i, 0) <= 150)
    splits["gu2net-test"] = tuple(i for i in ids if number.get(i, 0) >= 151)
    splits["all"] = tuple(ids)
    return DatasetSpec(name="isbi2015", domain="head", landmark_names=ISBI_LANDMARKS,
                       records=tuple(records), splits=splits, unit="mm",
                       thresholds=(2.0, 2.5, 3.0, 4.0),
                       info={"annotator": annotator, "errata": corrected})


def _is_mirrored_copy(rid: str, path: Path) -> bool:
    expected = ISBI_MIRRORED_COPIES.get(rid)
    if expected is None:
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == expected


def dha_hand(root: str | Path, labels: str | Path | None = None,
             images: str | Path | None = None,
             wrist_pair: tuple[int, int] = (1, 5)) -> DatasetSpec:
    """Digital Hand Atlas with Payer et al.'s labels (``all.csv``: id, then 37 x,y pairs).

    ``root`` holds ``all.csv`` and ``images/`` unless ``labels``/``images`` say otherwise;
    image files are found by id as file stem, any extension. Ids labelled but without an
    image are counted in ``info['labelled_without_image']``, not fatal. Spacing comes
    from the image header where it has one. ``wrist_pair`` (1-based landmark numbers) is
    used by the wrist-width protocols: mm = px * 50 / |p_a - p_b|. Splits: ``all``,
    GU2Net's (ids of ``all.csv`` sorted: 550 train, 59 val, rest test), each restricted
    to the ids with an image, and ``holdout-train``/``holdout-test`` (every third id with
    an image held out: for small subsets such as the 9 images in ../shared/data).
    """
    root = Path(root)
    labels = Path(labels) if labels else root / "all.csv"
    images_dir = Path(images) if images else root / "images"
    log = FaultLog("dha_hand")
    a, b = (int(v) for v in wrist_pair)
    if not (1 <= a <= HAND_LANDMARKS and 1 <= b <= HAND_LANDMARKS and a != b):
        raise InputError(f"dha_hand: wrist_pair must be two different landmarks in "
                         f"1..{HAND_LANDMARKS}, got {wrist_pair}")
    if not labels.is_file():
        log.add(labels, "", "label table missing")
        log.raise_if_any()
    table = parse_payer_hand_csv(labels, HAND_LANDMARKS, log)
    files = images_by_stem(images_dir)
    if not files:
        log.add(images_dir, "", "no image files found")
    records = []
    for rid in _sort_ids(table):
        if rid not in files:
            continue
        try:
            _, spacing = read_image_info(files[rid], bad_spacing="raise")
        except ImageReadError as err:
            log.add(files[rid], rid, str(err).split(": ", 1)[-1])
            continue
        records.append(Record(id=rid, image_path=str(files[rid]), points=table[rid],
                              visible=np.ones(HAND_LANDMARKS, dtype=bool), spacing=spacing))
    log.raise_if_any()
    have = {r.id for r in records}
    all_ids = _sort_ids(table)
    gu2 = _sequential_split(all_ids, {"gu2net-train": 550, "gu2net-val": 59, "gu2net-test": 0})
    splits = {name: tuple(i for i in ids if i in have) for name, ids in gu2.items()}
    splits["all"] = tuple(r.id for r in records)
    splits.update(_holdout(list(splits["all"])))
    info = {"labelled": len(table), "with_image": len(records),
            "labelled_without_image": len(table) - len(records),
            "images_without_label": len(set(files) - set(table)),
            "wrist_pair": (a, b)}
    names = tuple(str(i + 1) for i in range(HAND_LANDMARKS))
    unit = error_unit(records)
    return DatasetSpec(name="dha_hand", domain="hand", landmark_names=names,
                       records=tuple(records), splits=splits, unit=unit,
                       thresholds=(2.0, 4.0, 10.0), info=info)


def shenzhen_chest(root: str | Path, exclude: tuple[str, ...] = CHEST_EXCLUDED) -> DatasetSpec:
    """Shenzhen chest X-rays with GU2Net's labels (``labels/*.txt``, fractions of W, H).

    A fraction f maps to pixel ``f * W - 0.5`` (continuous coordinates to the pixel-centre
    convention). GU2Net's split: the ids minus ``exclude`` (numbers), sorted, 195 train,
    34 val, rest test; each restricted to the ids with an image; ``holdout-train`` /
    ``holdout-test`` hold out every third id with an image. No spacing: pixels.
    """
    root = Path(root)
    log = FaultLog("shenzhen_chest")
    label_files = {p.stem: p for p in sorted((root / "labels").glob("*.txt"))}
    if not label_files:
        log.add(root / "labels", "", "no label files found")
    files = images_by_stem(root / "images")
    if not files:
        log.add(root / "images", "", "no image files found")
    k = len(CHEST_LANDMARKS)
    excluded = set(exclude)

    def number(rid: str) -> str:
        parts = rid.split("_")
        return parts[1] if len(parts) > 1 else rid

    kept = sorted(r for r in label_files if number(r) not in excluded)
    records = []
    for rid in kept:
        if rid not in files:
            continue
        fractions = parse_chest_txt(label_files[rid], k, log, rid)
        try:
            (w, h), _ = read_image_info(files[rid], bad_spacing="raise")
        except ImageReadError as err:
            log.add(files[rid], rid, str(err).split(": ", 1)[-1])
            continue
        if fractions is None:
            continue
        points = fractions * np.array([w, h], dtype=np.float64) - 0.5
        records.append(Record(id=rid, image_path=str(files[rid]), points=points,
                              visible=np.ones(k, dtype=bool), spacing=None,
                              meta={"size": (w, h)}))
    log.raise_if_any()
    have = {r.id for r in records}
    gu2 = _sequential_split(kept, {"gu2net-train": 195, "gu2net-val": 34, "gu2net-test": 0})
    splits = {name: tuple(i for i in ids if i in have) for name, ids in gu2.items()}
    splits["all"] = tuple(r.id for r in records)
    splits.update(_holdout(list(splits["all"])))
    info = {"labelled": len(label_files), "excluded": len(set(label_files) - set(kept)),
            "with_image": len(records), "labelled_without_image": len(kept) - len(records)}
    return DatasetSpec(name="shenzhen_chest", domain="chest", landmark_names=CHEST_LANDMARKS,
                       records=tuple(records), splits=splits, unit="px",
                       thresholds=(3.0, 6.0, 9.0), info=info)


def labelme_dataset(root: str | Path, landmarks: list[str] | str | None = None,
                    spacing: float | None = None, name: str = "labelme",
                    domain: str = "labelme") -> DatasetSpec:
    """A folder of labelme JSON files with point shapes; images found through imagePath.

    Landmark names come from ``landmarks`` (a list, or one comma-separated string) or,
    when None, the sorted union of labels over all files; then a label seen in fewer than
    half of the files is a fault (likely a typo, e.g. ``C`` for ``c``): give
    ``landmarks`` to accept it. A landmark missing from a file is not visible; which
    files lack which label, and each label's count, go to ``info``. A label given twice
    in one file, or a label not in ``landmarks``, is a fault. ``imagePath`` may use
    either slash. Spacing: the image header's, else ``spacing`` (mm per pixel, both
    axes), else None.
    """
    root = Path(root)
    fixed = checked_spacing(spacing, f"{name}: option spacing")
    if isinstance(landmarks, str):
        landmarks = [n.strip() for n in landmarks.split(",") if n.strip()]
    log = FaultLog(name)
    if not root.is_dir():
        log.add(root, "", "no such folder")
        log.raise_if_any()
    files = sorted(root.glob("*.json"))
    if not files:
        log.add(root, "", "no labelme JSON files found")
        log.raise_if_any()
    parsed = {}
    for f in files:
        result = parse_labelme(f, log)
        if result is not None:
            parsed[f] = result
    counts = Counter(label for pts, _ in parsed.values() for label in pts)
    names = list(landmarks) if landmarks else sorted(counts)
    if not names:
        log.add(root, "", "no point shapes in any file")
    if not landmarks:
        _rare_labels(parsed, counts, log)
    index = {n: i for i, n in enumerate(names)}
    records = []
    for f, (pts, image_path) in parsed.items():
        rid = f.stem
        unknown = sorted(set(pts) - set(index))
        if unknown:
            log.add(f, rid, f"labels not in the landmark list: {unknown}")
            continue
        image = (f.parent / image_path).resolve()
        if not image.is_file():
            log.add(f, rid, f"imagePath {image_path!r} does not exist")
            continue
        try:
            _, header_spacing = read_image_info(image, bad_spacing="raise")
        except ImageReadError as err:
            log.add(image, rid, str(err).split(": ", 1)[-1])
            continue
        points = np.full((len(names), 2), np.nan)
        for label, xy in pts.items():
            points[index[label]] = xy
        records.append(Record(id=rid, image_path=str(image), points=points,
                              visible=~np.isnan(points[:, 0]), spacing=header_spacing or fixed))
    log.raise_if_any()
    unit = error_unit(records)
    lacking = {n: [f.name for f, (pts, _) in parsed.items() if n not in pts] for n in names}
    info = {"files": len(files),
            "label_counts": {n: counts.get(n, 0) for n in names},
            "files_lacking_a_label": {n: _listed(v) for n, v in lacking.items() if v}}
    return DatasetSpec(name=name, domain=domain, landmark_names=tuple(names),
                       records=tuple(records), splits={"all": tuple(r.id for r in records)},
                       unit=unit, thresholds=(2.0, 4.0, 10.0) if unit == "mm" else (3.0, 6.0, 9.0),
                       info=info)


def _rare_labels(parsed: dict, counts: Counter, log: FaultLog) -> None:
    """A label seen in only a few files is a fault naming the files, and the label it
    probably should be (same letters in another case, or the closest common label).

    Rare: in fewer than a quarter of the files, or in fewer than half with a common label
    that looks like it (``C`` beside ``c``, ``sela`` beside ``sella``).
    """
    n = len(parsed)
    common = [label for label, c in counts.items() if 2 * c >= n]
    for label, c in sorted(counts.items()):
        if 2 * c >= n:
            continue
        guess = [m for m in common if m.lower() == label.lower()] or \
            difflib.get_close_matches(label, common, n=1, cutoff=0.75)
        if not (guess or 4 * c < n):
            continue
        hint = f"; likely a typo of {guess[0]!r}" if guess else ""
        for f in (f for f, (pts, _) in parsed.items() if label in pts):
            log.add(f, f.stem, f"label {label!r} appears in only {c} of {n} files{hint} "
                               "(to accept it, give the landmark list: --opt "
                               "landmarks=a,b,...)")


def _listed(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def synthetic_dataset(root: str | Path, domain: str = "head") -> DatasetSpec:
    """Phantoms written by ``unilandmark datasets make-synthetic --out ROOT``.

    Reads ``ROOT/DOMAIN/landmarks.csv`` through the ``csv`` adapter.
    """
    table = Path(root) / domain / "landmarks.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: no synthetic domain {domain!r} here; write one with "
                                f"`unilandmark datasets make-synthetic --out {root}`")
    return csv_dataset(table, name=f"synthetic-{domain}", domain=domain)


DATASETS = {
    "isbi2015": isbi2015,
    "dha_hand": dha_hand,
    "shenzhen_chest": shenzhen_chest,
    "csv": csv_dataset,
    "labelme": labelme_dataset,
    "synthetic": synthetic_dataset,
    # volumes (points (K, 3) in voxel indices; docs/volumes.md)
    "afids": afids_templates,
    "volume-csv": volume_csv_dataset,
    "synthetic-volumes": synthetic_volumes_dataset,
}


def build_dataset(name: str, root: str | Path, **options) -> DatasetSpec:
    """Build the dataset ``name`` from ``root`` with adapter-specific ``options``.

    An unknown adapter or a misspelt option is a KeyError naming the valid ones.
    """
    if name not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    builder = DATASETS[name]
    valid = adapter_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UnknownNameError(f"{name}: unknown option(s) {', '.join(unknown)}; valid options: "
                       f"{', '.join(valid) or '(none)'}")
    return builder(root, **options)


def adapter_options(name: str) -> list[str]:
    """The option names adapter ``name`` accepts (``--opt key=value`` / config options)."""
    params = list(inspect.signature(DATASETS[name]).parameters.values())[1:]
    return [p.name for p in params]
