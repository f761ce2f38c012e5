"""Bad inputs, part 3: a sentence, not a traceback, and refused before any work or write.

Each test asserts the exit code, that the message names the file and the fault, and that
nothing on disk was changed or left half-written (docs/refusals.md).
"""

import logging
import sys

import numpy as np
import pytest
import torch

from tests.bad_inputs import assert_refused, assert_unchanged, cli, phantom_images, snapshot
from unilandmark.data.adapters.catalog import csv_dataset
from unilandmark.training.dataset import LandmarkDataset

CONFIG = """\
out_dir: {out}
domains:
  - name: head
    dataset: csv
    root: {table}
    train_split: all
    val_split: null
    input_size: [32, 32]
train:
  epochs: 1
  device: {device}
  threads: {threads}
  batch_size: {batch}
"""


def _config(tmp_path, name="run.yaml", device="cpu", threads=1, batch=2, text=None):
    phantom_images(tmp_path / "img", ["a.png", "b.png"])
    (tmp_path / "t.csv").write_text("image,x1,y1\nimg/a.png,3,4\nimg/b.png,5,6\n")
    path = tmp_path / name
    path.write_text(text or CONFIG.format(out=tmp_path / "run", table=tmp_path / "t.csv",
                                          device=device, threads=threads, batch=batch))
    return path


def test_devices_are_checked_before_any_work(tmp_path):
    phantom_images(tmp_path, ["a.png"])
    before = snapshot(tmp_path)
    cuda = "cuda:99" if torch.cuda.is_available() else "cuda"
    fault = "CUDA device(s)" if torch.cuda.is_available() else "no CUDA support"
    r = cli("predict", tmp_path / "a.png", "--out", tmp_path / "p.csv", "--device", cuda)
    assert_refused(r, 2, f"--device {cuda}", fault)
    r = cli("predict", tmp_path / "a.png", "--out", tmp_path / "p.csv", "--device", "gpu")
    assert_refused(r, 2, "--device 'gpu': unknown device; use cpu, auto, cuda")
    assert_unchanged(tmp_path, before)
    r = cli("train", _config(tmp_path, device="tpu"))
    assert_refused(r, 2, "train.device 'tpu': unknown device")
    assert not (tmp_path / "run").exists()


def test_threads_and_batch_sizes_must_be_positive(tmp_path):
    r = cli("train", _config(tmp_path, threads=0))
    assert_refused(r, 2, "run.yaml: invalid config: train.threads: Input should be greater "
                         "than or equal to 1 (got 0)")
    r = cli("train", _config(tmp_path, batch=-1))
    assert_refused(r, 2, "run.yaml: invalid config: train.batch_size")
    before = snapshot(tmp_path)
    for value in ("0", "-1"):
        r = cli("predict", tmp_path / "img" / "a.png", "--out", tmp_path / "p.csv",
                "--batch-size", value)
        assert_refused(r, 2, "Invalid value for '--batch-size'")
    assert_unchanged(tmp_path, before)
    assert not (tmp_path / "run").exists()


def test_unwritable_outputs_are_refused_before_the_work(tmp_path):
    phantom_images(tmp_path, ["a.png"])
    (tmp_path / "t.csv").write_text("image,x1,y1\na.png,3,4\n")
    (tmp_path / "pred.csv").write_text("image,landmark,x,y\na,1,3,4\n")
    (tmp_path / "afile").write_text("a file, not a folder")
    before = snapshot(tmp_path)
    r = cli("predict", tmp_path / "a.png", "--out", tmp_path / "afile" / "p.csv")
    assert_refused(r, 2, f"--out {tmp_path / 'afile' / 'p.csv'}: cannot write there: "
                         f"{tmp_path / 'afile'} is a file, not a folder")
    r = cli("predict", tmp_path / "a.png", "--out", tmp_path)
    assert_refused(r, 2, f"--out {tmp_path}: is a folder; give a file name")
    r = cli("predict", tmp_path / "a.png", "--out", tmp_path / "p.csv", "--overlay",
            tmp_path / "afile")
    assert_refused(r, 2, "--overlay", "is a file, not a folder")
    r = cli("evaluate", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--predictions", tmp_path / "pred.csv", "--json", tmp_path / "afile" / "r.json")
    assert_refused(r, 2, "--json", "afile is a file, not a folder")
    r = cli("datasets", "make-synthetic", "--out", tmp_path / "afile" / "syn")
    assert_refused(r, 2, "--out", "afile is a file, not a folder")
    assert_unchanged(tmp_path, before)


def test_misspelt_adapter_option_names_the_valid_ones(tmp_path):
    phantom_images(tmp_path, ["a.png"])
    (tmp_path / "t.csv").write_text("image,x1,y1\na.png,3,4\n")
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "dha_hand", "--root", tmp_path, "--opt", "wrist_pairs=1,5")
    assert_refused(r, 2, "dha_hand: unknown option(s) wrist_pairs; valid options: labels, "
                         "images, wrist_pair")
    r = cli("datasets", "export", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--opt", "spacng=0.1", "--out", tmp_path / "gt.csv")
    assert_refused(r, 2, "csv: unknown option(s) spacng; valid options: images, spacing")
    assert_unchanged(tmp_path, before)


def test_broken_yaml_names_the_file_and_line(tmp_path):
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("  epochs: 1", "  epochs: [1"))
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    before = snapshot(tmp_path)
    r = cli("train", path)
    assert_refused(r, 2, "run.yaml: line ", "not valid YAML")
    line = int(r.output.split("run.yaml: line ")[1].split(",")[0])
    assert path.read_text().splitlines()[line - 1].strip().startswith(("device", "epochs"))
    r = cli("train", tmp_path / "list.yaml")
    assert_refused(r, 2, "list.yaml: expected a mapping of settings")
    assert_unchanged(tmp_path, before)
    r = cli("train", _config(tmp_path, name="ok.yaml"), "--set", "train.epochs=[1")
    assert_refused(r, 2, "--set 'train.epochs=[1': the value is line 1")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override,fault", [
    ("domains.5.root=x", "--set domains.5.root: domains has 1 item(s) (indices 0..0); no item 5"),
    ("domains.head.root=x", "domains is a list; use an index 0..0, not 'head'"),
    ("train.epochs.x=1", "--set train.epochs.x: train.epochs is a value (1), not a section"),
    ("train.epoch=3", "unknown key 'train.epoch' (valid here: epochs, batch_size"),
    ("train.epochs=many", "train.epochs: Input should be a valid integer"),
])
def test_bad_set_paths_are_one_line(tmp_path, override, fault):
    path = _config(tmp_path)
    before = snapshot(tmp_path)
    r = cli("train", path, "--set", override)
    assert_refused(r, 2, fault)
    assert_unchanged(tmp_path, before)


