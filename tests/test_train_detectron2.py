"""`--engine detectron2`: what can be checked without detectron2, and what needs it (skipped here).

Without detectron2: the one-line install error (run() and the real command line), the config
translation against the seed recipe's stated values, the symmetry .mat layout read back the way
DensePose's `DensePoseTransformData.load` and `_flip_iuv_semantics` read it (copied from
projects/DensePose/densepose/structures), freezing on detectron2's parameter names, total-norm
clipping, the metrics layout and the evaluator choice. With detectron2 installed, the marked tests
merge the translation into DensePose's real config and load our .mat with DensePose's own loader.
"""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from torch import nn

from conftest import REPO, assert_one_line_error

from densepose_train.config import load_config
from densepose_train.engines import detectron2_engine as d2e
from densepose_train.errors import TrainUserError

HAVE_D2 = all(importlib.util.find_spec(m) is not None for m in ("detectron2", "densepose"))
needs_no_d2 = pytest.mark.skipif(HAVE_D2, reason="detectron2 is installed: the missing-install path cannot happen")


def overrides(cfg: dict, tmp_path: Path, command: str = "train", **extra) -> dict:
    """d2_overrides as {KEY: value decoded the way yacs' merge_from_list decodes it}."""
    pairs = d2e.d2_overrides(cfg, Namespace(command=command, out=tmp_path / "out", **extra))
    assert len(pairs) % 2 == 0 and all(isinstance(p, str) for p in pairs)
    keys = pairs[0::2]
    assert len(set(keys)) == len(keys)

    def decode(text: str):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    return {k: decode(v) for k, v in zip(keys, pairs[1::2])}


# --- missing install ----------------------------------------------------------------------------

@needs_no_d2
def test_run_without_detectron2_raises_the_install_line(tmp_path):
    with pytest.raises(TrainUserError) as caught:
        d2e.run("train", Namespace(out=tmp_path, data=["nowhere"]), load_config())
    message = str(caught.value)
    assert "\n" not in message
    assert "pip install 'git+https://github.com/facebookresearch/detectron2.git'" in message
    # projects/DensePose/doc/GETTING_STARTED.md, "Installation as a package":
    assert "git+https://github.com/facebookresearch/detectron2@main#subdirectory=projects/DensePose" in message
    assert "--engine torchvision" in message
    assert not (tmp_path / "d2_symmetry").exists()  # nothing was attempted before the check


@needs_no_d2
def test_cli_without_detectron2_is_one_line_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "densepose_train", "train", "--engine", "detectron2",
                             "--data", str(tmp_path / "X"), "--out", str(tmp_path / "Y")],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert_one_line_error(result, "pip install", "detectron2", "subdirectory=projects/DensePose", "torchvision")


# --- config translation -------------------------------------------------------------------------

def test_seed_recipe_translates_to_the_recipe_values(tmp_path):
    weights = tmp_path / "model_final_162be9.pkl"
    weights.write_bytes(b"stand-in")
    cfg = load_config(REPO / "configs/train/seed_recipe.yaml", {"train.init": str(weights)})
    d2 = overrides(cfg, tmp_path)
    # The seed's recipe: 35k iterations, batch 2, lr 0.001, 15 coarse channels, real-data init.
    assert d2["SOLVER.MAX_ITER"] == 35000
    assert d2["SOLVER.IMS_PER_BATCH"] == 2
    assert d2["SOLVER.BASE_LR"] == pytest.approx(0.001)
    assert d2["MODEL.ROI_DENSEPOSE_HEAD.NUM_COARSE_SEGM_CHANNELS"] == 15
    assert d2["MODEL.WEIGHTS"] == str(weights.resolve())
    # Backbone frozen through all ResNet stages (the rest by requires_grad in the trainer).
    assert d2["MODEL.BACKBONE.FREEZE_AT"] == 5
    # Reference head and loss weights (densepose-format.md): 8 x 512 convs, 28 -> 112, 5 / 1 / 0.01.
    assert d2["MODEL.ROI_DENSEPOSE_HEAD.NUM_STACKED_CONVS"] == 8
    assert d2["MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_DIM"] == 512
    assert d2["MODEL.ROI_DENSEPOSE_HEAD.POOLER_RESOLUTION"] == 28
    assert d2["MODEL.ROI_DENSEPOSE_HEAD.HEATMAP_SIZE"] == 112
    assert 28 * 2 * d2["MODEL.ROI_DENSEPOSE_HEAD.UP_SCALE"] == 112  # deconv x2, then UP_SCALE
    assert d2["MODEL.ROI_DENSEPOSE_HEAD.INDEX_WEIGHTS"] == 5.0
    assert d2["MODEL.ROI_DENSEPOSE_HEAD.PART_WEIGHTS"] == 1.0
    assert d2["MODEL.ROI_DENSEPOSE_HEAD.POINT_REGRESSION_WEIGHTS"] == 0.01
    # s1x's drops at 100k and 120k of 130k, scaled to 35k.
    steps = d2["SOLVER.STEPS"]
    assert len(steps) == 2 and abs(steps[0] - 35000 * 100 / 130) <= 3 and abs(steps[1] - 35000 * 120 / 130) <= 3
    assert d2["INPUT.FORMAT"] == "BGR" and d2["MODEL.RESNETS.NORM"] == "FrozenBN"
    assert d2["MODEL.RESNETS.STRIDE_IN_1X1"] is True and d2["MODEL.RESNETS.DEPTH"] == 50
    assert d2["MODEL.PIXEL_STD"] == [1.0, 1.0, 1.0]
    assert d2["INPUT.RANDOM_FLIP"] == "horizontal"
    assert d2["SOLVER.CHECKPOINT_PERIOD"] == 5000
    assert d2["OUTPUT_DIR"] == str(tmp_path / "out")


