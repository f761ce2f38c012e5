"""Values read from model files are checked before use (docs/refusals.md, "Model files").

A small real model file (a two-stage cascade built with ``build_model``, untrained, written
by ``save_model_file``) is edited the way a tester did: its header, its ONNX metadata, its
tensors. Each edit must end in ONE sentence naming the file and the fault (an
``InputError``, exit code 2 on the command line), before anything large is allocated:
never a traceback, a ``ZeroDivisionError``, a ``RecursionError``, a bare key name or an
attempt at tens of gigabytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.bad_inputs import assert_refused, cli, phantom_images
from unilandmark import Detector
from unilandmark.checkpoints.checkpoint import load_checkpoint, save_checkpoint, save_model_file
from unilandmark.core.errors import InputError
from unilandmark.core.geometry import patch_scale
from unilandmark.core.jsontext import json_depth, read_json
from unilandmark.data.spreadsheet import formula_restored, formula_safe
from unilandmark.models import build_model
from unilandmark.predictions.table import read_prediction_file, write_predictions
from unilandmark.predictions.volume_table import volume_rows, write_volume_predictions

NAMES = ["tip", "base", "apex"]


def _state() -> dict:
    """A two-stage cascade (gu2net whole image, heatmap patch stage), tiny and untrained."""
    torch.manual_seed(0)
    meta = {"landmark_names": list(NAMES), "num_landmarks": 3, "input_size": [32, 32],
            "resize": "stretch", "sigma": 2.0, "spacing": [0.5, 0.5], "flip_pairs": [],
            "shape": None}
    first = {"kind": "image",
             "config": {"model": {"name": "gu2net", "width": 4, "depth": 2,
                                  "global_width": 8}},
             "domains": {"head": meta},
             "model": build_model("gu2net", {"head": 3}, width=4, depth=2,
                                  global_width=8).state_dict()}
    return {"kind": "patch",
            "config": {"model": {"name": "heatmap", "width": 4, "depth": 2},
                       "stage": {"kind": "patch", "patch_size": 16, "scale": 1.0,
                                 "sigma": 1.5}},
            "domains": {"head": {**meta, "apply": [True, True, False]}},
            "model": build_model("heatmap", {"head": 3}, width=4, depth=2).state_dict(),
            "previous": first}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    save_model_file(path, _state(), {"note": "crafted in a test"})
    return path


def _edited(src: Path, dst: Path, stages=None, metadata=None, tensors=None) -> Path:
    """``src`` rewritten with its ``stages`` list, metadata dict and tensors dict passed
    through the given functions (each edits in place)."""
    with safe_open(str(src), framework="pt") as fh:
        meta = dict(fh.metadata())
        weights = {k: fh.get_tensor(k) for k in fh.keys()}
    if stages is not None:
        parsed = json.loads(meta["stages"])
        stages(parsed)
        meta["stages"] = json.dumps(parsed)
    if metadata is not None:
        metadata(meta)
    if tensors is not None:
        tensors(weights)
    save_file(weights, str(dst), metadata=meta)
    return dst


def _refused(path: Path, *needles: str, kind=InputError) -> str:
    """Loading ``path`` for prediction is refused with one sentence holding the file name
    and every needle."""
    with pytest.raises(kind) as info:
        Detector.from_checkpoint(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


def test_the_crafted_model_file_itself_predicts(model_file):
    result = Detector.from_checkpoint(model_file).predict(
        np.random.default_rng(0).random((40, 48)).astype(np.float32), spacing=(0.5, 0.5))
    assert result.points.shape == (3, 2) and result.names == tuple(NAMES)


# 1. sizes, counts and scales


@pytest.mark.parametrize("size, needle", [
    ([0, 0], "input_size [0, 0] is outside 8..4096"),
    ([100000, 100000], "input_size [100000, 100000] is outside 8..4096"),
    ([4096, 4096, 4096], "input_size must be 2 whole numbers"),
    ("big", "input_size must be 2 whole numbers")])
def test_an_input_size_beyond_the_limits_is_the_files_fault(model_file, tmp_path, size,
                                                             needle):
    def edit(stages):
        stages[0]["domains"]["head"]["input_size"] = size

    text = _refused(_edited(model_file, tmp_path / "m.safetensors", edit),
                    "stage0 ('image'): domain 'head':", needle)
    assert "smaller image" not in text


@pytest.mark.parametrize("key, value, needle", [
    ("num_landmarks", 10 ** 9, "num_landmarks 1000000000 is outside 1..1000"),
    ("num_landmarks", 4, "landmark_names must list 4 names"),
    ("apply", [True], "apply must be 3 true/false values"),
    ("flip_pairs", [["tip", "nose"]], "flip_pairs must be pairs of its landmark names"),
    ("spacing", [0, 0], "spacing: spacing must be positive"),
    ("calibration", {"features": ["stage1"], "mean": [0.0], "scale": [1.0],
                     "weights": [1.0, 2.0], "bias": 0.0, "threshold": 0.5},
     "calibration: weights must be 1 finite numbers")])
def test_counts_that_do_not_fit_are_refused(model_file, tmp_path, key, value, needle):
    def edit(stages):
        stages[1]["domains"]["head"][key] = value

    _refused(_edited(model_file, tmp_path / "m.safetensors", edit), needle)


@pytest.mark.parametrize("key, value, needle", [
    ("scale", 1e-6, "patch.scale: Input should be greater than or equal to 0.25"),
    ("scale_mm", 1e-9, "patch.scale_mm: Input should be greater than or equal to 0.001")])
def test_a_patch_scale_that_would_enlarge_every_image_is_refused(model_file, tmp_path, key,
                                                                 value, needle):
    def edit(stages):
        stages[1]["config"]["stage"][key] = value

    _refused(_edited(model_file, tmp_path / "m.safetensors", edit), "stage1 ('patch')",
             needle)


def test_a_scale_mm_that_an_images_spacing_makes_extreme_is_refused_per_image():
    assert patch_scale((0.1, 0.1), 2.0, 0.2) == pytest.approx(2.0)
    with pytest.raises(InputError, match="is 0.0001 pixels per patch pixel, outside"):
        patch_scale((10.0, 10.0), 2.0, 1e-3)


# 3. network sizes


@pytest.mark.parametrize("key, value", [("width", 100000), ("depth", 40),
                                        ("global_width", 10 ** 6), ("dilations", [1, 10 ** 6])])
def test_a_network_size_beyond_the_limits_is_refused_before_building(model_file, tmp_path,
                                                                     key, value):
    def edit(stages):
        stages[0]["config"]["model"][key] = value

    path = _edited(model_file, tmp_path / "m.safetensors", edit)
    with pytest.raises(InputError) as info:  # at reading, before any network is built
        load_checkpoint(path)
    text = str(info.value)
    assert text.startswith(f"{path}: stage0 ('image'): model.{key}") and \
        "less than or equal to" in text, text


def test_training_configs_share_the_network_limits_and_the_shipped_ones_load():
    from unilandmark.training.config import load_config

    root = Path(__file__).resolve().parents[1]
    shipped = [*sorted((root / "configs").glob("*.yaml")),
               root / "src/unilandmark/workflows/configs/demo.yaml"]
    for path in shipped:
        load_config(path)
    with pytest.raises(ValueError, match="less than or equal to 256"):
        load_config(data={"domains": [{"name": "h", "dataset": "synthetic", "root": "x"}],
                          "model": {"name": "gu2net", "width": 100000}})


# 2. stages and tensors


def test_stages_metadata_that_is_not_a_list_is_refused(model_file, tmp_path):
    def edit(meta):
        meta["stages"] = json.dumps({"kind": "image"})

    path = _edited(model_file, tmp_path / "m.safetensors", metadata=edit)
    _refused(path, "metadata 'stages' must be a JSON list of stages, got an object")

    def text(meta):
        meta["stages"] = "not json"

    path = _edited(model_file, tmp_path / "t.safetensors", metadata=text)
    _refused(path, "metadata 'stages': not valid JSON")


def test_missing_and_unexpected_tensors_are_named(model_file, tmp_path):
    def edit(weights):
        for name in [k for k in weights if k.startswith("stage0.local.outputs")]:
            del weights[name]
        weights["stage1.extra.weight"] = torch.zeros(2)

    path = _edited(model_file, tmp_path / "m.safetensors", tensors=edit)
    text = _refused(path, "stage0 ('image'): the weights do not fit the network",
                    "missing ('local.outputs.head.weight'")
    assert "unexpected (" not in text  # the first stage is named first
    path = _edited(model_file, tmp_path / "x.safetensors",
                   tensors=lambda w: w.update({"stage1.extra.weight": torch.zeros(2)}))
    _refused(path, "stage1 ('patch')", "1 unexpected ('extra.weight')")


def test_a_tensor_of_the_wrong_shape_is_named(model_file, tmp_path):
    with safe_open(str(model_file), framework="pt") as fh:
        key = next(k for k in fh.keys() if k.startswith("stage1."))
        shape = list(fh.get_slice(key).get_shape())

    def edit(weights):
        weights[key] = torch.zeros(7)

    _refused(_edited(model_file, tmp_path / "m.safetensors", tensors=edit),
             f"stage1 ('patch'): tensor {key[7:]!r} has shape [7] where the network needs "
             f"{shape}")


def test_a_tensor_that_belongs_to_no_stage_is_refused(model_file, tmp_path):
    path = _edited(model_file, tmp_path / "m.safetensors",
                   tensors=lambda w: w.update({"stage9.x": torch.zeros(1)}))
    _refused(path, "tensor 'stage9.x' belongs to no stage")


# 4. nesting


@pytest.mark.parametrize("key", ["provenance", "stages", "versions"])
def test_json_nested_100000_deep_is_refused_with_a_sentence(model_file, tmp_path, key):
    def edit(meta):
        meta[key] = "[" * 100_000 + "]" * 100_000

    _refused(_edited(model_file, tmp_path / "m.safetensors", metadata=edit),
             f"metadata '{key}': JSON nested 100000 levels deep, more than the limit of 64")


def test_json_depth_counts_brackets_outside_strings_only():
    assert json_depth('{"a": [1, "]]]][[[[", {"b": null}]}') == 3
    assert json_depth("3") == 0
    assert read_json('{"a": [1]}', "x") == {"a": [1]}
    with pytest.raises(InputError, match="x: not valid JSON"):
        read_json("{", "x")


def test_slim_names_a_provenance_file_that_is_not_json(model_file, tmp_path):
    notjson = tmp_path / "notjson.txt"
    notjson.write_text("data: isbi\n")
    r = cli("slim", model_file, tmp_path / "out.safetensors", "--provenance", notjson)
    assert_refused(r, 2, "notjson.txt", "not valid JSON")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    r = cli("slim", model_file, tmp_path / "out.safetensors", "--provenance", deep)
    assert_refused(r, 2, "deep.json", "nested 100000 levels deep")
    assert not (tmp_path / "out.safetensors").exists()


# 5. missing keys: sentences, not bare key names


def test_a_stage_without_config_is_a_sentence_not_a_key_name(model_file, tmp_path):
    def edit(stages):
        del stages[0]["config"]

    _refused(_edited(model_file, tmp_path / "m.safetensors", edit),
             "stage0 ('image') has no 'config'")

    def no_stages(meta):
        del meta["stages"]

    _refused(_edited(model_file, tmp_path / "s.safetensors", metadata=no_stages),
             "the model file has no 'stages' metadata")


def test_torch_checkpoints_without_model_or_refine_config_are_sentences(tmp_path):
    state = _state()
    no_model = {k: v for k, v in state["previous"].items() if k != "model"}
    save_checkpoint(tmp_path / "a.pt", no_model)
    with pytest.raises(InputError, match=r"a\.pt: stage0 \('image'\) has no 'model'"):
        load_checkpoint(tmp_path / "a.pt")
    old = {"kind": "cascade", "stage1": state["previous"], "refiner": state["model"],
           "refine_domains": {"head": 3}}
    save_checkpoint(tmp_path / "b.pt", old)
    with pytest.raises(InputError, match=r"b\.pt: .*old cascade layout without "
                                         r"'refine_config'"):
        load_checkpoint(tmp_path / "b.pt")


def test_the_command_line_prints_one_line_for_a_crafted_model_file(model_file, tmp_path):
    def edit(stages):
        stages[0]["config"]["model"]["width"] = 100000

    path = _edited(model_file, tmp_path / "m.safetensors", edit)
    image = phantom_images(tmp_path, ["a.png"])[0]
    r = cli("predict", image, "--checkpoint", path, "--out", tmp_path / "p.csv")
    out = assert_refused(r, 2, "model.width")
    assert "error: model\n" not in out and not (tmp_path / "p.csv").exists()


# 6. landmark names


@pytest.mark.parametrize("name", ["tip\nx", "\x1b[31mred", "a\u202eb", "", "x" * 500])
def test_landmark_names_with_control_characters_are_refused(model_file, tmp_path, name):
    def edit(stages):
        for stage in stages:
            stage["domains"]["head"]["landmark_names"][1] = name

    _refused(_edited(model_file, tmp_path / "m.safetensors", edit), "landmark name")


def test_a_formula_in_a_name_is_written_as_text_and_read_back(tmp_path):
    cells = ["=cmd|' /C calc'!A0", "+1+1", "-x", "@SUM(A1)", "\tx", "plain", "-3.5", "1e-05"]
    assert [formula_safe(c) for c in cells] == [
        "'=cmd|' /C calc'!A0", "'+1+1", "'-x", "'@SUM(A1)", "'\tx", "plain", "-3.5", "1e-05"]
    assert all(formula_restored(formula_safe(c)) == c for c in cells)
    rows = [{"image": "=evil", "landmark": k + 1, "x": "-1.5", "y": "2.0", "name": name}
            for k, name in enumerate(cells[:4])]
    path = tmp_path / "p.csv"
    write_predictions(path, rows)
    text = path.read_text()
    assert text.splitlines()[1] == "'=evil,1,-1.5,2.0,'=cmd|' /C calc'!A0", text
    back = read_prediction_file(path)
    assert [r["name"] for r in back.rows] == cells[:4] and back.rows[0]["image"] == "=evil"
    volume = tmp_path / "v.csv"
    write_volume_predictions(volume, volume_rows("@v", ["=1+1"], np.zeros((1, 3)),
                                                 np.full((1, 3), -2.0), [0.5], "brain"))
    line = volume.read_text().splitlines()[1]
    assert line.startswith("'@v,1,'=1+1,0.0,0.0,0.0,voxel,-2.0"), line


# the ONNX runner


def _onnx(tmp_path: Path, edit=None, output_shape=("batch", 3, 2), name="m.onnx") -> Path:
    """A graph with the metadata ``unilandmark export`` writes for the small model
    (edited by ``edit``) and one ``landmarks`` output of ``output_shape``; no real
    export (fast)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from unilandmark.export.exporter import input_names, metadata
    from unilandmark.export.graph import PredictionGraph

    detector = Detector.from_checkpoint_state(_state(), relocate=False)
    graph = PredictionGraph(detector, "head")
    props = metadata(detector, "head", graph, input_names(graph), {})
    if edit is not None:
        edit(props)
    shape = [1 if isinstance(d, str) else d for d in output_shape]
    const = numpy_helper.from_array(np.asarray(shape, np.int64), "shape")
    model = helper.make_model(helper.make_graph(
        [helper.make_node("ConstantOfShape", ["shape"], ["landmarks"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 32, 32])],
        [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, list(output_shape))],
        initializer=[const]), opset_imports=[helper.make_opsetid("", 18)])
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _onnx_refused(path: Path, *needles: str) -> None:
    from unilandmark.export.runner import OnnxDetector

    with pytest.raises(InputError) as info:
        OnnxDetector(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    for needle in needles:
        assert needle in text, text


def _set(key, value):
    def edit(props):
        props[key] = value if isinstance(value, str) else json.dumps(value)
    return edit


def _stage_scale(props):
    stages = json.loads(props["stages"])
    stages[1]["scale"] = 1e-6
    props["stages"] = json.dumps(stages)


def test_the_crafted_onnx_graph_itself_loads(tmp_path):
    from unilandmark.export.runner import OnnxDetector

    assert OnnxDetector(_onnx(tmp_path)).names == tuple(NAMES)


@pytest.mark.parametrize("edit, needles", [
    (_set("input_size", [0, 0]), ["metadata: input_size [0, 0] is outside 8..4096"]),
    (_set("input_size", [100000, 100000]), ["input_size [100000, 100000] is outside"]),
    (_stage_scale, ["metadata 'stages': stage 1: scale 1e-06 is outside 0.25..256"]),
    (_set("stages", {"kind": "image"}), ["metadata 'stages' must be a list"]),
    (_set("landmark_names", ["tip", "=x\x1b]0;pwned\x07", "apex"]),
     ["control character"]),
    (_set("provenance", "[" * 100_000 + "]" * 100_000), ["nested 100000 levels deep"]),
    (lambda props: props.pop("stages"), ["the metadata has no 'stages'"]),
    (_set("calibration", {"features": ["stage1"], "mean": [0.0], "scale": [1.0],
                          "weights": [1.0], "bias": 0.0, "threshold": float("nan")}),
     ["metadata calibration: threshold must be a number in 0..1"])])
def test_onnx_metadata_beyond_the_limits_is_refused(tmp_path, edit, needles):
    _onnx_refused(_onnx(tmp_path, edit), *needles)


def test_an_onnx_graph_declaring_a_terabyte_output_is_refused(tmp_path):
    path = _onnx(tmp_path, output_shape=(1, 10 ** 6, 10 ** 6))
    _onnx_refused(path, "declares its output 'landmarks' as [1, 1000000, 1000000]",
                  "above the limit")


def test_onnx_names_are_compared_with_the_graph_before_the_domain_metadata(tmp_path):
    names = _set("landmark_names", NAMES[:2])
    _onnx_refused(_onnx(tmp_path, names), "the metadata names 2 landmarks but the graph "
                                          "outputs 3")
    renamed = _set("landmark_names", ["a", "b", "c"])
    _onnx_refused(_onnx(tmp_path, renamed, name="r.onnx"),
                  "'domain_meta' names other landmarks than its 'landmark_names'")


def test_onnx_device_auto_takes_cuda_only_where_onnxruntime_has_it():
    from unilandmark.export.runner import _providers

    class Runtime:
        def __init__(self, providers):
            self.providers = providers

        def get_available_providers(self):
            return self.providers

    cpu_only, gpu = Runtime(["CPUExecutionProvider"]), Runtime(
        ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert _providers(cpu_only, "auto") == ["CPUExecutionProvider"]
    assert _providers(gpu, "auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert _providers(gpu, "cpu") == ["CPUExecutionProvider"]
    assert _providers(gpu, "cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})