def test_corrupt_cache_entry_heals_itself(tmp_path, caplog):
    phantom_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "t.csv").write_text("image,x1,y1\na.png,3,4\nb.png,5,6\n")
    spec = csv_dataset(tmp_path / "t.csv")
    first = LandmarkDataset(spec, "all", (32, 32), cache_dir=tmp_path / "cache")
    entries = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 2
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # a torn write
    entries[1].write_bytes(b"not a cache entry")
    with caplog.at_level(logging.WARNING):
        again = LandmarkDataset(spec, "all", (32, 32), cache_dir=tmp_path / "cache")
    assert caplog.text.count("corrupt cache entry") == 2 and entries[0].name in caplog.text
    np.testing.assert_array_equal(again.images, first.images)
    healed = snapshot(tmp_path / "cache")
    LandmarkDataset(spec, "all", (32, 32), cache_dir=tmp_path / "cache")  # now a clean hit
    assert snapshot(tmp_path / "cache") == healed and len(healed) == 2


def test_models_and_make_synthetic_values_are_checked(tmp_path):
    before = snapshot(tmp_path)
    r = cli("models", "--domains", "head")
    assert_refused(r, 2, "--domains 'head': expected name=landmarks pairs")
    r = cli("models", "--domains", "head=0")
    assert_refused(r, 2, "bad item 'head=0'")
    r = cli("datasets", "make-synthetic", "--out", tmp_path / "s", "--size", "0x0")
    assert_refused(r, 2, "--size '0x0': width and height must be positive")
    r = cli("datasets", "make-synthetic", "--out", tmp_path / "s", "--size", "8x8")
    assert_refused(r, 2, "image size 8x8: each side needs at least 16 pixels")
    r = cli("datasets", "make-synthetic", "--out", tmp_path / "s", "--size", "big")
    assert_refused(r, 2, "--size 'big': expected WIDTHxHEIGHT")
    r = cli("datasets", "make-synthetic", "--out", tmp_path / "s", "--train", "-3")
    assert_refused(r, 2, "Invalid value for '--train'")
    r = cli("datasets", "make-synthetic", "--out", tmp_path / "s", "--domains", "knee")
    assert_refused(r, 2, "unknown phantom domain(s) ['knee']; known: head, hand, chest")
    assert_unchanged(tmp_path, before)
    assert not (tmp_path / "s").exists()


def test_tracebacks_only_for_bugs_or_with_debug(tmp_path, monkeypatch):
    (tmp_path / "t.csv").write_text("image,x1\n")
    r = cli("--debug", "datasets", "export", "csv", "--root", tmp_path / "t.csv", "--split",
            "all", "--out", tmp_path / "gt.csv")
    assert r.exit_code != 0 and not isinstance(r.exception, SystemExit)  # re-raised
    r = cli("datasets", "export", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--out", tmp_path / "gt.csv")
    assert_refused(r, 2, "t.csv")

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a real bug")

    monkeypatch.setattr(sys.modules["unilandmark.evaluation.scoring"], "export_ground_truth", bug)
    phantom_images(tmp_path, ["a.png"])
    (tmp_path / "t.csv").write_text("image,x1,y1\na.png,3,4\n")
    r = cli("datasets", "export", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--out", tmp_path / "gt.csv")
    assert isinstance(r.exception, ZeroDivisionError)  # not swallowed into a sentence
    assert not (tmp_path / "gt.csv").exists()