def test_translation_edge_cases(tmp_path):
    d2 = overrides(load_config(overrides={"train.init": "none", "train.freeze": "none", "solver.max_iter": 2,
                                          "train.checkpoint_period": 0, "data.flip": False,
                                          "train.device": "cpu"}), tmp_path)
    assert d2["MODEL.WEIGHTS"] == ""
    assert d2["MODEL.BACKBONE.FREEZE_AT"] == 0
    assert d2["SOLVER.STEPS"] == ()  # both drops would land on the last iteration
    assert d2["SOLVER.WARMUP_ITERS"] == 2
    assert d2["SOLVER.CHECKPOINT_PERIOD"] > 2  # 0 = only model_final.pth
    assert d2["INPUT.RANDOM_FLIP"] == "none"
    assert d2["MODEL.DEVICE"] == "cpu"
    assert overrides(load_config(), tmp_path)["MODEL.WEIGHTS"] == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    gn = overrides(load_config(overrides={"model.norm": "group_norm", "model.backbone": "resnet18",
                                          "train.init": "none", "train.freeze": "none"}), tmp_path)
    assert gn["MODEL.RESNETS.NORM"] == "GN" and gn["MODEL.FPN.NORM"] == "GN"
    assert gn["MODEL.RESNETS.DEPTH"] == 18 and gn["MODEL.RESNETS.RES2_OUT_CHANNELS"] == 64


def test_translation_user_errors(tmp_path):
    with pytest.raises(TrainUserError, match="--init"):
        overrides(load_config(overrides={"train.init": str(tmp_path / "missing.pkl")}), tmp_path)
    with pytest.raises(TrainUserError, match="tiny"):
        overrides(load_config(overrides={"model.backbone": "tiny"}), tmp_path)
    with pytest.raises(TrainUserError, match="heatmap_size"):
        overrides(load_config(overrides={"model.heatmap_size": 100}), tmp_path)
    with pytest.raises(TrainUserError, match="--model"):
        overrides(load_config(), tmp_path, command="evaluate", model=tmp_path / "none.pth")
    model = tmp_path / "model_final.pth"
    model.write_bytes(b"x")
    assert overrides(load_config(), tmp_path, command="evaluate", model=model)["MODEL.WEIGHTS"] == str(model)


def test_torchvision_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model_final.pth"
    torch.save({"model": {"backbone.body.conv1.weight": torch.zeros(1)}}, path)
    with pytest.raises(TrainUserError, match="torchvision"):
        d2e._check_weights_file(str(path))
    torch.save({"model": {"backbone.bottom_up.stem.conv1.weight": torch.zeros(1)}}, path)
    d2e._check_weights_file(str(path))  # a detectron2 checkpoint passes


# --- symmetry file ------------------------------------------------------------------------------

def densepose_load(path: Path) -> dict[str, torch.Tensor]:
    """DensePoseTransformData.load (densepose/structures/transform_data.py), verbatim in effect."""
    uv_symmetry_map = scipy.io.loadmat(str(path))
    result = {}
    for key in ["U_transforms", "V_transforms"]:
        map_src = uv_symmetry_map[key]
        result[key] = torch.stack([torch.from_numpy(map_src[0, i]).to(dtype=torch.float)
                                   for i in range(map_src.shape[1])], dim=0)
    return result


