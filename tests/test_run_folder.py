"""Runs are never lost or misreported: folder rules, resume checks, atomic metrics, and the
training loop's validation of splits and its unit-free selection score."""

import json

import pytest
from typer.testing import CliRunner

from unilandmark.checkpoints.checkpoint import load_checkpoint
from unilandmark.cli import app
from unilandmark.training.fit import fit, pick_device
from unilandmark.training.stages.base import selection_score

from .conftest import phantom_config


def _tiny(phantoms, out, **train):
    return phantom_config(phantoms, out, domains=("head",), epochs=2, size=32,
                          threads=1, **train)


def _quiet(*_):
    pass


def test_a_folder_holding_a_run_is_refused_then_resumed_or_overwritten(phantoms, tmp_path):
    out = tmp_path / "run"
    cfg = _tiny(phantoms, out)
    fit(cfg, progress=False, log=_quiet)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="holds another run.*--resume.*--overwrite"):
        fit(cfg, progress=False, log=_quiet)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # nothing was touched
    longer = _tiny(phantoms, out)
    longer.train.epochs = 3  # epochs may grow on resume
    fit(longer, resume=True, progress=False, log=_quiet)
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in lines] == [1, 2, 3]
    fit(cfg, overwrite=True, progress=False, log=_quiet)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and load_checkpoint(out / "last.pt")["epoch"] == 1


def test_resume_needs_a_run_and_the_same_settings(phantoms, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="no last.pt to resume"):
        fit(_tiny(phantoms, out), resume=True, progress=False, log=_quiet)
    assert not (out / "config.yaml").exists()
    fit(_tiny(phantoms, out), progress=False, log=_quiet)
    config_before = (out / "config.yaml").read_text()
    changed = _tiny(phantoms, out)
    changed.model.width = 8
    changed.optim.lr = 0.5
    with pytest.raises(ValueError, match="differs .* in model.width, optim.lr"):
        fit(changed, resume=True, progress=False, log=_quiet)
    assert (out / "config.yaml").read_text() == config_before


def test_resume_from_a_last_pt_with_edited_weights_names_the_file(phantoms, tmp_path):
    from unilandmark.checkpoints.checkpoint import save_checkpoint
    from unilandmark.core.errors import InputError

    out = tmp_path / "run"
    fit(_tiny(phantoms, out), progress=False, log=_quiet)
    state = load_checkpoint(out / "last.pt")
    dropped = sorted(state["model"])[0]
    del state["model"][dropped]
    save_checkpoint(out / "last.pt", {k: v for k, v in state.items()
                                      if k not in ("format", "versions")})
    longer = _tiny(phantoms, out)
    longer.train.epochs = 3
    with pytest.raises(InputError) as info:
        fit(longer, resume=True, progress=False, log=_quiet)
    assert str(info.value).startswith(f"{out / 'last.pt'}: the model: the weights do not fit")
    assert dropped in str(info.value)


def test_cli_refusal_is_one_line_with_exit_code_2(phantoms, tmp_path):
    import yaml

    out = tmp_path / "run"
    cfg = _tiny(phantoms, out)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    r = CliRunner().invoke(app, ["train", str(path), "--resume", "--no-progress"])
    assert r.exit_code == 2 and "no last.pt to resume" in r.output
    assert "Traceback" not in r.output


def test_orphan_temporaries_are_cleaned_and_metrics_rebuilt(phantoms, tmp_path):
    out = tmp_path / "run"
    cfg = _tiny(phantoms, out)
    fit(cfg, progress=False, stop_after_epoch=1, log=_quiet)
    orphan = out / ".last.pt.abc123.tmp"  # what a kill inside torch.save leaves
    orphan.write_bytes(b"half a checkpoint")
    (out / "metrics.jsonl").write_text("")  # a kill between checkpoint and metrics line
    fit(cfg, resume=True, progress=False, log=_quiet)
    assert not orphan.exists()
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in lines] == [1, 2]


def test_unknown_or_empty_split_fails_clearly(phantoms, tmp_path):
    cfg = _tiny(phantoms, tmp_path / "a")
    cfg.domains[0].val_split = "valid"
    with pytest.raises(ValueError, match="val_split 'valid' is not a split.*known splits: "
                                         "all, test, train, val"):
        fit(cfg, progress=False, log=_quiet)
    assert not (tmp_path / "a").exists()
    cfg = _tiny(phantoms, tmp_path / "b")
    cfg.domains[0].train_split = "trian"
    with pytest.raises(ValueError, match="train_split 'trian'"):
        fit(cfg, progress=False, log=_quiet)


def test_no_validation_is_said_and_best_is_last(phantoms, tmp_path):
    cfg = _tiny(phantoms, tmp_path / "r")
    cfg.domains[0].val_split = None
    said = []
    fit(cfg, progress=False, log=said.append)
    assert any("no validation split" in str(s) for s in said)
    assert load_checkpoint(tmp_path / "r" / "best.pt")["epoch"] == 1


def test_selection_score_is_unit_free():
    reference = {"head": 1.0, "chest": 100.0}  # mm and px
    a = {"head": {"mre": 0.5}, "chest": {"mre": 110.0}}  # head halves, chest +10 %
    b = {"head": {"mre": 1.5}, "chest": {"mre": 95.0}}  # head +50 %, chest -5 %
    assert selection_score(a, reference) < 1.0 < selection_score(b, reference)
    # a naive mean of MREs would pick b: the pixel domain dominates
    assert (0.5 + 110) / 2 > (1.5 + 95) / 2
    # the choice does not change with a domain's unit (chest in mm at 0.2 mm/px)
    scaled = {"head": 1.0, "chest": 20.0}
    a2 = {"head": {"mre": 0.5}, "chest": {"mre": 22.0}}
    assert selection_score(a2, scaled) == pytest.approx(selection_score(a, reference))


def test_devices_are_checked():
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="gpu0.*unknown device"):
        pick_device("gpu0")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA support|no CUDA device"):
            pick_device("cuda")
