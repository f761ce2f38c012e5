"""The review app on volumes (FastAPI's test client, synthetic volumes, a stand-in model):
slices and their anatomical labels for volumes stored in any axis order, the safety rules
on the new routes, and saving to the volume review table and Slicer markups, which read
back to the same world points (absent landmarks included). DICOM series folders beside
volume files: listed, shown and saved as the file holding the same voxels is.

The phantom's voxels encode their own position: in LPS order ``value = x + 30 y + 900 z``
(x towards the patient's left, y posterior, z superior), so a slice says exactly which
voxels it holds, whatever order the file stores them in."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from unilandmark.core.world import VolumeGeometry  # noqa: E402
from unilandmark.data.adapters.volumes import volume_csv_dataset  # noqa: E402
from unilandmark.data.markups import read_markups  # noqa: E402
from unilandmark.imageio.reorient import reoriented  # noqa: E402
from unilandmark.imageio.volume import write_volume  # noqa: E402
from unilandmark.predictions.volume_table import VOLUME_COLUMNS  # noqa: E402
from unilandmark.serve import create_app  # noqa: E402
from unilandmark.serve.slices import LoadedVolume, view_labels  # noqa: E402
from unilandmark.serve.volume_app import MIN_JSON_BYTES  # noqa: E402

from .test_volume_io import write_dicom_series  # noqa: E402

WRITE = {"X-Unilandmark": "1"}
SIZE = (20, 24, 16)  # (X, Y, Z) voxels in LPS order
SPACING = (1.0, 1.25, 2.0)
ORIGIN = (-12.0, 30.0, -8.0)
NAMES = ("left_front_top", "right_back_low", "centre")
#: the landmarks' LPS voxels in the phantom stored as LPS (x, y, z)
VOXELS = np.array([[16.0, 4.0, 12.0], [3.0, 19.0, 3.0], [9.5, 11.25, 7.0]])
#: file name -> orientation code each copy is stored in (LPS: identity direction)
STORED = {"lps.nii.gz": "LPS", "ras.nii.gz": "RAS", "psr.nrrd": "PSR", "ila.mha": "ILA"}


def phantom() -> tuple[np.ndarray, VolumeGeometry]:
    geometry = VolumeGeometry(SIZE, SPACING, ORIGIN)
    z, y, x = np.meshgrid(*(np.arange(n) for n in geometry.shape), indexing="ij")
    return (x + 30 * y + 900 * z).astype(np.int16), geometry


WORLD = VolumeGeometry(SIZE, SPACING, ORIGIN).index_to_world(VOXELS)


class StandIn:
    """A volume model stand-in: fixed world points (the third called absent), counting
    its calls; the app hands it ``(array, geometry)``."""

    model_name = "stand-in"

    def __init__(self, present=(True, True, False)):
        self.domains = {"phantom3d": {"landmark_names": list(NAMES), "dims": 3}}
        self.present = np.array(present, dtype=bool)
        self.calls = []

    def predict(self, volume, domain=None):
        array, geometry = volume
        self.calls.append(geometry.orientation_code())
        return SimpleNamespace(world=WORLD.copy(), voxels=geometry.world_to_index(WORLD),
                               confidence=np.array([0.9, 0.35, 0.1]), present=self.present,
                               geometry=geometry, names=NAMES)


@pytest.fixture
def folder(tmp_path):
    """The phantom stored four ways (identity, flipped, permuted, permuted and flipped)."""
    out = tmp_path / "volumes"
    out.mkdir()
    array, geometry = phantom()
    for name, code in STORED.items():
        turned, turned_geometry = reoriented(array, geometry, code)
        assert turned_geometry.orientation_code() == code
        write_volume(out / name, turned, turned_geometry)
    return out


@pytest.fixture
def model():
    return StandIn()


def client_for(folder, model, **options):
    options.setdefault("allowed_hosts", ("testserver",))
    return TestClient(create_app(folder, model, **options))


def get_slice(client, name, view, index):
    response = client.get(f"/api/volumes/{name}/slice/{view}/{index}")
    assert response.status_code == 200, response.text
    rows, cols = map(int, response.headers["x-slice-shape"].split())
    data = np.frombuffer(response.content, dtype="<" + {
        "int16": "i2", "uint8": "u1", "uint16": "u2", "float32": "f4"}[
        response.headers["x-slice-dtype"]])
    return data.reshape(rows, cols), response


# ---------------------------------------------------------------- views and labels


def expected_slice(view, index):
    """The phantom's slice in the page's conventions, from the LPS formula itself."""
    X, Y, Z = SIZE
    if view == "axial":  # rows y (A at the top), columns x (R on the left)
        r, c = np.meshgrid(np.arange(Y), np.arange(X), indexing="ij")
        return c + 30 * r + 900 * index
    if view == "coronal":  # rows z reversed (S at the top), columns x
        r, c = np.meshgrid(np.arange(Z), np.arange(X), indexing="ij")
        return c + 30 * index + 900 * (Z - 1 - r)
    r, c = np.meshgrid(np.arange(Z), np.arange(Y), indexing="ij")  # sagittal: columns y
    return index + 30 * c + 900 * (Z - 1 - r)


LABELS = {"axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
          "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
          "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"}}


@pytest.mark.parametrize("name", list(STORED))
def test_views_follow_the_anatomy_not_the_stored_axes(folder, model, name):
    client = client_for(folder, model)
    meta = client.get(f"/api/volumes/{name}").json()
    assert meta["orientation"] == STORED[name] and meta["frame"] == "LPS"
    assert meta["display"]["size"] == list(SIZE)  # (L-R, A-P, S-I) extents in voxels
    assert meta["display"]["orientation"] == "LPS"
    assert meta["display"]["obliquity_deg"] == 0.0
    for view, spec in meta["views"].items():
        assert spec["labels"] == LABELS[view], (name, view)
        for index in (0, spec["count"] // 2, spec["count"] - 1):
            got, response = get_slice(client, name, view, index)
            assert response.headers["x-slice-dtype"] == "int16"
            assert list(got.shape) == spec["shape"]
            np.testing.assert_array_equal(got, expected_slice(view, index))
    assert model.calls == []  # slices never ask the model


def test_the_letters_sit_where_the_patient_is(folder, model):
    """On the identity volume, independent of the page's conventions: a column further
    right on screen is further towards the patient's left in world LPS (+x); a row further
    down in the coronal view is further inferior (-z)."""
    client = client_for(folder, model)
    meta = client.get("/api/volumes/lps.nii.gz").json()
    to_world = np.array(meta["display"]["to_world"])

    def world(p):
        return (to_world @ np.array([*p, 1.0]))[:3]

    # axial: column = display x; coronal: row r is display z = Z - 1 - r
    assert world([5, 0, 0])[0] > world([4, 0, 0])[0]  # right edge "L": +x in LPS is left
    assert meta["views"]["axial"]["labels"]["right"] == "L"
    z_top, z_below = SIZE[2] - 1 - 0, SIZE[2] - 1 - 1
    assert world([0, 0, z_top])[2] > world([0, 0, z_below])[2]  # top "S"
    assert meta["views"]["coronal"]["labels"]["top"] == "S"
    assert world([0, 3, 0])[1] > world([0, 2, 0])[1]  # further right in sagittal: +y, P
    assert meta["views"]["sagittal"]["labels"]["right"] == "P"


def test_an_oblique_volume_is_shown_along_its_nearest_axes():
    array, geometry = phantom()
    angle = np.radians(12.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    turned = VolumeGeometry(SIZE, SPACING, ORIGIN, rotation @ np.diag([-1.0, 1.0, 1.0]))
    loaded = LoadedVolume(array, turned)
    assert loaded.obliquity_deg == pytest.approx(12.0, abs=1e-6)
    assert view_labels(loaded.display_geometry, "axial") == LABELS["axial"]
    # the display is the stored voxels, flipped along x: no interpolation
    np.testing.assert_array_equal(loaded.slice("axial", 3), array[3, :, ::-1])


def test_slices_are_one_at_a_time_and_checked(folder, model, tmp_path):
    client = client_for(folder, model)
    got, response = get_slice(client, "psr.nrrd", "axial", 5)
    assert len(response.content) == got.size * 2 < phantom()[0].nbytes / 10
    assert response.headers["content-type"] == "application/octet-stream"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for url, status in (("/api/volumes/psr.nrrd/slice/axial/16", 404),
                        ("/api/volumes/psr.nrrd/slice/axial/-1", 404),
                        ("/api/volumes/psr.nrrd/slice/oblique/1", 404),
                        ("/api/volumes/psr.nrrd/slice/axial/x", 422)):
        response = client.get(url)
        assert response.status_code == status, url
        assert isinstance(response.json()["detail"], (str, list))
    # a float64 volume is sent as float32
    array, geometry = phantom()
    other = tmp_path / "float"
    other.mkdir()
    write_volume(other / "f.nrrd", array.astype(np.float64) / 7, geometry)
    got, response = get_slice(client_for(other, model), "f.nrrd", "coronal", 2)
    assert response.headers["x-slice-dtype"] == "float32"
    np.testing.assert_allclose(got, expected_slice("coronal", 2) / 7, rtol=1e-6)


def test_the_window_comes_from_percentiles_with_presets(folder, model, tmp_path):
    window = client_for(folder, model).get("/api/volumes/lps.nii.gz").json()["window"]
    assert window["modality"] == "mr"
    low, high = np.percentile(phantom()[0], [0.5, 99.5])
    centre, width = window["default"]
    assert abs(centre - (low + high) / 2) < 0.02 * high and abs(width - (high - low)) < 0.03 * high
    assert [p["name"] for p in window["presets"]][:2] == ["Auto (0.5-99.5 %)", "Full range"]
    ct = tmp_path / "ct"
    ct.mkdir()
    array = np.full((20, 24, 24), -1000, np.int16)
    array[4:16, 4:20, 4:20] = 40
    array[8:10, 8:12, 8:12] = 1200
    write_volume(ct / "ct.nii.gz", array, VolumeGeometry((24, 24, 20), (0.5, 0.5, 1.0)))
    window = client_for(ct, model).get("/api/volumes/ct.nii.gz").json()["window"]
    assert window["modality"] == "ct"
    assert "CT bone" in [p["name"] for p in window["presets"]]
    assert window["default"][0] - window["default"][1] / 2 > -600  # the body, not the air


# ---------------------------------------------------------------- safety on the new routes


@pytest.mark.parametrize("url", [
    "/api/volumes/..%2F..%2Fetc%2Fpasswd",
    "/api/volumes/..%2Fescape.nii.gz/landmarks",
    "/api/volumes/escape.nii.gz",
    "/api/volumes/escape.nii.gz/slice/axial/1",
    "/api/volumes/escape.nii.gz/landmarks",
    "/api/volumes/.hidden.nii.gz/slice/axial/1",
    "/api/volumes/notes.txt",
    "/api/volumes/picture.png/slice/axial/0",
    "/api/volumes/%2Fetc%2Fpasswd/slice/axial/0",
    "/api/volumes/detached.mhd/slice/axial/0",
])
def test_nothing_outside_the_folder_is_served(folder, model, tmp_path, url):
    outside = tmp_path / "escape.nii.gz"
    outside.write_bytes((folder / "lps.nii.gz").read_bytes())
    os.symlink(outside, folder / "escape.nii.gz")
    (folder / ".hidden.nii.gz").write_bytes((folder / "lps.nii.gz").read_bytes())
    (folder / "notes.txt").write_text("secret")
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "detached.mhd").write_text("ObjectType = Image\nNDims = 3\n"
                                         "ElementDataFile = ../secret.raw\n")
    client = client_for(folder, model)
    names = [v["name"] for v in client.get("/api/volumes").json()["volumes"]]
    assert names == sorted(STORED)  # no link out, hidden file, image or detached header
    response = client.get(url)
    assert response.status_code == 404, (url, response.status_code)
    assert b"secret" not in response.content
    base = url.split("/slice")[0].split("/landmarks")[0]
    save = client.post(base + "/save", json={"points": [None] * 3}, headers=WRITE)
    assert save.status_code == 404
    assert model.calls == []


def test_a_header_naming_a_data_file_elsewhere_is_refused(folder, model, tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"secret!!" * (24 * 24 * 24 // 8 * 2))
    (folder / "outside.mha").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 24 24 24\nElementType = MET_SHORT\n"
        "ElementSpacing = 1 1 1\nElementDataFile = ../secret.raw\n")
    client = client_for(folder, model)
    for url in ("/api/volumes/outside.mha", "/api/volumes/outside.mha/slice/axial/1",
                "/api/volumes/outside.mha/landmarks"):
        response = client.get(url)
        assert response.status_code == 422, url
        assert "separate data file" in response.json()["detail"]
        assert b"secret!!" not in response.content
    assert model.calls == []


def test_writes_need_the_header_and_a_known_host(folder, model):
    client = client_for(folder, model)
    points = client.get("/api/volumes/lps.nii.gz/landmarks").json()["points"]
    for method, url in (("PUT", "/api/volumes/lps.nii.gz/landmarks"),
                        ("POST", "/api/volumes/lps.nii.gz/save")):
        response = client.request(method, url, json={"points": points})
        assert response.status_code == 403
        assert "X-Unilandmark" in response.json()["detail"] or \
            "x-unilandmark" in response.json()["detail"]
    response = client.get("/api/volumes/lps.nii.gz/slice/axial/1",
                          headers={"Host": "evil.example:8000"})
    assert response.status_code == 400 and "not served here" in response.json()["detail"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(STORED)


def padded_body(size):
    return json.dumps({"points": WORLD.tolist(), "format": "both",
                       "padding": "x" * size}).encode()


@pytest.mark.parametrize("method, url", [("POST", "/api/volumes/lps.nii.gz/save"),
                                         ("PUT", "/api/volumes/lps.nii.gz/landmarks")])
def test_an_oversized_body_is_refused_before_it_is_read(folder, model, method, url):
    client = client_for(folder, model)
    response = client.request(method, url, content=padded_body(200_000),
                              headers={**WRITE, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"] == ("the request body is larger than the limit of "
                                         "64 KiB for this request")

    def chunks():  # no Content-Length: refused as the bytes arrive
        yield b'{"points": ' + json.dumps(WORLD.tolist()).encode()
        for _ in range(40):
            yield b" " * 4096
        yield b"}"

    response = client.request(method, url, content=chunks(),
                              headers={**WRITE, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert sorted(p.name for p in folder.iterdir()) == sorted(STORED)
    assert model.calls == []
    body = padded_body(0)
    body = body[:-1] + b" " * (MIN_JSON_BYTES - len(body)) + b"}"
    response = client.request(method, url, content=body,
                              headers={**WRITE, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text  # the control: just under the limit


@pytest.mark.parametrize("points, fault", [
    (WORLD.tolist()[:2], "expected 3 points"),
    ([[1.0, 2.0], None, None], "expected [x, y, z]"),
    ([[1e6, 0.0, 0.0], None, None], "far outside"),
])
def test_bad_points_are_refused(folder, model, points, fault):
    client = client_for(folder, model)
    response = client.put("/api/volumes/lps.nii.gz/landmarks", json={"points": points},
                          headers=WRITE)
    assert response.status_code == 422 and fault in response.json()["detail"]
    response = client.post("/api/volumes/lps.nii.gz/save",
                           json={"points": WORLD.tolist(), "format": "labelme"}, headers=WRITE)
    assert response.status_code == 422 and "labelme is for 2-D images" in response.json()["detail"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(STORED)


# ---------------------------------------------------------------- review and saving


def test_the_model_is_asked_once_and_its_absent_landmark_starts_absent(folder, model):
    client = client_for(folder, model)
    state = client.get("/api/volumes/psr.nrrd/landmarks").json()
    assert state["status"] == "predicted" and state["frame"] == "LPS"
    np.testing.assert_allclose(state["points"][:2], WORLD[:2], atol=1e-9)
    assert state["points"][2] is None and state["present"] == [True, True, False]
    np.testing.assert_allclose(state["predicted"], WORLD, atol=1e-9)  # its guess is kept
    stored = VolumeGeometry(*_stored_geometry("psr.nrrd"))
    np.testing.assert_allclose(state["voxels"][:2], stored.world_to_index(WORLD[:2]), atol=1e-9)
    assert state["human"] == [False, False, False]
    client.get("/api/volumes/psr.nrrd/landmarks")
    client.get("/api/volumes/psr.nrrd/prediction")
    assert model.calls == ["PSR"]  # once, on the array the slices come from


def _stored_geometry(name):
    array, geometry = phantom()
    turned = reoriented(array, geometry, STORED[name])[1]
    return turned.size, turned.spacing, turned.origin, turned.direction


@pytest.mark.parametrize("name", ["psr.nrrd", "ras.nii.gz"])
def test_saving_writes_a_table_and_markups_that_read_back(folder, model, name):
    client = client_for(folder, model)
    points = client.get(f"/api/volumes/{name}/landmarks").json()["points"]
    points[0] = [points[0][0] + 3.5, points[0][1] - 1.25, points[0][2] + 2.0]
    points[2] = [1.0, 40.0, 5.5]  # placed by the reviewer
    assert client.put(f"/api/volumes/{name}/landmarks", json={"points": points},
                      headers=WRITE).json()["status"] == "reviewed"
    saved = client.post(f"/api/volumes/{name}/save", json={"points": points}, headers=WRITE)
    assert saved.status_code == 200, saved.text
    stem = name.split(".")[0]
    assert [os.path.basename(f) for f in saved.json()["files"]] == [
        f"{stem}.mrk.json", "landmarks_reviewed_volumes.csv"]
    assert saved.json()["status"] == "saved"
    table = folder / "landmarks_reviewed_volumes.csv"
    assert table.read_text().splitlines()[0] == ",".join(VOLUME_COLUMNS)
    spec = volume_csv_dataset(table, images=folder)
    (record,) = spec.records
    assert spec.landmark_names == NAMES and record.id == stem
    np.testing.assert_allclose(record.meta["world_lps"], points, atol=1e-3)
    markups = read_markups(folder / f"{stem}.mrk.json")
    assert markups.labels == NAMES and markups.source_frame == "LPS"
    np.testing.assert_allclose(markups.points_lps, points, atol=1e-9)
    # a new server (another session) opens the saved points, without the model
    again = StandIn()
    state = client_for(folder, again).get(f"/api/volumes/{name}/landmarks").json()
    assert state["status"] == "saved" and state["source"] == "file"
    np.testing.assert_allclose(state["points"], points, atol=1e-9)
    csv_only = client_for(folder, again, save="csv").get(
        f"/api/volumes/{name}/landmarks").json()
    np.testing.assert_allclose(csv_only["points"], points, atol=1e-3)
    assert again.calls == []


def test_an_absent_landmark_round_trips(folder, model):
    client = client_for(folder, model)
    points = client.get("/api/volumes/ila.mha/landmarks").json()["points"]
    points[1] = None  # marked absent by the reviewer; landmark 3 the model called absent
    saved = client.post("/api/volumes/ila.mha/save", json={"points": points}, headers=WRITE)
    assert saved.status_code == 200, saved.text
    table = folder / "landmarks_reviewed_volumes.csv"
    rows = [line.split(",") for line in table.read_text().splitlines()[1:]]
    assert [(r[1], r[3], r[7], r[11]) for r in rows] == [
        ("1", rows[0][3], rows[0][7], "1"), ("2", "", "", "0"), ("3", "", "", "0")]
    (record,) = volume_csv_dataset(table, images=folder).records
    assert record.visible.tolist() == [True, False, False]
    markups = read_markups(folder / "ila.mrk.json")
    assert markups.visible.tolist() == [True, False, False]
    doc = json.loads((folder / "ila.mrk.json").read_text())
    assert [c["positionStatus"] for c in doc["markups"][0]["controlPoints"]] == [
        "defined", "undefined", "undefined"]
    state = client_for(folder, StandIn()).get("/api/volumes/ila.mha/landmarks").json()
    assert state["points"][1] is None and state["points"][2] is None
    np.testing.assert_allclose(state["points"][0], points[0], atol=1e-9)


def test_saving_one_volume_keeps_the_others_rows_and_a_users_column(folder, model):
    client = client_for(folder, model)
    for name in ("lps.nii.gz", "psr.nrrd"):
        points = client.get(f"/api/volumes/{name}/landmarks").json()["points"]
        assert client.post(f"/api/volumes/{name}/save", json={"points": points, "format": "csv"},
                           headers=WRITE).status_code == 200
    table = folder / "landmarks_reviewed_volumes.csv"
    lines = table.read_text().splitlines()
    table.write_text("\n".join([lines[0] + ",note"] + [line + ",ok" for line in lines[1:]]) + "\n")
    points = client.get("/api/volumes/lps.nii.gz/landmarks").json()["points"]
    points[0] = [points[0][0] + 1.0, points[0][1], points[0][2]]
    assert client.post("/api/volumes/lps.nii.gz/save", json={"points": points, "format": "csv"},
                       headers=WRITE).status_code == 200
    text = table.read_text().splitlines()
    assert text[0].endswith(",note") and len(text) == 7
    assert [line.split(",")[0] for line in text[1:]] == ["psr"] * 3 + ["lps"] * 3
    assert all(line.endswith(",ok") for line in text[1:4])
    assert not (folder / "lps.mrk.json").exists()  # csv only
    assert (folder / "landmarks_reviewed_volumes.csv.lock").exists()  # the shared lock
    listing = client_for(folder, StandIn()).get("/api/volumes").json()["volumes"]
    assert {v["name"]: v["status"] for v in listing} == {
        "ila.mha": "new", "lps.nii.gz": "saved", "psr.nrrd": "saved", "ras.nii.gz": "new"}


def test_the_info_says_it_is_a_volume_app(folder, model):
    info = client_for(folder, model).get("/api/info").json()
    assert info["kind"] == "volume" and info["names"] == list(NAMES)
    assert info["formats"] == ["csv", "markups", "both"] and info["frame"] == "LPS"
    assert info["csv"].endswith("landmarks_reviewed_volumes.csv")
    page = client_for(folder, model).get("/")
    assert page.status_code == 200 and "/static/volume.js" in page.text
    with pytest.raises(ValueError, match="spacing applies to 2-D images"):
        create_app(folder, model, spacing=(1.0, 1.0))


def test_serve_on_a_volume_model_starts_the_volume_app(folder, model, monkeypatch):
    from unilandmark.cli import app as cli_app
    from unilandmark.inference.volume_detector import VolumeDetector

    served = {}
    monkeypatch.setattr("unilandmark.serve.run_server",
                        lambda application, host, port: served.update(app=application))
    monkeypatch.setattr(VolumeDetector, "from_checkpoint_state",
                        classmethod(lambda cls, *a, **k: model))
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", str(folder), "--checkpoint", "brain",
                                     "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert "reviewing 4 volumes" in " ".join(result.output.split())
    client = TestClient(served["app"], base_url="http://localhost")
    assert client.get("/api/info").json()["kind"] == "volume"
    for extra, words in ((["--save", "labelme"], "labelme is for 2-D images"),
                         (["--spacing", "0.5"], "--spacing applies to 2-D images")):
        bad = runner.invoke(cli_app, ["serve", str(folder), "--checkpoint", "brain",
                                      "--port", str(port), *extra])
        assert bad.exit_code == 2 and words in " ".join(bad.output.split()), bad.output


def test_the_latency_benchmark_runs_on_a_small_volume(tmp_path):
    """benchmarks/serve_volume_latency.py on a small CT (its figures are measured on the
    full size; docs/results.md holds them with the command)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_volume_latency.py"
    spec = importlib.util.spec_from_file_location("serve_volume_latency", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "latency.json"
    module.main(["--size", "40", "36", "32", "--slices", "3", "--no-landmarks",
                 "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["first_view_s"] > 0 and len(result["first_slices_s"]) == 3
    assert set(result["per_slice"]) == {"axial", "coronal", "sagittal"}
    assert result["per_slice"]["axial"]["bytes"] == 40 * 36 * 2
    assert result["landmarks_s"] is None


def test_reviewed_volumes_can_be_trained_on_at_once(folder, model, tmp_path):
    """The saved review table is a ``volume-csv`` dataset: a volume stage trains on it as
    it is (one epoch; the absent landmark is masked)."""
    from unilandmark.inference.volume_detector import VolumeDetector
    from unilandmark.training.config import load_config
    from unilandmark.training.fit import fit

    client = client_for(folder, model)
    for name in STORED:
        points = client.get(f"/api/volumes/{name}/landmarks").json()["points"]
        assert client.post(f"/api/volumes/{name}/save", json={"points": points},
                           headers=WRITE).status_code == 200
    config = load_config(data={
        "out_dir": str(tmp_path / "run"),
        "stage": {"kind": "volume", "spacing": 3.0, "modality": "mr"},
        "model": {"name": "unet3d", "width": 4, "depth": 2},
        "domains": [{"name": "reviewed", "dataset": "volume-csv",
                     "root": str(folder / "landmarks_reviewed_volumes.csv"),
                     "options": {"images": str(folder)}, "train_split": "all",
                     "val_split": None, "input_size": [8, 12, 12], "sigma": 1.5}],
        "train": {"epochs": 1, "batch_size": 2, "cache_dir": None, "threads": 1}})
    result = fit(config, progress=False, log=lambda *_: None)
    trained = VolumeDetector.from_checkpoint(result.last_path)
    assert trained.domains["reviewed"]["landmark_names"] == list(NAMES)


# ---------------------------------------------------------------- DICOM series folders

SERIES_UID = "1.2.826.0.1.3680043.2.1125.9.51"
OTHER_UID = "1.2.826.0.1.3680043.2.1125.9.52"


def stored_ras():
    """The phantom stored RAS (x and y flipped; right-handed, so a DICOM stack keeps it)."""
    array, geometry = phantom()
    return reoriented(array, geometry, "RAS")


@pytest.fixture
def mixed(tmp_path):
    """One volume file and one DICOM series folder holding the same voxels and geometry."""
    out = tmp_path / "mixed"
    out.mkdir()
    array, geometry = stored_ras()
    write_volume(out / "scan.nii.gz", array, geometry)
    write_dicom_series(out / "series_name", array, geometry, SERIES_UID)
    return out


def assert_close(a, b, where):
    """Equal JSON, numbers within 1e-5 (a DICOM header keeps positions to 6 decimals)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-5), where
    else:
        assert a == b, where


def test_a_dicom_series_folder_is_listed_and_shown_as_its_file_is(mixed, model):
    client = client_for(mixed, model)
    assert client.get("/api/volumes").json()["volumes"] == [
        {"name": "scan.nii.gz", "status": "new"}, {"name": "series_name", "status": "new"}]
    file_meta = client.get("/api/volumes/scan.nii.gz").json()
    series_meta = client.get("/api/volumes/series_name").json()
    assert series_meta["orientation"] == "RAS" and series_meta["frame"] == "LPS"
    assert series_meta.keys() == file_meta.keys()
    for key in set(file_meta) - {"name", "version"}:
        assert_close(series_meta[key], file_meta[key], key)
    for view, spec in series_meta["views"].items():
        assert spec["labels"] == LABELS[view]
        for index in (0, spec["count"] // 2, spec["count"] - 1):
            from_series, _ = get_slice(client, "series_name", view, index)
            from_file, _ = get_slice(client, "scan.nii.gz", view, index)
            np.testing.assert_array_equal(from_series, from_file)
            np.testing.assert_array_equal(from_series, expected_slice(view, index))
    assert model.calls == []


def test_saving_a_series_writes_its_row_and_markups_beside_it(mixed, model):
    client = client_for(mixed, model)
    state = client.get("/api/volumes/series_name/landmarks").json()
    assert state["status"] == "predicted" and model.calls == ["RAS"]
    points = state["points"]
    points[0] = [points[0][0] + 2.5, points[0][1], points[0][2] - 1.0]
    points[2] = [1.0, 40.0, 5.5]
    slices = sorted(p.name for p in (mixed / "series_name").iterdir())
    saved = client.post("/api/volumes/series_name/save", json={"points": points},
                        headers=WRITE)
    assert saved.status_code == 200, saved.text
    assert saved.json()["files"] == [str(mixed / "series_name.mrk.json"),
                                     str(mixed / "landmarks_reviewed_volumes.csv")]
    assert sorted(p.name for p in (mixed / "series_name").iterdir()) == slices
    markups = read_markups(mixed / "series_name.mrk.json")
    assert markups.labels == NAMES
    np.testing.assert_allclose(markups.points_lps, points, atol=1e-9)
    lines = (mixed / "landmarks_reviewed_volumes.csv").read_text().splitlines()
    rows = [dict(zip(VOLUME_COLUMNS, line.split(","), strict=True)) for line in lines[1:]]
    assert [r["image"] for r in rows] == ["series_name"] * 3
    stored = stored_ras()[1]
    voxels = np.array([[float(r[c]) for c in "xyz"] for r in rows])
    np.testing.assert_allclose(stored.index_to_world(voxels), points, atol=1e-3)
    np.testing.assert_allclose([[float(r[f"{c}_mm"]) for c in "xyz"] for r in rows], points,
                               atol=1e-4)
    again = StandIn()  # another session opens the saved points, from either format
    for save in ("markups", "csv"):
        state = client_for(mixed, again, save=save).get(
            "/api/volumes/series_name/landmarks").json()
        assert state["status"] == "saved" and state["source"] == "file"
        np.testing.assert_allclose(state["points"], points, atol=1e-3)
    assert again.calls == []
    assert {v["name"]: v["status"] for v in client_for(mixed, again).get(
        "/api/volumes").json()["volumes"]} == {"scan.nii.gz": "new", "series_name": "saved"}
    write_volume(mixed / "series_name.nrrd", *stored_ras())  # the same record id
    clash = client.post("/api/volumes/series_name/save", json={"points": points},
                        headers=WRITE)
    assert clash.status_code == 422 and "share its record id 'series_name'" in clash.text


@pytest.mark.parametrize("fault, words", [
    ("link", "series_name/zz_outside.dcm: a link to a file outside this DICOM series folder"),
    ("nested", "series_name/more: a folder inside this DICOM series folder"),
    ("hidden link", "series_name/.outside.dcm: a link to a file outside"),
])
def test_a_series_folder_reading_elsewhere_is_refused(mixed, model, tmp_path, fault, words):
    (outside,) = write_dicom_series(tmp_path / "elsewhere", phantom()[0][:1],
                                    VolumeGeometry((20, 24, 1), SPACING, ORIGIN), OTHER_UID)
    series = mixed / "series_name"
    if fault == "nested":
        write_dicom_series(series / "more", *stored_ras(), OTHER_UID)
    else:
        os.symlink(outside, series / ("zz_outside.dcm" if fault == "link" else ".outside.dcm"))
    client = client_for(mixed, model)
    assert [v["name"] for v in client.get("/api/volumes").json()["volumes"]] == [
        "scan.nii.gz", "series_name"]  # listed, so that opening it says what is wrong
    for url in ("/api/volumes/series_name", "/api/volumes/series_name/slice/axial/1",
                "/api/volumes/series_name/landmarks", "/api/volumes/series_name/prediction"):
        response = client.get(url)
        assert response.status_code == 422, (url, response.text)
        assert words in response.json()["detail"] and OTHER_UID not in response.text
    response = client.post("/api/volumes/series_name/save", json={"points": [None] * 3},
                           headers=WRITE)
    assert response.status_code == 422 and words in response.json()["detail"]
    assert model.calls == [] and not (mixed / "landmarks_reviewed_volumes.csv").exists()


def test_a_series_folder_resolving_outside_is_not_served(mixed, model, tmp_path):
    write_dicom_series(tmp_path / "elsewhere", *stored_ras(), OTHER_UID)
    os.symlink(tmp_path / "elsewhere", mixed / "linked")
    client = client_for(mixed, model)
    assert [v["name"] for v in client.get("/api/volumes").json()["volumes"]] == [
        "scan.nii.gz", "series_name"]
    for url in ("/api/volumes/linked", "/api/volumes/linked/slice/axial/1",
                "/api/volumes/..%2Felsewhere", "/api/volumes/series_name%2Fslice016.dcm"):
        assert client.get(url).status_code == 404, url
    assert model.calls == []


def test_folders_without_a_series_and_hidden_ones_are_not_listed(mixed, model):
    notes = mixed / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a scan")
    (notes / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (mixed / "empty").mkdir()
    write_dicom_series(mixed / ".hidden", *stored_ras(), OTHER_UID)
    client = client_for(mixed, model)
    assert [v["name"] for v in client.get("/api/volumes").json()["volumes"]] == [
        "scan.nii.gz", "series_name"]
    for name in ("notes", "empty", ".hidden"):
        assert client.get(f"/api/volumes/{name}").status_code == 404, name
        assert client.get(f"/api/volumes/{name}/landmarks").status_code == 404, name


def test_a_folder_of_several_series_is_listed_and_refused_naming_them(mixed, model):
    array, geometry = stored_ras()
    write_dicom_series(mixed / "two", array, geometry, SERIES_UID)
    write_dicom_series(mixed / "two", array, geometry, OTHER_UID, prefix="other")
    client = client_for(mixed, model)
    assert "two" in [v["name"] for v in client.get("/api/volumes").json()["volumes"]]
    for url in ("/api/volumes/two", "/api/volumes/two/landmarks"):
        response = client.get(url)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert f"{SERIES_UID} (16 files)" in detail and f"{OTHER_UID} (16 files)" in detail
        assert "2 DICOM series in this folder" in detail and "split them" in detail
    assert model.calls == []


def test_the_listing_checks_each_series_folder_once_per_change(mixed, model, monkeypatch):
    from unilandmark.serve import volume_folder

    checked = []
    real = volume_folder.holds_dicom_series
    monkeypatch.setattr(volume_folder, "holds_dicom_series",
                        lambda folder: checked.append(folder.name) or real(folder))
    client = client_for(mixed, model)
    for _ in range(3):
        client.get("/api/volumes")
    client.get("/api/volumes/series_name/slice/axial/0")
    assert checked == ["series_name"]
    series = mixed / "series_name"
    (series / "notes.txt").write_text("added")
    before = series.stat().st_mtime_ns
    os.utime(series, ns=(before, before + 10**9))  # a coarse clock may not have moved
    client.get("/api/volumes")
    assert checked == ["series_name"] * 2