def densepose_flip_uv(tables: dict[str, torch.Tensor], i: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """The U, V half of DensePoseDataRelative._flip_iuv_semantics."""
    u_new, v_new = u.clone(), v.clone()
    for part in range(24):
        sel = i == part + 1
        if sel.any():
            u_loc, v_loc = (u[sel] * 255).long(), (v[sel] * 255).long()
            u_new[sel] = tables["U_transforms"][part][v_loc, u_loc]
            v_new[sel] = tables["V_transforms"][part][v_loc, u_loc]
    return u_new, v_new


def test_symmetry_mat_has_densepose_layout(tmp_path):
    part = np.arange(24)[:, None, None]
    row = np.arange(256)[None, :, None]
    col = np.arange(256)[None, None, :]
    u_tables = (1.0 - col / 255.0) * np.ones((24, 256, 256))          # mirror in U, from the column
    v_tables = row / 255.0 * 0.5 + part / 100.0 + 0 * col           # from the row and the part
    path = d2e.write_symmetry_mat(tmp_path / "sym.mat", u_tables, v_tables)
    raw = scipy.io.loadmat(str(path))
    assert raw["U_transforms"].shape == (1, 24) and raw["U_transforms"][0, 3].shape == (256, 256)
    tables = densepose_load(path)
    assert tables["U_transforms"].shape == (24, 256, 256)
    rng = np.random.default_rng(0)
    i = torch.from_numpy(rng.integers(1, 25, 500))
    u = torch.from_numpy(rng.random(500)).float()
    v = torch.from_numpy(rng.random(500)).float()
    u_new, v_new = densepose_flip_uv(tables, i, u, v)
    cols, rows = np.floor(u.double().numpy() * 255), np.floor(v.double().numpy() * 255)
    np.testing.assert_allclose(u_new.numpy(), 1.0 - cols / 255.0, atol=1e-6)
    np.testing.assert_allclose(v_new.numpy(), rows / 255.0 * 0.5 + (i.numpy() - 1) / 100.0, atol=1e-6)


def test_symmetry_mat_round_trips_through_the_data_package(tmp_path):
    from densepose_train.data.symmetry import load_densepose_symmetry

    rng = np.random.default_rng(1)
    u_tables, v_tables = rng.random((24, 256, 256)), rng.random((24, 256, 256))
    tables = load_densepose_symmetry(d2e.write_symmetry_mat(tmp_path / "t.mat", u_tables, v_tables))
    np.testing.assert_allclose(tables.U, u_tables, atol=1e-6)
    np.testing.assert_allclose(tables.V, v_tables, atol=1e-6)


def test_identity_tables_return_texel_centres(tmp_path):
    tables = densepose_load(d2e.write_symmetry_mat(tmp_path / "id.mat", *d2e.identity_tables()))
    u = torch.tensor([0.0, 0.3, 0.999, 1.0])
    v = torch.tensor([0.5, 0.0, 0.25, 1.0])
    u_new, v_new = densepose_flip_uv(tables, torch.tensor([1, 5, 24, 13]), u, v)
    expect = lambda x: np.minimum((np.floor(x.numpy() * 255) + 0.5) / 255, 1.0)  # noqa: E731
    np.testing.assert_allclose(u_new.numpy(), expect(u), atol=1e-6)
    np.testing.assert_allclose(v_new.numpy(), expect(v), atol=1e-6)


def test_symmetry_file_choice(tmp_path):
    source = d2e.D2Source("real.json", "real0", tmp_path / "real.json", tmp_path, 1.0, charts=None)
    cache = tmp_path / "cache"
    assert d2e.symmetry_file(source, tmp_path, flip=False, data_dir=cache).is_file()
    with pytest.raises(TrainUserError, match="data.flip: false"):
        d2e.symmetry_file(source, tmp_path, flip=True, data_dir=cache)
    official = d2e.densepose_data_dir(cache) / "UV_symmetry_transforms.mat"
    official.parent.mkdir(parents=True)
    official.write_bytes(b"DensePose's file")
    assert d2e.symmetry_file(source, tmp_path, flip=True, data_dir=cache) == official


def test_cache_paths_follow_the_urls(tmp_path):
    assert d2e.cached_path("detectron2://ImageNetPretrained/MSRA/R-50.pkl", tmp_path) == \
        tmp_path / "detectron2/ImageNetPretrained/MSRA/R-50.pkl"
    assert d2e.cached_path(d2e.DENSEPOSE_DATA_URL + "Pdist_matrix.pkl", tmp_path) == \
        tmp_path / "densepose/data/Pdist_matrix.pkl"
    assert d2e.densepose_data_dir(tmp_path) == tmp_path / "densepose" / "data"


# --- freezing and clipping ----------------------------------------------------------------------

# Parameter names of detectron2's DensePose R-CNN R-50-FPN (GeneralizedRCNN, DensePoseROIHeads,
# DensePoseV1ConvXHead, DensePoseChartPredictor).
D2_NAMES = {
    "backbone.bottom_up.stem.conv1.weight": "backbone",
    "backbone.bottom_up.res5.2.conv3.weight": "backbone",
    "backbone.fpn_lateral2.weight": "backbone",
    "backbone.fpn_output5.bias": "backbone",
    "proposal_generator.rpn_head.conv.weight": "rpn",
    "roi_heads.box_head.fc1.weight": "box",
    "roi_heads.box_predictor.cls_score.weight": "box",
    "roi_heads.decoder.p2.0.weight": "decoder",
    "roi_heads.densepose_head.body_conv_fcn1.weight": "head",
    "roi_heads.densepose_head.body_conv_fcn8.bias": "head",
    "roi_heads.densepose_predictor.ann_index_lowres.weight": "predictor",
    "roi_heads.densepose_predictor.u_lowres.bias": "predictor",
}


@pytest.mark.parametrize("freeze, trained", [
    ("none", {"backbone", "rpn", "box", "decoder", "head", "predictor"}),
    ("backbone", {"rpn", "box", "decoder", "head", "predictor"}),
    ("all_but_densepose_head", {"head", "predictor"}),
    ("all_but_densepose_predictor", {"predictor"}),
])
def test_freeze_sets_on_detectron2_names(freeze, trained):
    for name, group in D2_NAMES.items():
        assert d2e.d2_frozen(freeze, name) == (group not in trained), (freeze, name)


def test_apply_freeze_counts_and_refuses_nothing_to_train():
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.fpn_lateral2 = nn.Linear(3, 2)          # 8 elements
    model.roi_heads = nn.Module()
    model.roi_heads.densepose_head = nn.Linear(2, 2)        # 6 elements
    frozen, trainable = d2e.apply_d2_freeze(model, "all_but_densepose_head")
    assert (frozen, trainable) == (8, 6)
    assert not model.backbone.fpn_lateral2.weight.requires_grad and model.roi_heads.densepose_head.weight.requires_grad
    with pytest.raises(TrainUserError, match="--freeze none"):
        d2e.apply_d2_freeze(model, "all_but_densepose_predictor")


def test_total_norm_clipping_scales_the_whole_gradient():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    optimizer = d2e.with_total_norm_clipping(torch.optim.SGD([a, b], lr=1.0), max_norm=1.0)
    assert isinstance(optimizer, torch.optim.SGD)
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])  # total norm 5
    optimizer.step()
    np.testing.assert_allclose(a.detach().numpy(), [-0.6, 0.0], atol=1e-6)
    np.testing.assert_allclose(b.detach().numpy(), [-0.8], atol=1e-6)


