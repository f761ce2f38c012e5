"""The review app's API (FastAPI's test client): list, image, predict, edit, save, bad files,
uploads and path traversal; the saved files read back through the dataset adapters."""

from __future__ import annotations

import io
import json
import os
import re
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from unilandmark import csv_dataset, labelme_dataset, read_image
from unilandmark.imageio.read import write_image
from unilandmark.inference.detector import Detector
from unilandmark.serve import create_app
from unilandmark.serve.display import display_image, display_to_original, original_to_display
from unilandmark.serve.state import pick_domain

WRITE = {"X-Unilandmark": "1"}


class CountingDetector:
    """The built-in detector, counting how often the model is asked."""

    def __init__(self, detector):
        self._detector = detector
        self.domains = detector.domains
        self.model_name = detector.model_name
        self.calls = []

    def predict(self, image, domain=None, spacing=None):
        self.calls.append(os.path.basename(str(image)))
        return self._detector.predict(image, domain, spacing=spacing)


@pytest.fixture(scope="module")
def builtin():
    return Detector.from_checkpoint(None)


@pytest.fixture
def detector(builtin):
    return CountingDetector(builtin)


@pytest.fixture
def folder(phantoms, tmp_path):
    """Three head phantoms (64 x 64 PNG) in a folder of their own."""
    out = tmp_path / "review"
    out.mkdir()
    for i in range(3):
        shutil.copy(phantoms / "head" / "images" / f"head_000{i}.png", out)
    return out


def make_client(folder, detector, **options):
    options.setdefault("allowed_hosts", ("testserver",))
    return TestClient(create_app(folder, detector, **options))


def moved(points, k, dx, dy):
    out = [list(p) if p is not None else None for p in points]
    out[k] = [out[k][0] + dx, out[k][1] + dy]
    return out


