"""Adaptation: model surgery (what is copied, fresh, frozen), the init: block through the
training loop, the adapt workflow and command, input-size advice, few-image shape models."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from unilandmark.checkpoints.checkpoint import load_checkpoint, stage_chain
from unilandmark.cli import app
from unilandmark.data.sizes import size_advice, suggest_input_size
from unilandmark.inference.detector import Detector
from unilandmark.models import build_model
from unilandmark.models import surgery as adapt
from unilandmark.models.layers import PRIOR_BIAS
from unilandmark.training.config import ConfigError, load_config
from unilandmark.training.fit import fit

SMALL = {"width": 8, "depth": 2, "global_width": 8}
HEAD, HAND = ["a", "b", "c"], ["p", "q", "r", "s"]


def _old_model(name="gu2net", domains=None, seed=0):
    torch.manual_seed(seed)
    model = build_model(name, domains or {"head": 3}, **SMALL)
    with torch.no_grad():  # weights unlike any fresh initialisation
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def _transplant(old, name="gu2net", sources=None, old_names=None, new_names=None):
    old_names = old_names or {"head": HEAD}
    new_names = new_names or {"hand": HAND}
    counts = {d: len(n) for d, n in {**old_names, **new_names}.items()}
    torch.manual_seed(1)
    model = build_model(name, counts, **SMALL)
    report = adapt.transplant(model, old.state_dict(), old_names, new_names,
                              {"hand": "head"} if sources is None else sources, name, SMALL)
    return model, report


# -- surgery ---------------------------------------------------------------------------
def test_gu2net_new_domain_copies_the_source_except_landmark_layers():
    old = _old_model()
    model, report = _transplant(old)
    got, src = model.state_dict(), old.state_dict()
    for key, value in src.items():  # every old weight is kept exactly
        assert torch.equal(got[key], value), key
    fresh = set(report.fresh["hand"])
    assert fresh == {"local.outputs.hand.weight", "local.outputs.hand.bias",
                     "glob.outputs.hand.weight", "glob.outputs.hand.bias",
                     "glob.local_in.hand.weight", "glob.local_in.hand.bias"}
    assert torch.all(got["local.outputs.hand.bias"] == PRIOR_BIAS)  # the background prior
    copied = report.copied["hand"]
    for key in ("local.inputs.hand.weight", "local.trunk.stem.first.depthwise.hand.weight",
                "local.trunk.stem.first.norm.hand.running_var", "glob.body.hand.layers.0.0.weight",
                "glob.image_in.hand.weight"):
        assert key in copied
        assert torch.equal(got[key], src[key.replace(".hand.", ".head.")]), key
    assert len(copied) + len(fresh) == sum(".hand." in k for k in got)


def test_same_landmark_names_copy_the_output_layers_too():
    old = _old_model()
    model, report = _transplant(old, new_names={"hand": list(HEAD)})
    assert "hand" not in report.fresh
    assert torch.equal(model.state_dict()["local.outputs.hand.weight"],
                       old.state_dict()["local.outputs.head.weight"])


def test_mean_source_averages_the_old_domains():
    old = _old_model(domains={"head": 3, "chest": 3})
    model, _ = _transplant(old, sources={"hand": "mean"},
                           old_names={"head": HEAD, "chest": ["x", "y", "z"]})
    src, got = old.state_dict(), model.state_dict()
    key = "local.trunk.down.0.first.depthwise.{}.weight"
    assert torch.allclose(got[key.format("hand")],
                          (src[key.format("head")] + src[key.format("chest")]) / 2)


@pytest.mark.parametrize("name,fresh_module", [("heatmap", "heads.hand"),
                                               ("unet", "local.outputs.hand")])
def test_other_models_transplant_their_per_domain_parts(name, fresh_module):
    old = _old_model(name)
    model, report = _transplant(old, name=name)
    fresh = {k.rsplit(".", 1)[0] for k in report.fresh["hand"]}
    assert fresh_module in {f.rsplit(".", 1)[0] if name == "heatmap" else f for f in fresh}
    assert torch.equal(model.state_dict()["local.inputs.hand.weight" if name == "unet"
                                          else "inputs.hand.weight"],
                       old.state_dict()["local.inputs.head.weight" if name == "unet"
                                        else "inputs.head.weight"])


def test_transplant_refuses_unknown_sources_and_other_architectures():
    old = _old_model()
    with pytest.raises(ValueError, match="source 'knee' is not a domain"):
        _transplant(old, sources={"hand": "knee"})
    with pytest.raises(ValueError, match="need a source"):
        _transplant(old, sources={})
    other = build_model("gu2net", {"head": 3}, width=16, depth=2, global_width=8)
    with pytest.raises(ValueError, match="do not fit"):
        _transplant(other)


def _step(model, domain, params):
    opt = torch.optim.Adam(params, lr=1e-2)
    model.train()
    x = torch.rand(2, 1, 32, 32)
    loss = model(x, domain)["heatmap"].mean()
    loss.backward()
    opt.step()


@pytest.mark.parametrize("name", ["gu2net", "unet"])
def test_frozen_parts_do_not_change_in_a_training_step(name):
    model, _ = _transplant(_old_model(name), name=name)
    adapt.freeze(model, ["hand"], "frozen")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = adapt.parameter_groups(model, ["hand"], "frozen", 0.1, 1e-3)
    assert len(groups) == 1  # only the new domain's parts train
    _step(model, "hand", groups[0]["params"])
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(".hand." in k for k in changed), sorted(changed)[:5]
    # shared BatchNorm (the plain U-Net) kept its running statistics
    assert all(".hand." in k for k in changed if "running" in k)


def test_finetune_groups_scale_the_shared_learning_rate():
    model, _ = _transplant(_old_model())
    assert adapt.freeze(model, ["hand"], "finetune") == []
    groups = adapt.parameter_groups(model, ["hand"], "finetune", 0.1, 1e-3)
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    assert groups[1]["lr"] == pytest.approx(1e-4)
    new = {id(p) for p in groups[0]["params"]}
    named = dict(model.named_parameters())
    assert new == {id(p) for k, p in named.items() if ".hand." in k}


# -- input sizes and few-image shape models ----------------------------------------------
def test_size_advice_warns_about_aspect_and_suggests_an_input():
    hands = [(1600, 2350), (1200, 2200), (1558, 1925), (1216, 1913)]
    advice = size_advice(hands, (208, 256))
    assert any("median aspect" in w and "suggested" in w for w in advice.warnings)
    w, h = advice.suggested
    assert w % 16 == 0 and h % 16 == 0 and abs(w * h - 208 * 256) < 0.15 * 208 * 256
    assert w / h == pytest.approx(np.median([a / b for a, b in hands]), abs=0.06)
    assert size_advice([(800, 1000), (810, 1000)], (160, 200)).warnings == []
    mixed = size_advice([(400, 1000), (1000, 1000), (3000, 3000)], (192, 192))
    assert any("shape" in t for t in mixed.warnings) and any("size" in t for t in
                                                             mixed.warnings)
    assert suggest_input_size([(1000, 1000)], 10) == (32, 32)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_domain_metadata_works_with_a_handful_of_images(phantoms, tmp_path, n):
    from unilandmark.training.stages.image import ImageStage, domain_meta

    table = few_table(phantoms, "hand", n, tmp_path)
    config = load_config(data={"out_dir": str(tmp_path / "run"), "domains": [
        {"name": "hand", "dataset": "csv", "root": str(table), "options": {"domain": "hand"},
         "input_size": [64, 64], "val_split": None}], "train": {"cache_dir": None}})
    stage = ImageStage(config, log=lambda *_: None)
    meta = domain_meta(stage.domain_data["hand"])
    assert (meta["shape"] is None) == (n < 3)
    if meta["shape"] is not None:
        from unilandmark.inference.shape import ShapeModel, fit_shape

        shape = ShapeModel.from_dict(meta["shape"])
        record = stage.domain_data["hand"].records.train[0]
        fit = fit_shape(shape, record.points)
        assert np.all(np.isfinite(fit.residual))


# -- the init: block through the training loop -------------------------------------------
def few_table(phantoms, domain, n, out_dir, val=0, test=0):
    """A csv table of the first ``n`` training phantoms of ``domain`` (plus ``val`` and
    ``test`` ones), images by absolute path."""
    lines = (phantoms / domain / "landmarks.csv").read_text().splitlines()
    header, rows = lines[0], [r.split(",") for r in lines[1:]]
    keep, counts = [], {"train": n, "val": val, "test": test}
    for r in rows:
        if counts.get(r[2], 0) > 0:
            counts[r[2]] -= 1
            r[1] = str((phantoms / domain / r[1]).resolve())
            keep.append(",".join(r))
    path = out_dir / f"{domain}_{n}.csv"
    path.write_text("\n".join([header, *keep]) + "\n")
    return path


def _dom(name, root, dataset="synthetic", **kw):
    options = {"domain": name}
    return {"name": name, "dataset": dataset, "root": str(root), "options": options,
            "input_size": [64, 64], "sigma": 2.0, **kw}


MODEL = {"name": "gu2net", "width": 16, "depth": 3, "global_width": 32}
QUIET = {"progress": False, "log": lambda *_: None}


def _config(out, domains, epochs, init=None, **train):
    data = {"out_dir": str(out), "domains": domains, "optim": {"cycle_epochs": 3},
            "train": {"epochs": epochs, "batch_size": 6, "cache_dir": None, **train}}
    if init is None:
        data["model"] = MODEL
    else:
        data["init"] = init
    return load_config(data=data)


@pytest.fixture(scope="module")
def head_model(phantoms, tmp_path_factory):
    """A phantom-head GU2Net after 2 epochs: enough for the mechanics."""
    out = tmp_path_factory.mktemp("head2")
    return fit(_config(out, [_dom("head", phantoms)], 2), **QUIET).best_path


def test_init_block_is_validated():
    with pytest.raises(ConfigError, match="init.shared"):
        load_config(data={"domains": [_dom("hand", "x")],
                          "init": {"checkpoint": "x.pt", "shared": "thawed"}})
    with pytest.raises(ConfigError, match="init.shared_lr_scale"):
        load_config(data={"domains": [_dom("hand", "x")],
                          "init": {"checkpoint": "x.pt", "shared_lr_scale": 2}})


def test_adapted_checkpoint_serves_old_and_new_domains(phantoms, head_model, tmp_path):
    table = few_table(phantoms, "hand", 3, tmp_path, val=2)
    hand = _dom("hand", table, "csv", val_split="val")
    lines = []
    config = _config(tmp_path / "run", [hand, _dom("head", phantoms)], 2,
                     {"checkpoint": str(head_model), "domains": {"hand": "head"},
                      "replay": False})
    result = fit(config, progress=False, log=lines.append)
    state = load_checkpoint(result.best_path)
    assert set(state["domains"]) == {"head", "hand"}
    assert state["adaptation"]["sources"] == {"hand": "head"}
    assert "head" in state["adaptation"]["before"]  # measured before the first step
    assert any(line.startswith("before adaptation: head") for line in lines)
    assert any(line.startswith("old domain head:") for line in lines)
    old = load_checkpoint(head_model)
    assert state["domains"]["head"] == old["domains"]["head"]  # old metadata kept
    detector = Detector.from_checkpoint(result.best_path)
    image = phantoms / "hand" / "images" / "hand_0030.png"
    assert detector.predict(image, "hand").points.shape == (12, 2)
    assert detector.predict(image, "head").points.shape == (8, 2)
    # without replay the old domain never trains: only validated
    metrics = [json.loads(x) for x in (result.out_dir / "metrics.jsonl").read_text()
               .splitlines()]
    assert all(set(e["val"]) == {"head", "hand"} for e in metrics)
    assert all("before_mre" in e["val"]["head"] for e in metrics)


def test_frozen_adaptation_leaves_the_old_domain_exactly(phantoms, head_model, tmp_path):
    table = few_table(phantoms, "hand", 1, tmp_path)  # one image: drawn twice per batch
    config = _config(tmp_path / "run", [_dom("hand", table, "csv", val_split=None)], 2,
                     {"checkpoint": str(head_model), "domains": {"hand": "head"},
                      "shared": "frozen"})
    result = fit(config, **QUIET)
    new, old = load_checkpoint(result.best_path)["model"], load_checkpoint(head_model)["model"]
    for key, value in old.items():
        assert torch.equal(new[key], value), key
    copied = {k: old[k.replace(".hand.", ".head.")] for k in new if ".hand." in k and
              "outputs" not in k and "local_in" not in k}
    assert copied and all(not torch.equal(new[k], v) for k, v in copied.items()
                          if k.endswith(".weight"))  # the new domain's parts trained


def test_adaptation_resumes_exactly(phantoms, head_model, tmp_path):
    table = few_table(phantoms, "hand", 4, tmp_path)
    hand = _dom("hand", table, "csv", val_split=None)
    init = {"checkpoint": str(head_model), "domains": {"hand": "head"}}
    straight = fit(_config(tmp_path / "a", [hand, _dom("head", phantoms)], 3, init), **QUIET)
    cut = _config(tmp_path / "b", [hand, _dom("head", phantoms)], 3, init)
    fit(cut, stop_after_epoch=2, **QUIET)
    resumed = fit(cut, resume=True, **QUIET)
    a, b = load_checkpoint(straight.last_path), load_checkpoint(resumed.last_path)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # replay drew head batches: the head's own parts moved (slowly)
    old = load_checkpoint(head_model)["model"]
    assert not torch.equal(a["model"]["local.inputs.head.weight"],
                           old["local.inputs.head.weight"])


def test_init_refuses_what_cannot_work(phantoms, head_model, tmp_path):
    init = {"checkpoint": str(head_model), "domains": {"hand": "head"}}
    with pytest.raises(ValueError, match="already in"):
        fit(_config(tmp_path / "a", [_dom("head", phantoms)], 1,
                    {"checkpoint": str(head_model)}), **QUIET)
    with pytest.raises(ValueError, match="keeps the checkpoint's architecture"):
        config = load_config(data={**_config(tmp_path / "b", [_dom("hand", phantoms)], 1,
                                             init).model_dump(mode="json"),
                                   "model": {**MODEL, "width": 8}})
        fit(config, **QUIET)
    with pytest.raises(ValueError, match="init.stage 1"):
        fit(_config(tmp_path / "c", [_dom("hand", phantoms)], 1, {**init, "stage": 1}),
            **QUIET)
    with pytest.raises(ValueError, match="an old domain keeps its input"):
        fit(_config(tmp_path / "d", [_dom("hand", phantoms),
                                     {**_dom("head", phantoms), "input_size": [48, 48]}], 1,
                    init), **QUIET)


# -- the workflow and the command -----------------------------------------------------
@pytest.fixture(scope="module")
def head_cascade(phantoms, head_model, tmp_path_factory):
    """The 2-epoch head model with a 1-epoch patch stage on top."""
    out = tmp_path_factory.mktemp("head_cascade")
    config = load_config(data={
        "out_dir": str(out), "stage": {"kind": "patch", "previous": str(head_model),
                                       "patch_size": 16, "scale": 1.0},
        "model": {"name": "unet", "width": 8, "depth": 2},
        "train": {"epochs": 1, "batch_size": 8, "cache_dir": None,
                  "max_steps_per_epoch": 3}})
    return fit(config, **QUIET).best_path


def _adapt_args(phantoms, table, out, checkpoint, *extra):
    return ["adapt", "--data", str(table), "--domain", "hand", "--dataset", "csv",
            "--opt", "domain=hand", "--checkpoint", str(checkpoint), "--out", str(out),
            "--old-data", f"head={phantoms}", "--epochs", "1", "--input-size", "64x64",
            "--no-progress", "--set", "train.cache_dir=null", *extra]


def test_adapt_command_refines_a_cascade(phantoms, head_cascade, tmp_path):
    table = few_table(phantoms, "hand", 4, tmp_path)
    out = tmp_path / "adapted"
    result = CliRunner().invoke(app, _adapt_args(phantoms, table, out, head_cascade,
                                                 "--patch-epochs", "1"))
    assert result.exit_code == 0, result.output
    assert "forgetting: head" in result.output
    chain = stage_chain(load_checkpoint(out / "model.pt"))
    assert [s["kind"] for s in chain] == ["image", "patch"]
    assert all(set(s["domains"]) == {"head", "hand"} for s in chain)
    summary = json.loads((out / "adaptation.json").read_text())
    head = summary["old_domains"]["head"]
    assert head["before"]["unit"] == "mm" and "change_percent" in head
    assert "| head |" in (out / "adaptation.md").read_text()
    detector = Detector.from_checkpoint(out / "model.pt")
    assert len(detector.refiners) == 1
    image = phantoms / "hand" / "images" / "hand_0030.png"
    assert detector.predict(image, "hand").stage_confidence.shape == (2, 12)
    # the same folder again: refused, then --resume finds every stage finished
    again = CliRunner().invoke(app, _adapt_args(phantoms, table, out, head_cascade))
    assert again.exit_code == 2 and "holds another run" in again.output
    resumed = CliRunner().invoke(app, _adapt_args(phantoms, table, out, head_cascade,
                                                  "--patch-epochs", "1", "--resume"))
    assert resumed.exit_code == 0 and "nothing to do" in resumed.output


def test_adapt_without_refinement_keeps_the_old_refiner(phantoms, head_cascade, tmp_path):
    table = few_table(phantoms, "hand", 4, tmp_path)
    out = tmp_path / "adapted"
    result = CliRunner().invoke(app, _adapt_args(phantoms, table, out, head_cascade,
                                                 "--no-refine", "--shared", "frozen"))
    assert result.exit_code == 0, result.output
    chain = stage_chain(load_checkpoint(out / "model.pt"))
    assert set(chain[0]["domains"]) == {"head", "hand"}
    assert set(chain[1]["domains"]) == {"head"}  # the old patch stage, head only
    summary = json.loads((out / "adaptation.json").read_text())
    head = summary["old_domains"]["head"]
    assert head["change_percent"] == pytest.approx(0.0, abs=1e-9)  # frozen: unchanged
    image = phantoms / "hand" / "images" / "hand_0030.png"
    detector = Detector.from_checkpoint(out / "model.pt")
    assert detector.predict(image, "hand").stage_confidence.shape == (1, 12)


def test_adapt_command_names_bad_arguments(phantoms, head_model, tmp_path):
    table = few_table(phantoms, "hand", 4, tmp_path)
    runner = CliRunner()
    bad = runner.invoke(app, _adapt_args(phantoms, table, tmp_path / "o", head_model,
                                         "--from-domain", "knee"))
    assert bad.exit_code == 2 and "--from-domain knee" in bad.output
    bad = runner.invoke(app, _adapt_args(phantoms, table, tmp_path / "o", head_model,
                                         "--replay", "--old-data", f"head={tmp_path}/none"))
    assert bad.exit_code == 2 and "not found" in bad.output
    bad = runner.invoke(app, ["adapt", "--data", str(table), "--domain", "head",
                              "--dataset", "csv", "--checkpoint", str(head_model),
                              "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "already has a domain 'head'" in bad.output


def test_site_in_place_without_refinement_drops_the_old_refiner(phantoms, head_cascade,
                                                               tmp_path):
    """``--domain head`` on a one-domain cascade, ``--no-refine``: the old patch stage
    refined the replaced convention only, so it goes; stage 1 predicts the site."""
    table = few_table(phantoms, "head", 4, tmp_path)
    out = tmp_path / "site"
    args = ["adapt", "--data", str(table), "--domain", "head", "--dataset", "csv",
            "--opt", "domain=head", "--checkpoint", str(head_cascade), "--out", str(out),
            "--epochs", "1", "--no-refine", "--no-progress", "--set", "train.cache_dir=null"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "adapted in place" in result.output and "uncalibrated" in result.output
    chain = stage_chain(load_checkpoint(out / "model.pt"))
    assert [s["kind"] for s in chain] == ["image"] and set(chain[0]["domains"]) == {"head"}
    image = phantoms / "head" / "images" / "head_0030.png"
    assert Detector.from_checkpoint(out / "model.pt").predict(image).points.shape == (8, 2)


def test_a_site_under_its_own_name_keeps_the_source_domain(phantoms, head_model, tmp_path):
    """``--domain clinic --from-domain head`` with the head's landmarks: site mode (the
    source's input size and shape), the model serves head and clinic."""
    table = few_table(phantoms, "head", 4, tmp_path)
    out = tmp_path / "clinic"
    result = CliRunner().invoke(app, [
        "adapt", "--data", str(table), "--domain", "clinic", "--from-domain", "head",
        "--dataset", "csv", "--opt", "domain=head", "--checkpoint", str(head_model),
        "--out", str(out), "--epochs", "1", "--old-data", f"head={phantoms}",
        "--no-progress", "--set", "train.cache_dir=null"])
    assert result.exit_code == 0, result.output
    assert "added beside head" in result.output
    first = stage_chain(load_checkpoint(out / "model.pt"))[0]
    assert set(first["domains"]) == {"head", "clinic"}
    assert first["domains"]["clinic"]["shape"] == first["domains"]["head"]["shape"]
    assert first["domains"]["clinic"]["input_size"] == first["domains"]["head"]["input_size"]
