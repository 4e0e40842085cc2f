"""The training command line: config validation, the lr schedule, freezing, one-line user errors.

Fast: no rendering here (tests/test_train_end_to_end.py renders). Subprocess tests check what a
user sees: exit status 2 and exactly one stderr line naming the file or option and the fix.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from conftest import REPO, assert_one_line_error

from densepose_train.config import effective_lr, load_config, save_config
from densepose_train.errors import TrainUserError
from densepose_train.train.trainer import apply_freeze, build_optimizer, frozen_by, last_checkpoint, lr_factor


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "densepose_train", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=300)


# --- config -------------------------------------------------------------------------------------

def test_defaults_follow_s1x():
    cfg = load_config()
    assert cfg["solver"]["momentum"] == 0.9 and cfg["solver"]["weight_decay"] == 1e-4
    # s1x: 130k iterations at batch 16, steps at 100k and 120k, base lr 0.002.
    steps = [round(f * cfg["solver"]["max_iter"]) for f in cfg["solver"]["steps"]]
    assert steps == [100000, 120000]
    assert effective_lr(cfg) == pytest.approx(0.002)
    assert (cfg["loss"]["coarse_weight"], cfg["loss"]["fine_weight"], cfg["loss"]["uv_weight"]) == (5.0, 1.0, 0.01)


def test_seed_recipe_loads_and_gives_the_seeds_figures():
    cfg = load_config(REPO / "configs" / "train" / "seed_recipe.yaml")
    assert cfg["solver"]["batch_size"] == 2 and cfg["solver"]["max_iter"] == 35000
    assert effective_lr(cfg) == pytest.approx(0.001)  # linear scaling: 0.008 * 2 / 16
    assert cfg["train"]["freeze"] == "all_but_densepose_head" and cfg["train"]["reinit_coarse"] is True
    assert cfg["model"]["coarse_segm_channels"] == 15
    assert cfg["model"]["head_conv_channels"] == 512 and cfg["model"]["head_conv_layers"] == 8


def test_linear_scaling_rule_and_explicit_lr(tmp_path):
    cfg = load_config(None, {"solver.batch_size": 4})
    assert effective_lr(cfg) == pytest.approx(0.002 * 4 / 16)
    cfg = load_config(None, {"solver.batch_size": 4, "solver.lr": 0.05})
    assert effective_lr(cfg) == 0.05


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, {"solver.max_iter": 12, "data.sources": ["a/:2", "b.json"], "train.init": "none",
                             "train.freeze": "none"})
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("text, needles", [
    ("solver:\n  max_itr: 3\n", ["unknown key 'solver.max_itr'", "did you mean 'max_iter'"]),
    ("modle:\n  backbone: tiny\n", ["unknown key 'modle'", "did you mean 'model'"]),
    ("solver:\n  max_iter: 2.5\n", ["'solver.max_iter' must be a whole number"]),
    ("solver:\n  batch_size: 0\n", ["'solver.batch_size' must be above 0"]),
    ("model:\n  backbone: resnet99\n", ["'model.backbone' must be one of"]),
    ("model:\n  coarse_segm_channels: 14\n", ["'model.coarse_segm_channels' must be one of 2, 15"]),
    ("model:\n  pixel_mean: [1, 2]\n", ["'model.pixel_mean' must be a list of 3 numbers"]),
    ("solver:\n  steps: [0.9, 0.5]\n", ["'solver.steps' must be increasing"]),
    ("train:\n  freeze: backbon\n", ["'train.freeze' must be one of", "did you mean 'backbone'"]),
    ("train:\n  device: gpu\n", ["'train.device'"]),
    ("solver: 3\n", ["'solver' must be a section"]),
    ("solver:\n  max_iter: [\n", ["not valid YAML"]),
    ("solver:\n  lr: .inf\n", ["'solver.lr' must be a finite number"]),
    ("model:\n  pixel_std: [.nan, 1, 1]\n", ["'model.pixel_std' must be a list of 3 numbers"]),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, text, needles):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TrainUserError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message, message


def test_infinite_learning_rate_on_the_command_line_is_refused():
    with pytest.raises(TrainUserError, match="'solver.lr' must be a finite number"):
        load_config(None, {"solver.lr": float("inf")})


def test_init_none_with_freeze_is_refused():
    with pytest.raises(TrainUserError, match="--freeze none"):
        load_config(None, {"train.init": "none"})  # default freeze 'stem' would freeze random weights


# --- schedule -----------------------------------------------------------------------------------

def test_lr_schedule_is_detectron2_warmup_multistep():
    solver = {"max_iter": 1000, "steps": [0.5, 0.8], "gamma": 0.1, "warmup_iters": 100, "warmup_factor": 0.1}
    # Linear warmup: factor * (1 - a) + a with a = it / warmup_iters.
    assert lr_factor(0, solver) == pytest.approx(0.1)
    assert lr_factor(50, solver) == pytest.approx(0.1 * 0.5 + 0.5)
    assert lr_factor(100, solver) == pytest.approx(1.0)
    assert lr_factor(499, solver) == pytest.approx(1.0)
    assert lr_factor(500, solver) == pytest.approx(0.1)
    assert lr_factor(800, solver) == pytest.approx(0.01)
    assert lr_factor(999, solver) == pytest.approx(0.01)


# --- freezing -----------------------------------------------------------------------------------

class _Named(nn.Module):
    """A stand-in with DensePoseRCNN's top-level names (torchvision GeneralizedRCNN layout)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.body = nn.ModuleDict({"conv1": nn.Conv2d(3, 4, 3), "bn1": nn.BatchNorm2d(4),
                                            "layer1": nn.Conv2d(4, 4, 1), "layer2": nn.Conv2d(4, 4, 1)})
        self.backbone.fpn = nn.Conv2d(4, 4, 1)
        self.rpn = nn.Conv2d(4, 4, 1)
        self.roi_heads = nn.Module()
        self.roi_heads.box_head = nn.Linear(4, 4)
        self.roi_heads.densepose_head = nn.Conv2d(4, 4, 3)
        self.roi_heads.densepose_predictor = nn.Conv2d(4, 4, 1)


