"""One prediction table (predictions/table.py) for evaluate, measure and the review app:
a table saved by a spreadsheet (byte-order mark, UTF-16, semicolons, decimal commas) reads
the same everywhere and keeps its layout when the app rewrites it; the app writes the one
schema (with ``risk``); two processes saving into one review table lose no row."""

from __future__ import annotations

import codecs
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from unilandmark.measure.files import read_landmark_images
from unilandmark.predictions.table import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    PredictionError,
    TableFormat,
    prediction_rows,
    read_prediction_file,
    read_predictions,
    write_predictions,
)

NAMES = ("p1", "p2", "p3", "p4", "p5")
WRITE = {"X-Unilandmark": "1"}


class FixedModel:
    """A detector that puts the landmarks on a diagonal and counts how often it is asked."""

    domains = {"head": {"landmark_names": list(NAMES)}}
    model_name = "fixed"

    def __init__(self):
        self.calls = []

    def predict(self, image, domain=None, spacing=None):
        self.calls.append(Path(image).name)
        return SimpleNamespace(points=np.arange(10.0).reshape(5, 2),
                               confidence=np.full(5, 0.5), spacing=spacing,
                               orientation="original", flags=None, qc=None)


def _app_client(folder: Path, **options):
    pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")
    pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
    from fastapi.testclient import TestClient

    from unilandmark.serve import create_app

    options.setdefault("allowed_hosts", ("testserver",))
    model = FixedModel()
    return TestClient(create_app(folder, model, **options)), model


def _images(folder: Path, *stems: str) -> None:
    from PIL import Image

    folder.mkdir(exist_ok=True)
    for stem in stems:
        Image.fromarray(np.zeros((40, 50), dtype=np.uint8)).save(folder / f"{stem}.png")


EXCEL_ROWS = [  # the review table as Excel's "CSV UTF-8" saves it: BOM, CRLF
    "image,landmark,x,y,name,x_mm,y_mm,domain,orientation,spacing_x,spacing_y,file",
    "img_a,1,12.5,7.25,p1,1.25,0.725,head,original,0.1,0.1,img_a.png",
    "img_a,2,30,18.75,p2,3,1.875,head,original,0.1,0.1,img_a.png",
    "img_a,3,,,p3,,,head,original,0.1,0.1,img_a.png",
    "img_a,4,4.125,33,p4,0.4125,3.3,head,original,0.1,0.1,img_a.png",
    "img_a,5,49,0,p5,4.9,0,head,original,0.1,0.1,img_a.png",
    "img_b,1,1,2,p1,0.1,0.2,head,mirrored,0.1,0.1,img_b.png",
    "img_b,2,3,4,p2,0.3,0.4,head,mirrored,0.1,0.1,img_b.png",
    "img_b,3,5,6,p3,0.5,0.6,head,mirrored,0.1,0.1,img_b.png",
    "img_b,4,7,8,p4,0.7,0.8,head,mirrored,0.1,0.1,img_b.png",
    "img_b,5,9,10,p5,0.9,1,head,mirrored,0.1,0.1,img_b.png",
]


