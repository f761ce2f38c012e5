"""Long runs lose nothing: ``predict`` (images and volumes) writes as it goes and resumes, one
process per run folder (``train``, ``adapt``, ``calibrate``), and the refusals of
``adapt --resume`` into an empty folder and of a one-image calibration split
(docs/prediction.md, docs/training.md, docs/refusals.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.cli import predict as predict_cli
from unilandmark.core.folder_lock import HOLDER_NAME, LOCK_NAME, folder_lock
from unilandmark.predictions.table import read_predictions
from unilandmark.training.fit import fit

from .conftest import phantom_config


def _tiny(phantoms, out, epochs=2):
    return phantom_config(phantoms, out, domains=("head",), epochs=epochs, size=32, threads=1)


@pytest.fixture(scope="module")
def tiny_model(phantoms, tmp_path_factory):
    """A 2-epoch head model on 32 x 32 inputs (a couple of seconds): for the mechanics."""
    out = tmp_path_factory.mktemp("tiny")
    return fit(_tiny(phantoms, out), progress=False, log=lambda *_: None).best_path


def _table(phantoms, domain, train, out_dir, val=0):
    """A csv table of the first ``train`` (and ``val``) phantoms of ``domain``."""
    lines = (phantoms / domain / "landmarks.csv").read_text().splitlines()
    keep, counts = [], {"train": train, "val": val}
    for line in lines[1:]:
        cells = line.split(",")
        if counts.get(cells[2], 0) > 0:
            counts[cells[2]] -= 1
            cells[1] = str((phantoms / domain / cells[1]).resolve())
            keep.append(",".join(cells))
    path = out_dir / f"{domain}_{train}_{val}.csv"
    path.write_text("\n".join([lines[0], *keep]) + "\n")
    return path


# -- predict: written as it goes, resumed --------------------------------------------------
def test_a_killed_predict_resumes_to_the_csv_of_an_uninterrupted_run(
        tiny_model, phantoms, tmp_path, monkeypatch):
    runner = CliRunner()
    args = ["predict", str(phantoms / "head" / "images"), "--domain", "head",
            "--checkpoint", str(tiny_model), "--batch-size", "4", "--readers", "0",
            "--device", "cpu"]
    whole = tmp_path / "whole.csv"
    r = runner.invoke(app, [*args, "--out", str(whole)])
    assert r.exit_code == 0, r.output
    everyone = {rid for rid, _ in read_predictions(whole).points}
    assert len(everyone) == 40

    # the same batch, killed after its first batch of 4 images: the CSV is rewritten after
    # every image here (SAVE_EVERY_S 0), and the fifth rewrite never happens
    monkeypatch.setattr(predict_cli, "SAVE_EVERY_S", 0.0)
    monkeypatch.setattr(predict_cli, "SAVE_COST_FACTOR", 0.0)
    real, calls = predict_cli.save_rows, []

    def killed_after_the_first_batch(out, rows, *rest, **options):
        calls.append(len(rows))
        if len(calls) > 4:
            raise RuntimeError("killed")
        real(out, rows, *rest, **options)

    monkeypatch.setattr(predict_cli, "save_rows", killed_after_the_first_batch)
    part = tmp_path / "part.csv"
    r = runner.invoke(app, [*args, "--out", str(part)])
    assert isinstance(r.exception, RuntimeError)
    written = read_predictions(part)
    images = {rid for rid, _ in written.points}
    k = len({lm for _, lm in read_predictions(whole).points})
    assert len(images) == 4 and len(written.points) == 4 * k  # whole images only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.csv", "whole.csv"]

    monkeypatch.setattr(predict_cli, "save_rows", real)
    monkeypatch.setattr(predict_cli, "SAVE_EVERY_S", 10.0)
    r = runner.invoke(app, [*args, "--out", str(part), "--resume"])
    assert r.exit_code == 0, r.output
    assert f"--resume: 4 images already in {part} kept; predicting the other 36" in r.output
    assert part.read_bytes() == whole.read_bytes()
    # nothing left: said, and the file untouched
    r = runner.invoke(app, [*args, "--out", str(part), "--resume"])
    assert r.exit_code == 0 and "all 40 images are already in" in r.output
    assert part.read_bytes() == whole.read_bytes()


def test_resume_refuses_a_csv_of_another_domain(tiny_model, phantoms, tmp_path):
    out = tmp_path / "p.csv"
    out.write_text("image,landmark,x,y,domain\nhand_0000,1,3.0,4.0,hand\n")
    r = CliRunner().invoke(app, ["predict", str(phantoms / "head" / "images"), "--domain",
                                 "head", "--checkpoint", str(tiny_model), "--out", str(out),
                                 "--resume", "--device", "cpu"])
    assert r.exit_code == 2
    assert f"--resume: {out} holds predictions of domain hand, this run predicts head" \
        in r.output
    # without --resume an existing output is replaced (as before)
    r = CliRunner().invoke(app, ["predict", str(phantoms / "head" / "images" /
                                                "head_0000.png"), "--domain", "head",
                                 "--checkpoint", str(tiny_model), "--out", str(out),
                                 "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert {rid for rid, _ in read_predictions(out).points} == {"head_0000"}


# -- one process per run folder -------------------------------------------------------------
def test_a_second_train_on_a_locked_run_folder_is_refused(phantoms, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_tiny(phantoms, out, epochs=1).model_dump(mode="json")))
    train = ["train", str(config), "--no-progress"]
    with folder_lock(out):
        r = CliRunner().invoke(app, train)
        assert r.exit_code == 2, r.output
        assert (f"{out} is in use by another unilandmark process (pid {os.getpid()}, "
                "started ") in r.output
        assert "wait for that one to end, or use another folder" in r.output
        assert "Traceback" not in r.output
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, HOLDER_NAME]
    assert not out.exists()  # the lock made the folder; nothing else was written: removed
    # a run that fails inside the lock lets it go too
    r = CliRunner().invoke(app, [*train, "--resume"])
    assert r.exit_code == 2 and "no last.pt to resume" in r.output
    r = CliRunner().invoke(app, train)
    assert r.exit_code == 0, r.output
    assert LOCK_NAME not in {p.name for p in out.iterdir()}
    assert HOLDER_NAME not in {p.name for p in out.iterdir()}


def test_the_lock_names_another_process_and_dies_with_it(phantoms, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from unilandmark.core.folder_lock import folder_lock\n"
         f"with folder_lock({str(out)!r}):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(60)\n", "train", "other.yaml"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump(_tiny(phantoms, out).model_dump(mode="json")))
        r = CliRunner().invoke(app, ["train", str(config), "--resume", "--no-progress"])
        assert r.exit_code == 2, r.output
        assert f"(pid {holder.pid}, started " in r.output and "train other.yaml" in r.output
    finally:
        holder.kill()  # as a kill -9 would: no release, the files stay
        holder.wait()
    assert (out / LOCK_NAME).exists()
    with folder_lock(out):  # the system let go of the dead process's lock
        pass
    assert not (out / LOCK_NAME).exists()


# -- adapt and calibrate refusals -----------------------------------------------------------
def test_adapt_resume_into_an_empty_folder_is_refused_and_few_images_warned(
        tiny_model, phantoms, tmp_path):
    table = _table(phantoms, "hand", 2, tmp_path)
    out = tmp_path / "adapted"
    r = CliRunner().invoke(app, [
        "adapt", "--data", str(table), "--domain", "hand", "--dataset", "csv", "--opt",
        "domain=hand", "--checkpoint", str(tiny_model), "--out", str(out), "--no-check-old",
        "--epochs", "1", "--input-size", "32x32", "--no-progress", "--set",
        "train.cache_dir=null", "--resume"])
    assert r.exit_code == 2, r.output
    assert (f"{out}: --resume, but there is no adaptation to resume here (no "
            f"{out / 'stage1' / 'last.pt'}); start it without --resume") in r.output
    assert "hand has only 2 training image(s)" in r.stderr
    assert "not trustworthy" in r.stderr
    assert not out.exists()


def test_calibrate_on_a_one_image_split_is_refused(tiny_model, phantoms, tmp_path):
    table = _table(phantoms, "head", 3, tmp_path, val=1)
    cal = tmp_path / "cal.pt"
    r = CliRunner().invoke(app, ["calibrate", str(tiny_model), "--out", str(cal), "--domain",
                                 "head", "--dataset", "csv", "--root", str(table), "--opt",
                                 "domain=head", "--split", "val"])
    assert r.exit_code == 2, r.output
    assert "split 'val' has 1 image(s); calibration needs at least 2" in r.output
    assert "zero-size" not in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [table.name]


def test_a_killed_volume_predict_resumes_to_the_same_csv(tmp_path, monkeypatch):
    from unilandmark.data.synthetic3d import synthetic_volumes_dataset

    from .volume_learning import volume_config, write_volume_phantoms

    data = write_volume_phantoms(tmp_path / "volumes")
    model = fit(volume_config(data, tmp_path / "run", epochs=1), progress=False,
                log=lambda *_: None).best_path
    volumes = [r.image_path for r in synthetic_volumes_dataset(data).split_records("test")]
    runner = CliRunner()
    args = ["predict", *volumes, "--checkpoint", str(model), "--device", "cpu"]
    whole = tmp_path / "whole.csv"
    r = runner.invoke(app, [*args, "--out", str(whole)])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(predict_cli, "SAVE_EVERY_S", 0.0)
    monkeypatch.setattr(predict_cli, "SAVE_COST_FACTOR", 0.0)
    real, calls = predict_cli.save_volume_rows, []

    def killed_after_two(out, rows):
        calls.append(len(rows))
        if len(calls) > 2:
            raise RuntimeError("killed")
        real(out, rows)

    monkeypatch.setattr(predict_cli, "save_volume_rows", killed_after_two)
    part = tmp_path / "part.csv"
    r = runner.invoke(app, [*args, "--out", str(part)])
    assert isinstance(r.exception, RuntimeError)
    assert len({line.split(",")[0] for line in part.read_text().splitlines()[1:]}) == 2
    monkeypatch.setattr(predict_cli, "save_volume_rows", real)
    r = runner.invoke(app, [*args, "--out", str(part), "--resume"])
    assert r.exit_code == 0, r.output
    assert f"--resume: 2 volumes already in {part} kept; predicting the other " \
        f"{len(volumes) - 2}" in r.output
    assert part.read_bytes() == whole.read_bytes()