# --- weighted sources ---------------------------------------------------------------------------

def endless(tag: str, batch: int):
    """A detectron2-style endless loader: batches of (tag, running index)."""
    count = 0
    while True:
        yield [(tag, count + k) for k in range(batch)]
        count += batch


def test_sources_parse_like_the_torchvision_engine(tmp_path):
    from test_train_data import person, write_dataset

    first = write_dataset(tmp_path / "synth", [person(1, 1, [8, 4, 32, 40])])
    second = write_dataset(tmp_path / "real", [person(1, 1, [8, 4, 32, 40])])
    (second / "images").rename(second / "pictures")
    sources = d2e.parse_sources([f"{first}:3", f"{second / 'annotations.json'}::{second / 'pictures'}"], "t_")
    assert [s.weight for s in sources] == [3.0, 1.0]
    assert sources[0].json == (first / "annotations.json").resolve()
    assert sources[0].images == (first / "images").resolve()
    assert sources[1].images == (second / "pictures").resolve()
    assert len({s.name for s in sources}) == 2 and all(s.charts is None for s in sources)
    with pytest.raises(TrainUserError, match="weight"):
        d2e.parse_sources([f"{first}:-1"], "t_")


def test_weighted_mix_draws_images_by_weight():
    mix = iter(d2e.WeightedMix([endless("a", 2), endless("b", 2)], batch_size=2, weights=[1.0, 3.0], seed=0))
    batches = [next(mix) for _ in range(3000)]
    items = [item for batch in batches for item in batch]
    share_b = sum(tag == "b" for tag, _ in items) / len(items)
    assert abs(share_b - 0.75) < 0.02  # 6000 draws: 3 sigma is about 0.017
    # Per image, not per batch: with p = 1/4, 3/4 a two-image batch is mixed 3/8 of the time.
    mixed = sum(len({tag for tag, _ in batch}) == 2 for batch in batches) / len(batches)
    assert abs(mixed - 0.375) < 0.04
    for tag in "ab":  # each source's images in its loader's order, none skipped or repeated
        seen = [n for t, n in items if t == tag]
        assert seen == list(range(len(seen)))