def test_lists_only_the_folders_images(folder, detector, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(folder / "head_0000.png", outside)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes((folder / "head_0000.png").read_bytes())
    (folder / "sub").mkdir()
    shutil.copy(folder / "head_0000.png", folder / "sub" / "deep.png")
    os.symlink(outside, folder / "escape.png")
    os.symlink(folder / "head_0001.png", folder / "alias.png")
    client = make_client(folder, detector)
    names = [i["name"] for i in client.get("/api/images").json()["images"]]
    assert names == ["alias.png", "head_0000.png", "head_0001.png", "head_0002.png"]
    assert {i["status"] for i in client.get("/api/images").json()["images"]} == {"new"}
    info = client.get("/api/info").json()
    assert info["domain"] == "head" and len(info["names"]) == 19
    assert detector.calls == []  # listing never runs the model


@pytest.mark.parametrize("url", [
    "/api/images/..%2F..%2Fetc%2Fpasswd",
    "/api/images/..%2Fescape.png/landmarks",
    "/api/images/%2E%2E/display",
    "/api/images/..",
    "/api/images/escape.png",
    "/api/images/escape.png/display",
    "/api/images/escape.png/landmarks",
    "/api/images/.hidden.png/display",
    "/api/images/notes.txt/display",
    "/api/images/%2Fetc%2Fpasswd/display",
    "/static/../app.py",
    "/static/..%2F..%2Fapp.py",
    "/static/%2e%2e/%2e%2e/app.py",
])
def test_path_traversal_is_refused(folder, detector, tmp_path, url):
    outside = tmp_path / "outside.png"
    shutil.copy(folder / "head_0000.png", outside)
    os.symlink(outside, folder / "escape.png")
    (folder / "notes.txt").write_text("secret")
    (folder / ".hidden.png").write_bytes(b"secret")
    client = make_client(folder, detector)
    response = client.get(url)
    assert response.status_code == 404, (url, response.status_code)
    assert b"secret" not in response.content and b"PNG" not in response.content[:8]
    save = client.post(url.split("/display")[0].split("/landmarks")[0] + "/save",
                       json={"points": [None] * 19}, headers=WRITE)
    assert save.status_code in (404, 405)
    assert detector.calls == []
    assert sorted(p.name for p in folder.iterdir()) == [
        ".hidden.png", "escape.png", "head_0000.png", "head_0001.png", "head_0002.png",
        "notes.txt"]


def test_display_image_covers_the_original(folder, detector, tmp_path):
    client = make_client(folder, detector)
    meta = client.get("/api/images/head_0001.png").json()
    assert meta["size"] == [64, 64] and meta["display_size"] == [64, 64]
    response = client.get("/api/images/head_0001.png/display")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (64, 64)
    # a large 16-bit image is windowed and downsampled, and the mapping covers it exactly
    wide = np.tile(np.linspace(0, 4000, 3000, dtype=np.uint16), (300, 1))
    write_image(tmp_path / "wide.mha", wide, spacing=(0.5, 0.5))
    shown = display_image(tmp_path / "wide.mha", max_side=1000)
    assert shown.original_size == (3000, 300) and shown.display_size == (1000, 100)
    decoded = np.asarray(Image.open(io.BytesIO(shown.data)))
    assert decoded.shape == (100, 1000) and decoded[:, :5].mean() < 10
    assert decoded[:, -5:].mean() > 245
    edges = np.array([[-0.5, -0.5], [999.5, 99.5], [499.5, 49.5]])
    np.testing.assert_allclose(display_to_original(edges, (3000, 300), (1000, 100)),
                               [[-0.5, -0.5], [2999.5, 299.5], [1499.5, 149.5]])
    pts = np.array([[12.25, 7.5], [2999.0, 0.0]])
    np.testing.assert_allclose(
        display_to_original(original_to_display(pts, (3000, 300), (1000, 100)),
                            (3000, 300), (1000, 100)), pts, atol=1e-9)


def test_predicts_once_and_edits_make_it_reviewed(folder, detector, builtin):
    client = make_client(folder, detector)
    state = client.get("/api/images/head_0000.png/landmarks").json()
    expected = builtin.predict(folder / "head_0000.png")
    assert state["status"] == "predicted" and state["source"] == "model"
    np.testing.assert_allclose(state["points"], expected.points, atol=1e-9)
    np.testing.assert_allclose(state["confidence"], expected.confidence, atol=1e-6)
    assert state["human"] == [False] * 19 and state["size"] == [64, 64]
    # uncalibrated quality: the hard rules' flags and the QC they give (docs/quality.md)
    assert state["flags"] == expected.flags.tolist() and state["qc"] == expected.qc
    client.get("/api/images/head_0000.png/landmarks")
    client.get("/api/images/head_0000.png/prediction")
    assert detector.calls == ["head_0000.png"]  # cached: the model ran once
    points = moved(state["points"], 2, 3.0, -2.0)
    points[5] = None
    edited = client.put("/api/images/head_0000.png/landmarks", json={"points": points},
                        headers=WRITE).json()
    assert edited["status"] == "reviewed"
    assert [i for i, h in enumerate(edited["human"]) if h] == [2, 5]
    assert edited["points"][5] is None
    listing = {i["name"]: i["status"] for i in client.get("/api/images").json()["images"]}
    assert listing == {"head_0000.png": "reviewed", "head_0001.png": "new",
                       "head_0002.png": "new"}


@pytest.mark.parametrize("points, message", [
    ([[1.0, 1.0]] * 18, "expected 19 points"),
    ([[1.0, 1.0]] * 18 + [[130.0, 1.0]], "landmark 19: (130.0, 1.0) lies far outside the 64x64"),
    ([[1.0, 1.0]] * 18 + [[1.0, -64.5]], "far outside"),
    ([[1.0, 1.0]] * 18 + [[1.0]], "landmark 19"),
])
def test_bad_points_are_refused_with_a_reason(folder, detector, points, message):
    client = make_client(folder, detector)
    response = client.put("/api/images/head_0000.png/landmarks", json={"points": points},
                          headers=WRITE)
    assert response.status_code == 422
    assert message in json.dumps(response.json()["detail"])
    assert client.get("/api/images/head_0000.png/landmarks").json()["status"] == "predicted"


def test_changes_need_the_app_header_and_a_local_host(folder, detector):
    client = make_client(folder, detector)
    points = client.get("/api/images/head_0000.png/landmarks").json()["points"]
    response = client.post("/api/images/head_0000.png/save", json={"points": points})
    assert response.status_code == 403 and "x-unilandmark" in response.json()["detail"]
    assert not (folder / "head_0000.json").exists()
    elsewhere = client.get("/api/images", headers={"Host": "evil.example:8000"})
    assert elsewhere.status_code == 400
    page = client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_save_reads_back_through_the_csv_and_labelme_adapters(folder, detector):
    client = make_client(folder, detector)
    names = client.get("/api/info").json()["names"]
    saved = {}
    for name, k in (("head_0000.png", 0), ("head_0002.png", 4)):
        state = client.get(f"/api/images/{name}/landmarks").json()
        points = moved(state["points"], k, 2.5, -1.25)
        points[7] = None  # not visible
        response = client.post(f"/api/images/{name}/save", json={"points": points},
                               headers=WRITE)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "saved"
        assert sorted(os.path.basename(f) for f in body["files"]) == [
            name.replace(".png", ".json"), "landmarks_reviewed.csv"]
        saved[name.replace(".png", "")] = np.array(
            [p if p is not None else [np.nan, np.nan] for p in points], dtype=float)

    table = csv_dataset(folder / "landmarks_reviewed.csv", images=folder, spacing=0.8)
    assert table.landmark_names == tuple(names)
    assert sorted(r.id for r in table.records) == ["head_0000", "head_0002"]
    labelme = labelme_dataset(folder, landmarks=names)
    assert sorted(r.id for r in labelme.records) == ["head_0000", "head_0002"]
    for spec in (table, labelme):
        for record in spec.records:
            np.testing.assert_allclose(record.points, saved[record.id], atol=1e-9)
            assert not record.visible[7] and record.visible.sum() == 18
            assert os.path.basename(record.image_path) == f"{record.id}.png"
    listing = {i["name"]: i["status"] for i in client.get("/api/images").json()["images"]}
    assert listing == {"head_0000.png": "saved", "head_0001.png": "new",
                       "head_0002.png": "saved"}


def test_human_points_survive_a_restart_and_predictions(folder, detector):
    client = make_client(folder, detector, save="csv")
    state = client.get("/api/images/head_0001.png/landmarks").json()
    points = moved(state["points"], 1, -4.0, 4.0)
    client.post("/api/images/head_0001.png/save", json={"points": points}, headers=WRITE)
    assert not (folder / "head_0001.json").exists()  # csv only
    detector.calls.clear()

    again = make_client(folder, detector, save="csv")  # a new session on the same folder
    assert {i["name"]: i["status"] for i in again.get("/api/images").json()["images"]}[
        "head_0001.png"] == "saved"
    state = again.get("/api/images/head_0001.png/landmarks").json()
    assert state["status"] == "saved" and state["source"] == "file"
    np.testing.assert_allclose(state["points"], points, atol=1e-9)
    assert detector.calls == []  # human points: the model was not asked
    with_model = again.get("/api/images/head_0001.png/prediction").json()
    assert with_model["predicted"] is not None and detector.calls == ["head_0001.png"]
    np.testing.assert_allclose(with_model["points"], points, atol=1e-9)  # not replaced
    assert again.get("/api/images/head_0001.png/landmarks").json()["status"] == "saved"


def test_saving_one_image_keeps_the_others_rows_and_foreign_labelme_shapes(folder, detector):
    (folder / "head_0002.json").write_text(json.dumps({
        "version": "5.2.1", "flags": {}, "imagePath": "head_0002.png", "imageData": None,
        "shapes": [{"label": "tumour", "points": [[1, 1], [5, 1], [5, 5]],
                    "shape_type": "polygon"},
                   {"label": "ruler", "points": [[3, 3]], "shape_type": "point"}]}))
    client = make_client(folder, detector)
    assert client.get("/api/images/head_0002.png/landmarks").json()["status"] == "predicted"
    p0 = client.get("/api/images/head_0000.png/landmarks").json()["points"]
    client.post("/api/images/head_0000.png/save", json={"points": p0}, headers=WRITE)
    p2 = client.get("/api/images/head_0002.png/landmarks").json()["points"]
    client.post("/api/images/head_0002.png/save", json={"points": p2}, headers=WRITE)
    p0b = moved(p0, 0, 1.0, 1.0)
    client.post("/api/images/head_0000.png/save", json={"points": p0b}, headers=WRITE)
    rows = (folder / "landmarks_reviewed.csv").read_text().splitlines()
    assert rows[0].startswith("image,landmark,x,y,name")
    assert sum(r.startswith("head_0000,") for r in rows) == 19
    assert sum(r.startswith("head_0002,") for r in rows) == 19
    labels = [s["label"] for s in json.loads((folder / "head_0002.json").read_text())["shapes"]]
    assert "tumour" in labels and "ruler" in labels and len(labels) == 21


def test_a_broken_image_gets_a_clear_message_and_the_server_keeps_going(folder, detector):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    client = make_client(folder, detector)
    for url in ("/api/images/broken.png/landmarks", "/api/images/broken.png/display",
                "/api/images/broken.png"):
        response = client.get(url)
        assert response.status_code == 422, url
        assert "broken.png" in response.json()["detail"]
    assert client.get("/api/images/head_0000.png/landmarks").status_code == 200


def test_uploads(folder, detector, phantoms):
    client = make_client(folder, detector, max_upload_bytes=50_000)
    png = (phantoms / "head" / "images" / "head_0005.png").read_bytes()
    first = client.post("/api/upload?filename=new.png", content=png, headers=WRITE)
    assert first.status_code == 200 and first.json() == {"name": "new.png"}
    second = client.post("/api/upload?filename=..%2F..%2Fnew.png", content=png, headers=WRITE)
    assert second.json() == {"name": "new-1.png"}  # never replaces, never leaves the folder
    assert (folder / "new-1.png").read_bytes() == png
    array, _ = read_image(folder / "new.png")
    assert array.shape == (64, 64)
    assert "new.png" in [i["name"] for i in client.get("/api/images").json()["images"]]

    text = client.post("/api/upload?filename=notes.txt", content=b"hello", headers=WRITE)
    assert text.status_code == 415 and "notes.txt: not an image" in text.json()["detail"]
    fake = client.post("/api/upload?filename=fake.png", content=b"hello", headers=WRITE)
    assert fake.status_code == 415 and "fake.png: not a readable image" in fake.json()["detail"]
    big = client.post("/api/upload?filename=big.png", content=b"\0" * 60_000, headers=WRITE)
    assert big.status_code == 413 and "upload limit" in big.json()["detail"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "head_0000.png", "head_0001.png", "head_0002.png", "new-1.png", "new.png"]
    assert client.get("/api/images/new.png/landmarks").status_code == 200


def test_page_is_self_contained(folder, detector):
    client = make_client(folder, detector)
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in html
        assert client.get(asset).status_code == 200
    for url in ("/", "/static/app.js", "/static/style.css"):
        text = client.get(url).text
        external = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
        assert set(external) <= {"http://www.w3.org/2000/svg"}, (url, external)


def test_domain_choice_is_checked():
    domains = {"head": {}, "hand": {}}
    assert pick_domain({"head": {}}, None) == "head"
    assert pick_domain(domains, "hand") == "hand"
    with pytest.raises(ValueError, match="several domains"):
        pick_domain(domains, None)
    with pytest.raises(ValueError, match="unknown domain 'knee'"):
        pick_domain(domains, "knee")


def test_cli_binds_loopback_by_default(folder, monkeypatch):
    from unilandmark.cli import app
    from unilandmark.serve import server

    seen = {}

    def fake_run(application, host, port):
        seen.update(host=host, port=port, app=application)

    monkeypatch.setattr(server, "run_server", fake_run)
    monkeypatch.setattr("unilandmark.serve.run_server", fake_run)
    import socket

    with socket.socket() as probe:  # a port free now (the CLI checks it before serving)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = CliRunner()
    result = runner.invoke(app, ["serve", str(folder), "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == port
    assert "3 images" in result.output
    missing = runner.invoke(app, ["serve", str(folder / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.output
    bad = runner.invoke(app, ["serve", str(folder), "--save", "xml"])
    assert bad.exit_code == 2 and "save format 'xml'" in bad.output


def test_reviewed_images_can_be_trained_on_at_once(folder, detector, tmp_path):
    from unilandmark.training.config import load_config
    from unilandmark.training.fit import fit

    client = make_client(folder, detector)
    names = client.get("/api/info").json()["names"]
    for name in ("head_0000.png", "head_0001.png"):
        points = client.get(f"/api/images/{name}/landmarks").json()["points"]
        points[3] = None
        client.post(f"/api/images/{name}/save", json={"points": points}, headers=WRITE)
    domains = [
        {"name": "reviewed_csv", "dataset": "csv", "root": str(folder / "landmarks_reviewed.csv"),
         "options": {"images": str(folder), "spacing": 0.8}},
        {"name": "reviewed_labelme", "dataset": "labelme", "root": str(folder),
         "options": {"landmarks": names}},
    ]
    config = load_config(data={
        "out_dir": str(tmp_path / "run"),
        "domains": [{**d, "train_split": "all", "val_split": None, "input_size": [32, 32],
                     "sigma": 2.0} for d in domains],
        "model": {"name": "gu2net", "width": 8, "depth": 2, "global_width": 8},
        "train": {"epochs": 1, "batch_size": 2, "cache_dir": None}})
    result = fit(config, progress=False, log=lambda *_: None)
    trained = Detector.from_checkpoint(result.last_path)
    assert set(trained.domains) == {"reviewed_csv", "reviewed_labelme"}
    assert trained.domains["reviewed_csv"]["landmark_names"] == names


class FlaggingDetector(CountingDetector):
    """The built-in detector with quality verdicts attached, as later models give them."""

    def predict(self, image, domain=None, spacing=None):
        from types import SimpleNamespace

        result = super().predict(image, domain, spacing)
        flags = np.zeros(len(result.names), dtype=bool)
        flags[[1, 6]] = True
        return SimpleNamespace(**{**vars(result), "flags": flags, "qc": "review",
                                  "orientation": "mirrored"})


def test_quality_flags_are_shown_where_the_model_gives_them(folder, builtin):
    client = make_client(folder, FlaggingDetector(builtin))
    state = client.get("/api/images/head_0000.png/landmarks").json()
    assert [i for i, f in enumerate(state["flags"]) if f] == [1, 6]
    assert state["qc"] == "review" and state["mirrored"] is True


def test_dicom_images_are_served_with_their_spacing(folder, detector):
    from tests.dicom_files import write_dicom

    pixels = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 7)
    write_dicom(folder / "scan.dcm", pixels, PixelSpacing=[0.2, 0.3])  # (row, col) = (y, x)
    client = make_client(folder, detector)
    assert "scan.dcm" in [i["name"] for i in client.get("/api/images").json()["images"]]
    meta = client.get("/api/images/scan.dcm").json()
    assert meta["size"] == [24, 20] and meta["spacing"] == [0.3, 0.2]
    shown = client.get("/api/images/scan.dcm/display")
    assert Image.open(io.BytesIO(shown.content)).size == (24, 20)
    state = client.get("/api/images/scan.dcm/landmarks").json()
    assert state["spacing"] == [0.3, 0.2] and len(state["points"]) == 19
    points = [[2.0, 3.0]] + [None] * 18
    client.post("/api/images/scan.dcm/save", json={"points": points, "format": "csv"},
                headers=WRITE)
    import csv

    with open(folder / "landmarks_reviewed.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 19 and rows[0]["image"] == "scan" and rows[0]["name"] == "sella"
    assert float(rows[0]["x_mm"]) == pytest.approx(2.0 * 0.3)
    assert float(rows[0]["y_mm"]) == pytest.approx(3.0 * 0.2)
    assert rows[0]["spacing_x"] == "0.3" and rows[1]["x"] == "" and rows[1]["x_mm"] == ""


def test_measurements_follow_the_current_points(folder, detector):
    measure_module = pytest.importorskip("unilandmark.measure",
                                         reason="unilandmark.measure is not in this build")
    client = make_client(folder, detector, spacing=(0.1, 0.1))
    state = client.get("/api/images/head_0000.png/landmarks").json()
    names = state["names"]
    spec = measure_module.spec_for(names)
    assert spec is not None  # the built-in head model's landmarks have a spec (ISBI 2015)

    def expected(points):
        pts = np.array([p if p is not None else [np.nan, np.nan] for p in points], float)
        # in the patient's frame: the model's orientation decision counts (a phantom may
        # well be read as mirrored)
        return measure_module.measure(spec, pts, names, spacing=(0.1, 0.1),
                                      mirrored=state["mirrored"])

    got = {m["name"]: m for m in state["measurements"]}
    assert list(got) == list(expected(state["points"]))
    for name, value in expected(state["points"]).items():
        assert got[name]["value"] == pytest.approx(value) if np.isfinite(value) else \
            got[name]["value"] is None
    assert {m["unit"] for m in got.values()} <= {"deg", "mm", "px", "ratio"}
    moved_points = moved(state["points"], 1, 5.0, -3.0)  # nasion: most angles change
    live = client.post("/api/measure", json={"name": "head_0000.png",
                                             "points": moved_points}, headers=WRITE).json()
    after = {m["name"]: m["value"] for m in live["measurements"]}
    for name, value in expected(moved_points).items():
        if np.isfinite(value):
            assert after[name] == pytest.approx(value)
    assert after != {n: m["value"] for n, m in got.items()}
    hidden = list(state["points"])
    hidden[0] = None  # sella not visible: the angles through it are undefined
    values = client.put("/api/images/head_0000.png/landmarks", json={"points": hidden},
                        headers=WRITE).json()["measurements"]
    assert {m["name"]: m["value"] for m in values}["SNA"] is None


@pytest.mark.parametrize("fmt", ["csv", "labelme"])
def test_orientation_is_saved_and_read_back(folder, builtin, fmt):
    client = make_client(folder, FlaggingDetector(builtin), save=fmt)  # says "mirrored"
    points = client.get("/api/images/head_0000.png/landmarks").json()["points"]
    client.post("/api/images/head_0000.png/save", json={"points": points}, headers=WRITE)
    again = make_client(folder, CountingDetector(builtin), save=fmt)
    state = again.get("/api/images/head_0000.png/landmarks").json()
    assert state["source"] == "file" and state["orientation"] == "mirrored"
    assert state["mirrored"] is True


def test_an_unwritable_table_is_a_clear_message_and_nothing_else_changes(folder, detector):
    client = make_client(folder, detector, save="csv",
                         csv_path=folder / "head_0001.png" / "reviewed.csv")  # under a file
    points = client.get("/api/images/head_0000.png/landmarks").json()["points"]
    response = client.post("/api/images/head_0000.png/save", json={"points": points},
                           headers=WRITE)
    assert response.status_code == 500
    assert response.json()["detail"].startswith(
        f"cannot write {folder / 'head_0001.png' / 'reviewed.csv'}: ")
    assert client.get("/api/images/head_0000.png/landmarks").json()["status"] == "predicted"
    assert sorted(p.name for p in folder.iterdir()) == [
        "head_0000.png", "head_0001.png", "head_0002.png"]


def test_images_sharing_a_record_id_are_not_saved(folder, detector):
    shutil.copy(folder / "head_0000.png", folder / "head_0000.tif")
    client = make_client(folder, detector)
    points = client.get("/api/images/head_0000.png/landmarks").json()["points"]
    response = client.post("/api/images/head_0000.png/save", json={"points": points},
                           headers=WRITE)
    assert response.status_code == 422
    assert "share its record id 'head_0000' (head_0000.tif)" in response.json()["detail"]
    assert not (folder / "landmarks_reviewed.csv").exists()


def test_a_ruler_sets_the_spacing_and_bad_rulers_are_refused(folder, detector):
    from unilandmark.imageio.spacing_file import spacing_file

    client = make_client(folder, detector, spacing=(0.5, 0.5))
    url = "/api/images/head_0001.png"
    before = client.get(f"{url}/landmarks").json()
    assert before["spacing"] == [0.5, 0.5] and before["spacing_source"] == "option"
    for body in ({"start": [1, 1], "end": [1, 1.5], "length_mm": 5},  # < 2 pixels
                 {"start": [1, 1], "end": [1, 41], "length_mm": 0},
                 {"start": [1, 1], "end": [1, 41], "length_mm": float("inf")},
                 {"start": [1, 1, 1], "end": [1, 41], "length_mm": 5},
                 {"start": [1, 1], "end": [1, 41], "length_mm": 1e6}):  # implausible
        r = client.post(f"{url}/ruler", content=json.dumps(body), headers={
            **WRITE, "Content-Type": "application/json"})
        assert r.status_code in (400, 422), (body, r.text)
        assert not spacing_file(folder / "head_0001.png").exists()
    r = client.post(f"{url}/ruler", json={"start": [1, 1], "end": [1, 41], "length_mm": 8},
                    headers=WRITE)
    assert r.status_code == 200, r.text
    assert r.json()["spacing"] == pytest.approx([0.2, 0.2])
    assert r.json()["spacing_source"] == "ruler"
    assert client.get(url).json()["spacing_source"] == "ruler"
    assert client.post(f"{url}/ruler", json={"start": [1, 1], "end": [1, 41],
                                             "length_mm": 8}).status_code == 403  # no header
    # a new server (and predict) reads the calibration from beside the image
    again = make_client(folder, detector).get(f"{url}/landmarks").json()
    assert again["spacing"] == pytest.approx([0.2, 0.2]) and again["spacing_source"] == "ruler"