def test_a_table_with_a_byte_order_mark_opens_alike_in_the_app_evaluate_and_measure(
        tmp_path):
    folder = tmp_path / "review"
    _images(folder, "img_a", "img_b")
    table = folder / "landmarks_reviewed.csv"
    table.write_bytes(("\ufeff" + "\r\n".join(EXCEL_ROWS) + "\r\n").encode("utf-8"))
    client, model = _app_client(folder, save="csv")

    listing = {i["name"]: i["status"] for i in client.get("/api/images").json()["images"]}
    assert listing == {"img_a.png": "saved", "img_b.png": "saved"}
    predictions = read_predictions(table)  # evaluate's reader
    measured = {img.image: img for img in read_landmark_images(table)}  # measure's
    for stem in ("img_a", "img_b"):
        response = client.get(f"/api/images/{stem}.png/landmarks")
        assert response.status_code == 200, response.text
        state = response.json()
        assert state["source"] == "file" and state["status"] == "saved"
        for k, point in enumerate(state["points"], start=1):
            if point is None:
                assert (stem, k) in predictions.hidden and (stem, k) not in predictions.points
                assert np.isnan(measured[stem].points[k - 1]).all()
            else:
                assert tuple(point) == predictions.points[(stem, k)]
                assert tuple(measured[stem].points[k - 1]) == tuple(point)
        assert measured[stem].spacing == (0.1, 0.1)
    assert client.get("/api/images/img_b.png/landmarks").json()["mirrored"] is True
    assert predictions.hidden == {("img_a", 3)} and model.calls == []  # saved points

    # saving rewrites the table in Excel's layout and keeps the other image's rows
    points = client.get("/api/images/img_a.png/landmarks").json()["points"]
    points[0] = [20.0, 21.5]
    response = client.post("/api/images/img_a.png/save", json={"points": points},
                           headers=WRITE)
    assert response.status_code == 200, response.text
    data = table.read_bytes()
    assert data.startswith(codecs.BOM_UTF8) and data.count(b"\r\n") == len(EXCEL_ROWS)
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[0] == EXCEL_ROWS[0] and lines[1:6] == EXCEL_ROWS[6:]
    again = read_predictions(table)
    assert again.points[("img_a", 1)] == (20.0, 21.5)
    assert again.points[("img_b", 5)] == (9.0, 10.0) and again.hidden == {("img_a", 3)}


@pytest.mark.parametrize("layout", [
    TableFormat(),
    TableFormat(",", "utf-8-sig", "\r\n"),
    TableFormat(";", "utf-8", "\r\n", decimal_comma=True),
    TableFormat("\t", "utf-16-le", "\r\n", decimal_comma=True),
    TableFormat(";", "utf-16-be", "\n"),
], ids=["written", "excel-utf8", "semicolon-decimal-comma", "utf16-tab", "utf16be-semicolon"])
def test_the_app_rewrites_a_table_in_its_own_layout(tmp_path, layout):
    pytest.importorskip("filelock", reason="the review app needs the 'serve' extra")
    pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")
    from unilandmark.serve.saving import csv_rows, read_csv, write_csv

    table = tmp_path / "reviewed.csv"
    theirs = [{**r, "note": "checked"} for r in csv_rows(
        "b", "b.png", NAMES, np.arange(10.0).reshape(5, 2) + 0.5, (0.25, 0.5), "head")]
    write_predictions(table, theirs, header=(*COLUMNS[:5], "note"), layout=layout)
    assert read_prediction_file(table).layout == layout
    ours = np.array([[1.5, 2.25], [np.nan, np.nan], [3.0, 4.0], [5.5, 6.5], [7.0, 8.0]])
    write_csv(table, "a", csv_rows("a", "a.png", NAMES, ours, (0.25, 0.5), "head"))
    after = read_prediction_file(table)
    assert after.layout == layout
    assert after.header[-1] == "note" and [r["note"] for r in after.rows[:5]] == ["checked"] * 5
    np.testing.assert_array_equal(read_csv(table, "a", NAMES)[0], ours)
    np.testing.assert_array_equal(read_csv(table, "b", NAMES)[0],
                                  np.arange(10.0).reshape(5, 2) + 0.5)
    values = read_predictions(table)
    assert values.points[("a", 1)] == (1.5, 2.25) and ("a", 2) in values.hidden
    assert float(after.number(after.rows[5]["x_mm"])) == pytest.approx(1.5 * 0.25)