def _trainable(model: nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[0] for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("freeze, expected", [
    ("none", {"backbone.body.conv1", "backbone.body.bn1", "backbone.body.layer1", "backbone.body.layer2",
              "backbone.fpn", "rpn", "roi_heads.box_head", "roi_heads.densepose_head", "roi_heads.densepose_predictor"}),
    ("stem", {"backbone.body.layer2", "backbone.fpn", "rpn", "roi_heads.box_head", "roi_heads.densepose_head",
              "roi_heads.densepose_predictor"}),
    ("backbone", {"rpn", "roi_heads.box_head", "roi_heads.densepose_head", "roi_heads.densepose_predictor"}),
    ("all_but_densepose_head", {"roi_heads.densepose_head", "roi_heads.densepose_predictor"}),
    ("all_but_densepose_predictor", {"roi_heads.densepose_predictor"}),
])
def test_freeze_sets(freeze, expected):
    model = _Named()
    apply_freeze(model, freeze)
    assert _trainable(model) == expected
    optimizer = build_optimizer(model, 0.1, {"momentum": 0.9, "weight_decay": 1e-4})
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}


def test_norm_parameters_get_no_weight_decay():
    model = _Named()
    optimizer = build_optimizer(model, 0.1, {"momentum": 0.9, "weight_decay": 1e-4})
    bn = {id(p) for p in model.backbone.body["bn1"].parameters()}
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        assert group["weight_decay"] == (0.0 if ids <= bn else 1e-4)
    assert frozen_by("stem", "backbone.body.layer1.0.conv1.weight")
    assert not frozen_by("stem", "backbone.body.layer2.0.conv1.weight")


def test_last_checkpoint_picks_the_most_iterations(tmp_path):
    assert last_checkpoint(tmp_path) is None
    for name in ("model_0000010.pth", "model_0000100.pth", "model_0000020.pth", "model_final.pth", "model_x.pth"):
        (tmp_path / name).write_bytes(b"")
    assert last_checkpoint(tmp_path) == (tmp_path / "model_0000100.pth", 100)


# --- command line, through a subprocess ---------------------------------------------------------

def test_bad_option_value_is_one_line(tmp_path):
    result = run_cli("train", "--out", str(tmp_path / "o"), "--max-iter", "ten")
    assert_one_line_error(result, "--max-iter")