# --- evaluation ---------------------------------------------------------------------------------

def test_metrics_layout_from_detectron2_results():
    results = {
        "bbox": {"AP": 61.2, "AP50": 90.0, "AP75": 66.0, "APs": float("nan"), "APm": 40.0, "APl": 63.0},
        "densepose_gps": {"AP": 63.7, "AP50": 92.0, "AP75": 70.0, "APm": 55.0, "APl": 65.0, "AR": 70.0},
        "densepose_gpsm": {"AP": 65.3, "AP-person": 65.3},
        "densepose_segm": {"AP": -1},
    }
    metrics = d2e.metrics_from_d2(results)
    assert set(metrics) == {"bbox", "segm", "gps", "gpsm"}
    assert metrics["bbox"]["AP"] == 61.2 and metrics["bbox"]["APs"] is None
    assert metrics["gps"] == results["densepose_gps"]
    assert metrics["gpsm"] == {"AP": 65.3}
    assert metrics["segm"] == {"AP": None}


def test_evaluator_choice(tmp_path):
    assert d2e.choose_evaluator("anny", tmp_path) == "ours"
    assert d2e.choose_evaluator("smpl", tmp_path) == "ours"  # DensePose's SMPL files are absent
    with pytest.raises(TrainUserError, match="Pdist_matrix.pkl"):
        d2e.choose_evaluator(None, tmp_path)
    folder = d2e.densepose_data_dir(tmp_path)
    folder.mkdir(parents=True)
    for name in d2e.GPS_EVAL_FILES:
        (folder / name).write_bytes(b"x")
    assert d2e.choose_evaluator("smpl", tmp_path) == "densepose"
    assert d2e.choose_evaluator(None, tmp_path) == "densepose"
    assert d2e.choose_evaluator("anny", tmp_path) == "ours"


# --- with detectron2 installed ------------------------------------------------------------------

def test_overrides_merge_into_densepose_config(tmp_path):
    pytest.importorskip("detectron2")
    pytest.importorskip("densepose")
    from densepose import add_densepose_config
    from detectron2.config import get_cfg

    cfg = load_config(REPO / "configs/train/seed_recipe.yaml", {"train.init": "none", "train.freeze": "none",
                                                                 "train.device": "cpu"})
    d2cfg = get_cfg()
    add_densepose_config(d2cfg)
    d2cfg.merge_from_file(str(d2e._load_d2_base(Namespace(), tmp_path)))
    d2cfg.merge_from_list(d2e.d2_overrides(cfg, Namespace(command="train", out=tmp_path)))
    assert d2cfg.MODEL.ROI_DENSEPOSE_HEAD.NUM_COARSE_SEGM_CHANNELS == 15
    assert d2cfg.SOLVER.IMS_PER_BATCH == 2 and d2cfg.MODEL.ROI_HEADS.NAME == "DensePoseROIHeads"


def test_densepose_reads_our_symmetry_file(tmp_path):
    pytest.importorskip("detectron2")
    pytest.importorskip("densepose")
    try:
        from densepose.structures import DensePoseTransformData
    except ImportError:
        from densepose import DensePoseTransformData
    u_tables, v_tables = d2e.identity_tables()
    data = DensePoseTransformData.load(str(d2e.write_symmetry_mat(tmp_path / "s.mat", u_tables, v_tables)))
    np.testing.assert_allclose(data.uv_symmetries["U_transforms"].numpy(), u_tables, atol=1e-6)