def test_the_app_writes_the_one_schema_with_risk_in_its_place(tmp_path):
    from unilandmark.predictions import table as schema

    folder = tmp_path / "review"
    _images(folder, "img_a", "img_b")
    client, _ = _app_client(folder, save="csv")
    from unilandmark.serve import saving

    assert saving.CSV_REQUIRED + saving.CSV_OPTIONAL == schema.COLUMNS
    assert "risk" in saving.CSV_OPTIONAL
    # a review table started from predict's output (risk, flag, qc): saving one image
    # keeps every column in the schema's order and the other image's quality cells
    table = folder / "landmarks_reviewed.csv"
    rows = prediction_rows(["img_b"], [np.arange(10.0).reshape(5, 2)], NAMES,
                           confidence=[np.full(5, 0.9)], domain="head",
                           risk=[np.full(5, 0.125)], flags=[np.zeros(5, bool)], qc=["pass"],
                           orientation=["original"], spacing=[None],
                           spacing_source=[None])
    write_predictions(table, rows)
    header = table.read_text().splitlines()[0]
    assert header == ("image,landmark,x,y,name,confidence,domain,risk,flag,qc,orientation,"
                      "spacing_x,spacing_y,spacing_source")
    points = [[1.0, 2.0], [3.0, 4.0], None, [5.0, 6.0], [7.0, 8.0]]
    response = client.post("/api/images/img_a.png/save", json={"points": points},
                           headers=WRITE)
    assert response.status_code == 200, response.text
    lines = table.read_text().splitlines()
    assert lines[0] == ("image,landmark,x,y,name,confidence,domain,risk,flag,qc,orientation,"
                        "spacing_x,spacing_y,spacing_source,file")
    assert lines[0].split(",") == [c for c in schema.COLUMNS if c in lines[0].split(",")]
    saved = read_predictions(table)
    assert saved.risk[("img_b", 1)] == 0.125 and saved.qc == {"img_b": "pass"}
    assert ("img_a", 1) not in saved.risk and ("img_a", 3) in saved.hidden


def test_every_optional_column_round_trips(tmp_path):
    points = np.array([[[12.5, 7.25], [30.0, 18.75]], [[1.0, 2.0], [3.5, 4.5]]],
                      dtype=np.float32)
    rows = prediction_rows(
        ["a", "b"], points, ("p1", "p2"), confidence=[[0.9, 0.25], [0.5, 0.75]],
        spacing=[(0.1, 0.2), None], domain="head", orientation=["original", "mirrored"],
        spacing_source=["file", None], flags=[[False, True], [True, False]],
        qc=["review", "fail"], files=["/scans/a.dcm", None],
        risk=[np.array([0.0625, 0.5]), np.array([1.0, 0.0])])
    path = tmp_path / "all.csv"
    write_predictions(path, rows)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert set(OPTIONAL_COLUMNS) <= set(rows[0])
    table = read_predictions(path)
    assert table.points == {("a", 1): (12.5, 7.25), ("a", 2): (30.0, 18.75),
                            ("b", 1): (1.0, 2.0), ("b", 2): (3.5, 4.5)}
    assert table.confidence == {("a", 1): 0.9, ("a", 2): 0.25, ("b", 1): 0.5, ("b", 2): 0.75}
    assert table.risk == {("a", 1): 0.0625, ("a", 2): 0.5, ("b", 1): 1.0, ("b", 2): 0.0}
    assert table.flags == {("a", 1): False, ("a", 2): True, ("b", 1): True, ("b", 2): False}
    assert table.qc == {"a": "review", "b": "fail"} and table.hidden == frozenset()
    text = [{c: str(v) for c, v in r.items()} for r in rows]
    assert table.source.rows == [{c: r.get(c, "") for c in COLUMNS} for r in text]
    assert table.source.rows[0]["x_mm"] == "1.25" and table.source.rows[2]["x_mm"] == ""
    # the same rows in a spreadsheet's layout read back the same
    excel = tmp_path / "excel.csv"
    write_predictions(excel, rows, layout=TableFormat(";", "utf-16-le", "\r\n", True))
    assert excel.read_bytes().startswith(codecs.BOM_UTF16_LE)
    again = read_predictions(excel)
    assert (again.points, again.confidence, again.risk, again.flags, again.qc) == (
        table.points, table.confidence, table.risk, table.flags, table.qc)
    assert again.source.rows[0]["x_mm"] == "1,25"
    images = {i.image: i for i in read_landmark_images(excel)}  # measure reads it too
    assert images["a"].spacing == pytest.approx((0.1, 0.2)) and images["b"].mirrored