def test_bad_config_key_through_the_cli(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("solver:\n  lr_base: 0.1\n")
    result = run_cli("train", "--config", str(path), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, str(path), "solver.lr_base", "did you mean")


def test_bad_config_value_through_the_cli(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("solver:\n  momentum: 3\n")
    result = run_cli("train", "--config", str(path), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, str(path), "solver.momentum")


def test_detectron2_engine_missing_is_one_line_install_hint(tmp_path):
    pytest.importorskip("torch")
    try:
        import detectron2  # noqa: F401
        pytest.skip("detectron2 is installed here")
    except ImportError:
        pass
    result = run_cli("train", "--engine", "detectron2", "--data", str(tmp_path), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "detectron2", "pip install")


# The cases below get past the config and load torch, the data and the checkpoints (seconds per
# interpreter on a busy machine), so one subprocess runs them all through `cli.main`, each with its
# own captured stderr: the same code path as `python -m densepose_train`, which only adds sys.exit.
_RUNNER = """
import contextlib, io, json, sys
from densepose_train.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    results.append({"returncode": code, "stderr": err.getvalue()})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def user_errors(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("user_errors")
    (root / "empty").mkdir()
    (root / "images").mkdir()
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "person"}]}
    (root / "plain.json").write_text(json.dumps(coco))
    scratch = ["--init", "none", "--freeze", "none", "--device", "cpu", "--quiet"]
    cases = {
        "no_annotations": ["train", "--data", str(root / "empty"), "--out", str(root / "o1"), *scratch],
        "no_densepose": ["train", "--data", str(root / "plain.json"), "--out", str(root / "o2"), *scratch],
        "bad_weight": ["train", "--data", f"{root / 'empty'}:-1", "--out", str(root / "o3"), *scratch],
        "missing_init": ["train", "--data", str(root / "empty"), "--out", str(root / "o4"), "--init",
                         str(root / "nope.pth"), "--device", "cpu", "--quiet"],
        "missing_model": ["evaluate", "--model", str(root / "nope.pth"), "--data", str(root / "empty"),
                          "--out", str(root / "o5"), "--quiet"],
    }
    result = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(list(cases.values()))], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    found = {name: subprocess.CompletedProcess(argv, o["returncode"], "", o["stderr"])
             for (name, argv), o in zip(cases.items(), outcomes)}
    found["root"] = root  # type: ignore[assignment]
    return found


def test_folder_without_annotations(user_errors):
    assert_one_line_error(user_errors["no_annotations"], str(user_errors["root"] / "empty"), "annotations.json")


def test_coco_without_densepose_fields(user_errors):
    result = user_errors["no_densepose"]
    assert_one_line_error(result, str(user_errors["root"] / "plain.json"))
    assert "dp_" in result.stderr or "DensePose" in result.stderr


def test_wrong_data_weight(user_errors):
    assert_one_line_error(user_errors["bad_weight"], "-1", "weight")


def test_missing_init_checkpoint(user_errors):
    assert_one_line_error(user_errors["missing_init"], "nope.pth")


def test_evaluate_missing_model(user_errors):
    assert_one_line_error(user_errors["missing_model"], "nope.pth")


# --- overlays -----------------------------------------------------------------------------------

def test_overlay_colours_parts_draws_contours_and_leaves_the_rest():
    import cv2
    import numpy as np

    from densepose_train.model.outputs import DensePoseResult
    from densepose_train.predict import draw_overlay

    image = np.full((20, 20, 3), 100, np.uint8)
    labels = np.zeros((10, 10), np.uint8)
    labels[:, :5] = 2                                # fine part 2 on the box's left half
    u = np.zeros((10, 10), np.float32)
    u[:, :2], u[:, 2:5] = 0.05, 0.15                 # U crosses the 0.1 iso-line between columns 1 and 2
    result = DensePoseResult(labels=labels, uv=np.stack([u, np.full_like(u, 0.05)]), coarse=labels > 0)
    out = draw_overlay(image, [([5.0, 5.0, 15.0, 15.0], 0.9, result)])

    def parula(value: float) -> np.ndarray:  # OpenCV's map is BGR
        return cv2.applyColorMap(np.array([[value]], np.uint8), cv2.COLORMAP_PARULA)[0, 0, ::-1].astype(float)

    part_colour = 0.3 * 100 + 0.7 * parula(np.float32(2 * 255.0 / 24).astype(np.uint8))
    assert np.abs(out[11, 5 + 3].astype(float) - part_colour).max() <= 1.0       # inside part 2, off the line
    assert np.abs(out[11, 5 + 1].astype(float) - parula(round(0.1 * 255))).max() <= 1.0  # on the U = 0.1 line
    assert (out[11, 5 + 7] == 100).all()                                          # background inside the box
    assert (out[0, 0] == 100).all() and (out[19, 19] == 100).all()               # outside the box
    assert tuple(out[5, 10]) == (0, 255, 0) and tuple(out[14, 10]) == (0, 255, 0)  # the box outline