def test_half_a_point_is_refused_with_its_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,landmark,x,y\na,1,1,2\na,2,,3\na,3,,\na,3,4,5\n")
    with pytest.raises(PredictionError) as info:
        read_predictions(path)
    text = str(info.value)
    assert "line 3: landmark 2: give both x and y, or neither" in text
    assert "line 5: landmark 3 given twice" in text


WORKER = """
import sys, time
from pathlib import Path
import numpy as np
from unilandmark.serve import saving
table, prefix, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
if sys.argv[5] == "unlocked":  # only to check that the test can fail without the lock
    import contextlib
    saving.table_lock = lambda path, timeout=None: contextlib.nullcontext()
names = [f"p{k}" for k in range(1, 6)]
while not go.exists():
    time.sleep(0.001)
for i in range(count):
    image = f"{prefix}{i:03d}"
    points = np.arange(10.0).reshape(5, 2) + i
    saving.write_csv(table, image, saving.csv_rows(image, image + ".png", names, points,
                                                   (0.1, 0.1), "head", "original"))
"""


def _save_concurrently(tmp_path: Path, count: int, mode: str = "locked") -> tuple[set, set]:
    """Two processes each save ``count`` images into one table at the same time: the
    images saved and the images in the final table."""
    table, go = tmp_path / "landmarks_reviewed.csv", tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(table), prefix, str(count),
                                 str(go), mode], stderr=subprocess.PIPE, text=True)
               for prefix in ("left_", "right_")]
    time.sleep(0.2)
    go.touch()  # both start saving together (each waits for this file after its imports)
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    saved = {f"{p}{i:03d}" for p in ("left_", "right_") for i in range(count)}
    return saved, {r["image"] for r in read_prediction_file(table).rows}


def test_two_processes_saving_into_one_table_lose_no_row(tmp_path):
    pytest.importorskip("filelock", reason="the review app needs the 'serve' extra")
    pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")
    saved, on_disk = _save_concurrently(tmp_path, 60)
    assert on_disk == saved, f"lost: {sorted(saved - on_disk)[:10]}"
    table = read_predictions(tmp_path / "landmarks_reviewed.csv")  # no row twice
    assert len(table.points) == len(saved) * 5
    assert (tmp_path / "landmarks_reviewed.csv.lock").exists()


def test_a_held_lock_is_a_clear_error_naming_the_lock_file(tmp_path, monkeypatch):
    filelock = pytest.importorskip("filelock", reason="the review app needs the 'serve' extra")
    folder = tmp_path / "review"
    _images(folder, "img_a", "img_b")
    table = folder / "landmarks_reviewed.csv"
    table.write_text("\n".join(EXCEL_ROWS) + "\n")
    client, _ = _app_client(folder, save="csv")
    from unilandmark.serve import saving

    monkeypatch.setattr(saving, "LOCK_TIMEOUT_S", 0.2)
    points = client.get("/api/images/img_a.png/landmarks").json()["points"]
    with filelock.FileLock(str(saving.lock_file(table))):  # another process's save
        response = client.post("/api/images/img_a.png/save", json={"points": points},
                               headers=WRITE)
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith(f"cannot write {table}: another process has held its lock file")
    assert f"({table}.lock)" in detail and "nothing was changed" in detail
    assert table.read_text() == "\n".join(EXCEL_ROWS) + "\n"
    response = client.post("/api/images/img_a.png/save", json={"points": points},
                           headers=WRITE)
    assert response.status_code == 200, response.text
