"""`--engine detectron2`: train, evaluate and predict with detectron2's own DensePose project.

The torchvision engine re-implements DensePose R-CNN; this one drives the original, so a user with
detectron2 installed can check our numbers against DensePose's trainer and evaluator, or train the
reference model itself on DenseSynth renders. detectron2 and DensePose are on no package index, so
every import of them sits inside a function: this module imports (and its pure parts are tested)
without them, and a missing install is one `TrainUserError` line naming the install commands.

Written against detectron2's source (facebookresearch/detectron2, read with the search tool; it
cannot be installed here, so nothing below that imports detectron2 has been run):

- projects/DensePose/train_net.py: setup (get_cfg, add_densepose_config, merge_from_file,
  merge_from_list, default_setup, the "densepose" logger), train (Trainer(cfg), resume_or_load,
  train) and --eval-only (Trainer.build_model, DensePoseCheckpointer(...).resume_or_load,
  Trainer.test).
- densepose/config.py: add_densepose_config (head, bootstrap, category, evaluation options);
  the option names used in `d2_overrides` (NUM_COARSE_SEGM_CHANNELS, INDEX_WEIGHTS = coarse
  segmentation, PART_WEIGHTS = fine parts, POINT_REGRESSION_WEIGHTS = U/V, NUM_STACKED_CONVS,
  CONV_HEAD_DIM, POOLER_RESOLUTION, UP_SCALE, HEATMAP_SIZE). There is no config key for the
  symmetry file: it is dataset metadata (below).
- densepose/data/datasets/coco.py: CocoDatasetInfo, register_dataset (DatasetCatalog entry that
  calls DensePose's load_coco_json; metadata json_file, image_root and
  `densepose_transform_src` = https://dl.fbaipublicfiles.com/densepose/data/UV_symmetry_transforms.mat
  from get_metadata). detectron2's Metadata refuses to change a key once set, so `_register`
  re-creates the entry with a local symmetry file.
- densepose/data/dataset_mapper.py: DatasetMapper loads ONE DensePoseTransformData, from the
  first of DATASETS.TRAIN + DATASETS.TEST, whenever MODEL.DENSEPOSE_ON (flips or not).
- densepose/structures/(data_relative|transform_data).py: DensePoseTransformData.load reads keys
  U_transforms / V_transforms, each `map_src[0, i]` for i in range(map_src.shape[1]) (a 1 x 24
  cell array of 256 x 256 images), stacked to (24, 256, 256); a flip reads
  `U_transforms[I - 1][int(255 V), int(255 U)]` (_flip_iuv_semantics). `write_symmetry_mat`
  writes that layout.
- densepose/data/build.py + combined_loader.py: build_detection_train_loader concatenates
  DATASETS.TRAIN without ratios; ratios exist only in CombinedDataLoader (build_combined_loader,
  for bootstrap datasets), whose per-loader pools are one shared deque (`[deque()] * n`), so it
  mixes per batch. Weighted `--data` sources therefore get one DensePose train loader each (which
  also gives each source its own mapper, so its own symmetry table) mixed image by image by
  `WeightedMix`. densepose/engine/trainer.py: Trainer (test, build_evaluator =
  Detectron2COCOEvaluatorAdapter for bbox + DensePoseCOCOEvaluator, build_optimizer,
  build_train_loader, SampleCountingLoader).
- densepose/evaluation/evaluator.py: DensePoseCOCOEvaluator returns densepose_gps,
  densepose_gpsm, densepose_segm dicts (AP, AP50, AP75, APm, APl, AR, ... in percent, -1 when
  there are no predictions); densepose_coco_evaluation.py `_loadGEval` fetches SMPL_subdiv.mat,
  SMPL_SUBDIV_TRANSFORM.mat and Pdist_matrix.pkl from dl.fbaipublicfiles.com/densepose/data/ for
  GPS: SMPL geodesics, wrong for anny charts, so anny data is scored by our evaluator instead.
- densepose/converters/(segm_to_mask|chart_output_to_chart_result).py: the result resampling
  that densepose_train/model/outputs.py reproduces (used to turn detectron2 outputs into our
  DensePoseResult for our evaluator and overlays).
- densepose/modeling/roi_heads/roi_head.py (module names roi_heads.decoder, densepose_head,
  densepose_predictor), predictors/chart.py (ann_index_lowres = coarse segmentation layer),
  modeling/utils.py initialize_module_params, modeling/densepose_checkpoint.py.
- configs/Base-DensePose-RCNN-FPN.yaml, configs/densepose_rcnn_R_50_FPN_s1x.yaml (embedded
  below: DensePose's setup.py installs only the `densepose` package, not configs/),
  doc/GETTING_STARTED.md ("Installation as a package": the pip command in INSTALL_HINT),
  apply_net.py (DefaultPredictor on BGR images).
- detectron2/engine/defaults.py: DefaultTrainer (build_model -> build_optimizer ->
  build_train_loader, PeriodicCheckpointer(CHECKPOINT_PERIOD) + model_final.pth, EvalHook runs
  Trainer.test on DATASETS.TEST after the last iteration), default_setup (writes
  OUTPUT_DIR/config.yaml, seeds), DefaultPredictor; detectron2/solver/build.py
  (get_default_optimizer_params skips parameters without requires_grad; CLIP_GRADIENTS clips
  per parameter, so total-norm clipping is added here); detectron2/checkpoint (shape-mismatched
  parameters are skipped with a warning: a 15-channel coarse head starts random from s1x's
  2-channel weights). iopath's cache: $FVCORE_CACHE (default ~/.torch/iopath_cache) + the URL
  path, e.g. $FVCORE_CACHE/densepose/data/UV_symmetry_transforms.mat.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import TrainUserError

# doc/GETTING_STARTED.md ("Installation as a package") and detectron2's install guide.
INSTALL_HINT = (
    "--engine detectron2 needs detectron2 and its DensePose project, which no package index has: "
    "pip install 'git+https://github.com/facebookresearch/detectron2.git' && "
    "pip install 'git+https://github.com/facebookresearch/detectron2@main#subdirectory=projects/DensePose' "
    "(--engine torchvision needs neither)"
)

DENSEPOSE_DATA_URL = "https://dl.fbaipublicfiles.com/densepose/data/"
SYMMETRY_FILE = "UV_symmetry_transforms.mat"
# What DensePose's GPS evaluator fetches (densepose_coco_evaluation.py, _loadGEval).
GPS_EVAL_FILES = ("SMPL_subdiv.mat", "SMPL_SUBDIV_TRANSFORM.mat", "Pdist_matrix.pkl")
IMAGENET_R50 = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
S1X_CONFIG = "densepose_rcnn_R_50_FPN_s1x.yaml"
NUM_PARTS = 24
TABLE_SIZE = 256

# projects/DensePose/configs/ at detectron2 main, verbatim in content (the pip-installed package
# lacks configs/); used when neither --d2-config nor a source checkout's configs/ is found.
_BASE_FPN_YAML = """\
VERSION: 2
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  BACKBONE:
    NAME: "build_resnet_fpn_backbone"
  RESNETS:
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  FPN:
    IN_FEATURES: ["res2", "res3", "res4", "res5"]
  ANCHOR_GENERATOR:
    SIZES: [[32], [64], [128], [256], [512]]
    ASPECT_RATIOS: [[0.5, 1.0, 2.0]]
  RPN:
    IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
    PRE_NMS_TOPK_TRAIN: 2000
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  DENSEPOSE_ON: True
  ROI_HEADS:
    NAME: "DensePoseROIHeads"
    IN_FEATURES: ["p2", "p3", "p4", "p5"]
    NUM_CLASSES: 1
  ROI_BOX_HEAD:
    NAME: "FastRCNNConvFCHead"
    NUM_FC: 2
    POOLER_RESOLUTION: 7
    POOLER_SAMPLING_RATIO: 2
    POOLER_TYPE: "ROIAlign"
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseV1ConvXHead"
    POOLER_TYPE: "ROIAlign"
    NUM_COARSE_SEGM_CHANNELS: 2
DATASETS:
  TRAIN: ("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")
  TEST: ("densepose_coco_2014_minival",)
SOLVER:
  IMS_PER_BATCH: 16
  BASE_LR: 0.01
  STEPS: (60000, 80000)
  MAX_ITER: 90000
  WARMUP_FACTOR: 0.1
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
"""
_S1X_YAML = """\
_BASE_: "Base-DensePose-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
  RESNETS:
    DEPTH: 50
SOLVER:
  MAX_ITER: 130000
  STEPS: (100000, 120000)
"""

_NORMS = {"frozen_bn": "FrozenBN", "group_norm": "GN", "bn": "BN"}
# detectron2's MODEL.BACKBONE.FREEZE_AT per --freeze (0 none, 2 = stem + res2, 5 = all res stages);
# what FREEZE_AT cannot reach (FPN, RPN, box head) is frozen by `d2_frozen`.
_FREEZE_AT = {"none": 0, "stem": 2, "backbone": 5, "all_but_densepose_head": 5, "all_but_densepose_predictor": 5}
_DENSEPOSE_HEAD = ("roi_heads.densepose_head.", "roi_heads.densepose_predictor.")
_DENSEPOSE_PREDICTOR = ("roi_heads.densepose_predictor.",)


# ------------------------------------------------------------------ pure parts (no detectron2)

def require_detectron2() -> None:
    """Raise the one-line install hint unless both detectron2 and densepose import."""
    import importlib.util

    for name in ("detectron2", "densepose"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise TrainUserError(INSTALL_HINT)


def d2_device(device: str) -> str:
    """Our `train.device` as detectron2's MODEL.DEVICE ("auto": CUDA when present)."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _steps(fractions: Sequence[float], max_iter: int) -> tuple[int, ...]:
    """Our lr drops (fractions of max_iter) as detectron2 iterations, strictly increasing and
    below max_iter (fvcore's MultiStepParamScheduler rejects repeats)."""
    steps: list[int] = []
    for fraction in fractions:
        step = int(round(fraction * max_iter))
        if 0 < step < max_iter and (not steps or step > steps[-1]):
            steps.append(step)
    return tuple(steps)


def _weights(init: str, backbone: str) -> str:
    """MODEL.WEIGHTS for `train.init`."""
    if init == "none":
        return ""
    if init == "imagenet":
        if backbone != "resnet50":
            raise TrainUserError(f"train.init imagenet with model.backbone {backbone}: detectron2 ships ImageNet "
                                 "weights only for resnet50; pass --init PATH or --init none")
        return IMAGENET_R50
    if "://" in init:
        return init
    path = Path(init).expanduser()
    if not path.is_file():
        raise TrainUserError(f"--init {init}: no such file; pass a detectron2 .pkl/.pth checkpoint, imagenet or none")
    return str(path.resolve())


def d2_overrides(cfg: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Our resolved config (+ command-line paths in `args`) as detectron2 `merge_from_list` pairs.

    A pure translation, applied over densepose_rcnn_R_50_FPN_s1x.yaml: every value our config
    holds replaces s1x's. Differences that follow: one training scale (`model.min_size`) instead
    of s1x's 640..800 (add INPUT.MIN_SIZE_TRAIN through --d2-opts to restore it); `solver.steps`
    fractions become iterations of `solver.max_iter`; `train.checkpoint_period` 0 means only
    model_final.pth. `test.batch_size` has no counterpart (DensePose's test loader uses 1).
    """
    command = getattr(args, "command", "train")
    model, loss, solver, train, data = cfg["model"], cfg["loss"], cfg["solver"], cfg["train"], cfg["data"]
    if model["backbone"] == "tiny":
        raise TrainUserError("model.backbone tiny exists only in --engine torchvision: use resnet50 or resnet18")
    roi, heatmap = int(model["roi_size"]), int(model["heatmap_size"])
    # DensePoseChartPredictor: a stride-2 deconvolution, then bilinear upsampling by UP_SCALE.
    if heatmap % (2 * roi):
        raise TrainUserError(f"model.heatmap_size {heatmap} must be a multiple of 2 x model.roi_size ({2 * roi}) "
                             "for detectron2's DensePose predictor (deconvolution x2, then UP_SCALE)")
    device = d2_device(train["device"])
    max_iter = int(solver["max_iter"])
    lr = float(solver["lr"]) if solver["lr"] > 0 else float(solver["base_lr"]) * solver["batch_size"] / solver[
        "reference_batch_size"]
    period = int(train["checkpoint_period"]) or 10 ** 9
    norm = _NORMS[model["norm"]]
    pairs: dict[str, Any] = {
        "OUTPUT_DIR": str(Path(args.out)),
        "MODEL.DEVICE": device,
        "SEED": int(train["seed"]),
        "MODEL.RESNETS.DEPTH": 50 if model["backbone"] == "resnet50" else 18,
        "MODEL.RESNETS.STRIDE_IN_1X1": bool(model["stride_in_1x1"]),
        "MODEL.RESNETS.NORM": norm,
        "MODEL.FPN.NORM": "GN" if norm == "GN" else "",
        "MODEL.FPN.OUT_CHANNELS": int(model["fpn_channels"]),
        "MODEL.BACKBONE.FREEZE_AT": _FREEZE_AT[train["freeze"]],
        "MODEL.PIXEL_MEAN": [float(v) for v in model["pixel_mean"]],
        "MODEL.PIXEL_STD": [float(v) for v in model["pixel_std"]],
        "INPUT.FORMAT": model["input_format"],
        "INPUT.MIN_SIZE_TRAIN": (int(model["min_size"]),),
        "INPUT.MIN_SIZE_TEST": int(model["min_size"]),
        "INPUT.MAX_SIZE_TRAIN": int(model["max_size"]),
        "INPUT.MAX_SIZE_TEST": int(model["max_size"]),
        "INPUT.RANDOM_FLIP": "horizontal" if data["flip"] else "none",
        "MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_DIM": int(model["head_conv_channels"]),
        "MODEL.ROI_DENSEPOSE_HEAD.NUM_STACKED_CONVS": int(model["head_conv_layers"]),
        "MODEL.ROI_DENSEPOSE_HEAD.POOLER_RESOLUTION": roi,
        "MODEL.ROI_DENSEPOSE_HEAD.HEATMAP_SIZE": heatmap,
        "MODEL.ROI_DENSEPOSE_HEAD.UP_SCALE": heatmap // (2 * roi),
        "MODEL.ROI_DENSEPOSE_HEAD.NUM_COARSE_SEGM_CHANNELS": int(model["coarse_segm_channels"]),
        "MODEL.ROI_DENSEPOSE_HEAD.INDEX_WEIGHTS": float(loss["coarse_weight"]),
        "MODEL.ROI_DENSEPOSE_HEAD.PART_WEIGHTS": float(loss["fine_weight"]),
        "MODEL.ROI_DENSEPOSE_HEAD.POINT_REGRESSION_WEIGHTS": float(loss["uv_weight"]),
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST": float(model["score_thresh"]),
        "TEST.DETECTIONS_PER_IMAGE": int(model["box_detections_per_img"]),
        "TEST.EVAL_PERIOD": 0,
        "SOLVER.IMS_PER_BATCH": int(solver["batch_size"]),
        "SOLVER.BASE_LR": lr,
        "SOLVER.MAX_ITER": max_iter,
        "SOLVER.STEPS": _steps(solver["steps"], max_iter),
        "SOLVER.GAMMA": float(solver["gamma"]),
        "SOLVER.WARMUP_ITERS": min(int(solver["warmup_iters"]), max_iter),
        "SOLVER.WARMUP_FACTOR": float(solver["warmup_factor"]),
        "SOLVER.MOMENTUM": float(solver["momentum"]),
        "SOLVER.WEIGHT_DECAY": float(solver["weight_decay"]),
        "SOLVER.CHECKPOINT_PERIOD": period,
        "SOLVER.AMP.ENABLED": bool(train["amp"]) and device.startswith("cuda"),
        "DATALOADER.NUM_WORKERS": int(data["num_workers"]),
    }
    if model["backbone"] == "resnet18":
        pairs["MODEL.RESNETS.RES2_OUT_CHANNELS"] = 64  # detectron2 requires 64 for R18/R34
    if command == "train":
        pairs["MODEL.WEIGHTS"] = _weights(train["init"], model["backbone"])
    else:
        weights = getattr(args, "model", None)
        if weights is None or not Path(weights).is_file():
            raise TrainUserError(f"--model {weights}: no such checkpoint; pass OUT/model_final.pth from a "
                                 "detectron2-engine training or a detectron2 model-zoo .pkl")
        pairs["MODEL.WEIGHTS"] = str(Path(weights).resolve())
    flat: list[str] = []
    for key, value in pairs.items():
        flat += [key, _d2_literal(value)]
    return flat


def _d2_literal(value: Any) -> str:
    """A value as yacs' merge_from_list decodes it (ast.literal_eval, else the plain string)."""
    if isinstance(value, str):
        return value
    return repr(value)


def d2_frozen(freeze: str, name: str) -> bool:
    """Whether detectron2 parameter `name` stays fixed under `--freeze` (beyond FREEZE_AT).

    Names follow detectron2's GeneralizedRCNN: backbone.bottom_up.* (ResNet), backbone.fpn_*,
    proposal_generator.* (RPN), roi_heads.box_head/box_predictor, roi_heads.decoder (DensePose's
    FPN feature decoder), roi_heads.densepose_head (the 8 convs), roi_heads.densepose_predictor
    (the deconvolutions that output coarse, fine, U, V). The seed recipe "fine-tune only the IUV
    layers" trains the last two; the decoder, shared input features, stays fixed as the FPN does.
    """
    if freeze in ("none", "stem"):
        return False  # FREEZE_AT handles the stem
    if freeze == "backbone":
        return name.startswith("backbone.")
    if freeze == "all_but_densepose_head":
        return not name.startswith(_DENSEPOSE_HEAD)
    if freeze == "all_but_densepose_predictor":
        return not name.startswith(_DENSEPOSE_PREDICTOR)
    raise TrainUserError(f"--freeze {freeze!r} is unknown: use one of {', '.join(_FREEZE_AT)}")


def apply_d2_freeze(model: Any, freeze: str) -> tuple[int, int]:
    """requires_grad per `d2_frozen`, before the optimizer is built (detectron2 skips fixed
    parameters); returns (frozen, trainable) element counts."""
    frozen = trainable = 0
    for name, param in model.named_parameters():
        if d2_frozen(freeze, name):
            param.requires_grad_(False)
        if param.requires_grad:
            trainable += param.numel()
        else:
            frozen += param.numel()
    if trainable == 0:
        raise TrainUserError(f"--freeze {freeze} leaves no parameter to train in this model: use --freeze none")
    return frozen, trainable


def with_total_norm_clipping(optimizer: Any, max_norm: float) -> Any:
    """Clip the total gradient norm before each step, as `solver.clip_gradients` means in the
    torchvision engine (detectron2's CLIP_GRADIENTS clips each parameter on its own)."""
    import torch

    base = type(optimizer)

    def step(self: Any, closure: Callable[[], Any] | None = None) -> Any:
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        return base.step(self, closure)

    optimizer.__class__ = type(f"{base.__name__}WithTotalNormClip", (base,), {"step": step})
    return optimizer


def write_symmetry_mat(path: str | Path, u_tables: np.ndarray, v_tables: np.ndarray) -> Path:
    """Write (24, 256, 256) U and V tables as DensePose's UV_symmetry_transforms.mat: keys
    U_transforms, V_transforms, each a 1 x 24 cell array whose cell i is the (256, 256) table of
    part i + 1, indexed [row = int(255 V), col = int(255 U)]."""
    import scipy.io

    cells = {}
    for key, tables in (("U_transforms", u_tables), ("V_transforms", v_tables)):
        tables = np.asarray(tables, dtype=np.float64)
        if tables.shape != (NUM_PARTS, TABLE_SIZE, TABLE_SIZE):
            raise ValueError(f"{key} tables have shape {tables.shape}, expected (24, 256, 256)")
        cell = np.empty((1, NUM_PARTS), dtype=object)
        for i in range(NUM_PARTS):
            cell[0, i] = tables[i]
        cells[key] = cell
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    scipy.io.savemat(str(tmp), cells, do_compression=True)
    os.replace(tmp, path)
    return path


def identity_tables() -> tuple[np.ndarray, np.ndarray]:
    """Tables that map each texel to its own centre (for data read without flips, where
    DensePose's mapper still insists on loading a file)."""
    centres = np.minimum((np.arange(TABLE_SIZE) + 0.5) / 255.0, 1.0)
    u, v = np.meshgrid(centres, centres)  # [row, col]: row from V, column from U
    return np.repeat(u[None], NUM_PARTS, 0), np.repeat(v[None], NUM_PARTS, 0)


def cache_dir() -> Path:
    """iopath's download cache, where detectron2's PathManager keeps dl.fbaipublicfiles.com files."""
    try:
        from iopath.common.file_io import get_cache_dir

        return Path(get_cache_dir())
    except ImportError:
        return Path(os.path.expanduser(os.getenv("FVCORE_CACHE", "~/.torch/iopath_cache")))


def densepose_data_dir(root: Path | None = None) -> Path:
    """Where PathManager looks for https://dl.fbaipublicfiles.com/densepose/data/<file>."""
    return (root if root is not None else cache_dir()) / "densepose" / "data"


@dataclass(frozen=True)
class D2Source:
    """One `--data` entry as detectron2 sees it: a registered dataset name, its files, its weight."""

    spec: str
    name: str
    json: Path
    images: Path
    weight: float
    charts: Path | None


def parse_sources(specs: Sequence[str], prefix: str) -> list[D2Source]:
    """`--data` entries ("PATH[:WEIGHT]", "JSON::IMAGES_DIR[:WEIGHT]") as D2Sources, parsed and
    validated by the data package exactly as for the torchvision engine (so a bad file is the
    same one-line error), then named for detectron2's DatasetCatalog."""
    from ..charts import find_charts
    from ..data.coco_densepose import CocoDensePose
    from ..data.sources import parse_data_arg

    sources = []
    for index, spec in enumerate(specs):
        parsed = parse_data_arg(str(spec))
        coco = CocoDensePose.load(parsed.path, parsed.images_dir)
        json_path, images = Path(coco.json_path).resolve(), Path(coco.images_dir).resolve()
        name = f"{prefix}{index}_{json_path.parent.name or 'data'}_{json_path.stem}"
        sources.append(D2Source(str(spec), name, json_path, images, parsed.weight, find_charts(json_path)))
    return sources


def symmetry_file(source: D2Source, work_dir: Path, flip: bool, data_dir: Path | None = None) -> Path:
    """The UV symmetry file DensePose's mapper will load for `source`.

    Without flips: an identity table (never read, but DatasetMapper loads one regardless). With
    flips: the data package's choice (`symmetry_for`): tables regenerated from the source's
    charts.npz for anny (its mirror map differs from SMPL's), DensePose's own file for SMPL or
    chart-less data (real DensePose-COCO) when it is in the download cache, else a one-line error.
    """
    target = work_dir / "d2_symmetry" / f"{source.name}.mat"
    if not flip:
        return write_symmetry_mat(target, *identity_tables())
    official = densepose_data_dir(data_dir) / SYMMETRY_FILE
    if official.is_file() and source.charts is None:
        return official
    from ..data.sources import symmetry_for

    tables = symmetry_for(source.json, official if official.is_file() else None)
    if tables is None:
        raise TrainUserError(f"--data {source.spec}: horizontal flips need the chart symmetry, but there is no "
                             f"charts.npz next to {source.json} and no DensePose {SYMMETRY_FILE} in "
                             f"{official.parent}: put one of them there, or set data.flip: false")
    return write_symmetry_mat(target, tables.U, tables.V)


def choose_evaluator(body_kind: str | None, data_dir: Path | None = None) -> str:
    """"densepose" (DensePose's own evaluator) or "ours" (densepose_train.evaluate).

    DensePose's GPS measures geodesics on SMPL from three downloaded files: right for SMPL
    charts (or real DensePose-COCO without a charts file), wrong for anny's. Without the files,
    SMPL data with a charts.npz falls back to our evaluator, which computes geodesics on it.
    """
    if body_kind is not None and body_kind != "smpl":
        return "ours"
    folder = densepose_data_dir(data_dir)
    missing = [name for name in GPS_EVAL_FILES if not (folder / name).is_file()]
    if not missing:
        return "densepose"
    if body_kind is not None:
        return "ours"
    raise TrainUserError(f"DensePose's GPS evaluator needs {', '.join(missing)} in {folder} "
                         f"(from {DENSEPOSE_DATA_URL}) and this dataset has no charts.npz for ours: "
                         "copy the files there or pass --charts PATH")


def _percent_or_none(value: Any) -> float | None:
    """detectron2 reports percent; -1 (no predictions) and NaN (no data) become None."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value) or value < 0:
        return None
    return value


def metrics_from_d2(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """detectron2 + DensePose evaluator results -> our metrics.json layout (bbox, segm, gps, gpsm).

    Keys come from Detectron2COCOEvaluatorAdapter ("bbox") and DensePoseCOCOEvaluator
    ("densepose_segm", the coarse-segmentation IoU mode; "densepose_gps"; "densepose_gpsm");
    per-category entries ("AP-person") are dropped.
    """
    layout = {"bbox": "bbox", "segm": "densepose_segm", "gps": "densepose_gps", "gpsm": "densepose_gpsm"}
    metrics: dict[str, dict[str, float | None]] = {}
    for ours, theirs in layout.items():
        block = results.get(theirs) or {}
        metrics[ours] = {k: _percent_or_none(v) for k, v in block.items() if "-" not in k}
    return metrics


def _load_d2_base(args: argparse.Namespace, out: Path) -> Path:
    """densepose_rcnn_R_50_FPN_s1x.yaml: --d2-config, a source checkout's configs/, or the copy above."""
    explicit = getattr(args, "d2_config", None)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise TrainUserError(f"--d2-config {explicit}: no such file; pass a DensePose config yaml")
        return path.resolve()
    import densepose

    checkout = Path(densepose.__file__).resolve().parents[1] / "configs" / S1X_CONFIG
    if checkout.is_file():
        return checkout
    folder = out / "d2_base_config"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Base-DensePose-RCNN-FPN.yaml").write_text(_BASE_FPN_YAML, encoding="utf-8")
    (folder / S1X_CONFIG).write_text(_S1X_YAML, encoding="utf-8")
    return folder / S1X_CONFIG


def _check_weights_file(weights: str) -> None:
    """Refuse a torchvision-engine checkpoint early: detectron2 would load none of its
    parameters and train or evaluate random weights with only a log warning."""
    if not weights or "://" in weights or not weights.endswith(".pth"):
        return
    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # pickles with custom objects: leave the judgement to detectron2
        return
    model = state.get("model", state) if isinstance(state, dict) else {}
    names = list(model) if isinstance(model, dict) else []
    if names and any(str(n).startswith("backbone.body.") for n in names):
        raise TrainUserError(f"{weights} is a torchvision-engine checkpoint: use it with --engine torchvision "
                             "(detectron2 needs a detectron2 .pkl/.pth)")


class WeightedMix:
    """Endless batches drawn image by image from several endless batch loaders by weight: each
    image picks a source with probability weight / sum (as the torchvision engine's MixedSampler),
    then takes that source's next image.

    DensePose's CombinedDataLoader has the same design but builds its pools as
    `[deque()] * len(iters)`, one deque shared by all loaders, so a refill from one loader serves
    the following draws whichever loader they picked: it mixes per batch, not per image.
    """

    def __init__(self, loaders: Sequence[Any], batch_size: int, weights: Sequence[float], seed: int = 0):
        if len(loaders) != len(weights) or not loaders:
            raise ValueError("one weight per loader")
        self.loaders, self.batch_size, self.weights, self.seed = list(loaders), int(batch_size), list(weights), seed

    def __iter__(self) -> Any:
        import random
        from collections import deque

        iters = [iter(loader) for loader in self.loaders]
        pools: list[deque] = [deque() for _ in iters]
        rng = random.Random(self.seed)
        while True:
            batch = []
            for index in rng.choices(range(len(iters)), weights=self.weights, k=self.batch_size):
                if not pools[index]:
                    try:
                        pools[index].extend(next(iters[index]))
                    except StopIteration:
                        return
                batch.append(pools[index].popleft())
            yield batch


# ------------------------------------------------------------------ detectron2 parts

def _register(source: D2Source, transform_src: Path) -> None:
    """Register a COCO-DensePose json through DensePose's own loader, with a local symmetry file."""
    from densepose.data.datasets.coco import CocoDatasetInfo, register_dataset
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if source.name in DatasetCatalog.list():
        DatasetCatalog.remove(source.name)
        MetadataCatalog.remove(source.name)
    register_dataset(CocoDatasetInfo(name=source.name, images_root=str(source.images),
                                     annotations_fpath=str(source.json)), datasets_root=None)
    # register_dataset points densepose_transform_src at the web copy, and Metadata refuses to
    # change a key once set: re-create the entry with the same fields and the local file.
    fields = {k: v for k, v in MetadataCatalog.get(source.name).as_dict().items() if k != "name"}
    fields["densepose_transform_src"] = str(transform_src)
    MetadataCatalog.remove(source.name)
    MetadataCatalog.get(source.name).set(**fields)


def _build_cfg(cfg: dict[str, Any], args: argparse.Namespace, train_names: Sequence[str],
               test_names: Sequence[str]) -> Any:
    from densepose import add_densepose_config
    from detectron2.config import get_cfg
    from detectron2.engine import default_setup
    from detectron2.utils import comm
    from detectron2.utils.logger import setup_logger

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = _load_d2_base(args, out)
    d2cfg = get_cfg()
    add_densepose_config(d2cfg)
    if "CATEGORY_MAPS" not in d2cfg.DATASETS:  # older DensePose: a separate call (train_net.py)
        from densepose import add_dataset_category_config

        add_dataset_category_config(d2cfg)
    d2cfg.merge_from_file(str(base))
    d2cfg.merge_from_list(d2_overrides(cfg, args))
    d2cfg.DATASETS.TRAIN = tuple(train_names)
    d2cfg.DATASETS.TEST = tuple(test_names)
    extra = list(getattr(args, "d2_opts", None) or [])
    if extra:
        d2cfg.merge_from_list(extra)
    d2cfg.freeze()
    default_setup(d2cfg, SimpleNamespace(config_file=str(base), eval_only=args.command != "train"))
    setup_logger(output=d2cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="densepose")
    return d2cfg


def cached_path(url: str, root: Path | None = None) -> Path:
    """Where iopath's HTTP handler keeps (and looks for) a download: cache dir + the URL's path;
    detectron2:// is detectron2's alias for https://dl.fbaipublicfiles.com/detectron2/."""
    from urllib.parse import urlparse

    if url.startswith("detectron2://"):
        url = "https://dl.fbaipublicfiles.com/detectron2/" + url[len("detectron2://"):]
    return (root if root is not None else cache_dir()) / urlparse(url).path.lstrip("/")


def _fetch_error(error: Exception, weights: str) -> TrainUserError:
    where = cached_path(weights) if "://" in weights else weights
    return TrainUserError(f"could not read weights {weights} ({type(error).__name__}); offline, put the file at "
                          f"{where} or pass --init PATH")


def _trainer_class(freeze: str, clip: float, reinit_coarse: bool, weights: Sequence[float], seed: int) -> type:
    from densepose.data import DatasetMapper, build_detection_train_loader
    from densepose.engine import Trainer
    from densepose.engine.trainer import SampleCountingLoader

    class DenseSynthTrainer(Trainer):
        """DensePose's Trainer plus our freeze sets, total-norm clipping, source weights and
        the seed's re-initialised coarse segmentation layer."""

        @classmethod
        def build_model(cls, cfg: Any) -> Any:
            model = super().build_model(cfg)
            frozen, trainable = apply_d2_freeze(model, freeze)
            print(f"freeze {freeze}: {trainable:,} parameters train, {frozen:,} fixed", file=sys.stderr)
            return model

        @classmethod
        def build_optimizer(cls, cfg: Any, model: Any) -> Any:
            optimizer = super().build_optimizer(cfg, model)
            return with_total_norm_clipping(optimizer, clip) if clip > 0 else optimizer

        @classmethod
        def build_train_loader(cls, cfg: Any) -> Any:
            names = list(cfg.DATASETS.TRAIN)
            if len(names) == 1:
                return super().build_train_loader(cfg)
            loaders = []
            for name in names:  # one loader (and mapper, so symmetry table) per source
                sub = cfg.clone()
                sub.defrost()
                sub.DATASETS.TRAIN, sub.DATASETS.TEST = (name,), ()
                sub.freeze()
                loaders.append(build_detection_train_loader(sub, mapper=DatasetMapper(sub, True)))
            from detectron2.utils import comm

            per_worker = cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
            return SampleCountingLoader(WeightedMix(loaders, per_worker, weights, seed + comm.get_rank()))

        def resume_or_load(self, resume: bool = True) -> None:
            super().resume_or_load(resume=resume)
            if reinit_coarse and self.start_iter == 0:
                from densepose.modeling.utils import initialize_module_params

                model = getattr(self.model, "module", self.model)
                initialize_module_params(model.roi_heads.densepose_predictor.ann_index_lowres)

    return DenseSynthTrainer


def _train(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    out = Path(args.out)
    sources = parse_sources(cfg["data"]["sources"], "densesynth_train_")
    if not sources:
        raise TrainUserError("no training data: pass --data DIR_OR_JSON[:weight] ... (or set data.sources)")
    for source in sources:
        _register(source, symmetry_file(source, out, bool(cfg["data"]["flip"])))
    d2cfg = _build_cfg(cfg, args, [s.name for s in sources], [])
    _check_weights_file(d2cfg.MODEL.WEIGHTS)
    trainer_cls = _trainer_class(cfg["train"]["freeze"], float(cfg["solver"]["clip_gradients"]),
                                 bool(cfg["train"]["reinit_coarse"]), [s.weight for s in sources],
                                 int(cfg["train"]["seed"]))
    trainer = trainer_cls(d2cfg)
    try:
        trainer.resume_or_load(resume=bool(getattr(args, "resume", False)))
    except OSError as error:  # URLError is an OSError: an unreachable download
        raise _fetch_error(error, d2cfg.MODEL.WEIGHTS) from None
    trainer.train()
    print(f"wrote {out / 'model_final.pth'}", file=sys.stderr)
    return 0


def _test_setup(args: argparse.Namespace, cfg: dict[str, Any], sources: Sequence[D2Source]) -> tuple[Any, Any]:
    """Config over the registered test sources and the loaded model, as train_net.py --eval-only."""
    from densepose.engine import Trainer
    from densepose.modeling.densepose_checkpoint import DensePoseCheckpointer

    for source in sources:
        _register(source, symmetry_file(source, Path(args.out), flip=False))
    d2cfg = _build_cfg(cfg, args, [], [s.name for s in sources])
    _check_weights_file(d2cfg.MODEL.WEIGHTS)
    model = Trainer.build_model(d2cfg)
    DensePoseCheckpointer(model, save_dir=d2cfg.OUTPUT_DIR).resume_or_load(d2cfg.MODEL.WEIGHTS, resume=False)
    model.eval()
    return d2cfg, model


def _instances_to_predictions(instances: Any, image_id: int) -> list[dict[str, Any]]:
    """detectron2 Instances -> our evaluator's prediction dicts (DensePoseResult per detection)."""
    from ..model.outputs import densepose_result

    instances = instances.to("cpu")
    boxes = instances.pred_boxes.tensor
    out = []
    if not instances.has("pred_densepose"):
        return out
    dp = instances.pred_densepose
    for k in range(len(instances)):
        x0, y0, x1, y1 = (float(v) for v in boxes[k])
        result = densepose_result(dp.coarse_segm[k:k + 1], dp.fine_segm[k:k + 1], dp.u[k:k + 1],
                                  dp.v[k:k + 1], boxes[k])
        out.append({"image_id": image_id, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(instances.scores[k]), "densepose": result})
    return out


def _evaluate(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from densepose.engine import Trainer
    from detectron2.evaluation import DatasetEvaluator, inference_on_dataset

    from ..charts import ChartSurface

    sources = parse_sources(cfg["data"]["test"], "densesynth_test_")
    if not sources:
        raise TrainUserError("no evaluation data: pass --data DIR_OR_JSON (or set data.test)")
    d2cfg, model = _test_setup(args, cfg, sources)
    out = Path(args.out)
    for source in sources:
        folder = out if len(sources) == 1 else out / source.name
        charts_path = getattr(args, "charts", None) or source.charts
        charts = ChartSurface.load(charts_path) if charts_path else None
        mode = choose_evaluator(charts.body_kind if charts else None)
        if mode == "densepose":
            sub = d2cfg.clone()
            sub.defrost()
            sub.DATASETS.TEST = (source.name,)
            sub.freeze()
            metrics = metrics_from_d2(Trainer.test(sub, model))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        else:
            from ..evaluate.coco_metrics import evaluate_predictions

            class Collect(DatasetEvaluator):
                def reset(self) -> None:
                    self.predictions: list[dict[str, Any]] = []

                def process(self, inputs: Any, outputs: Any) -> None:
                    for inp, output in zip(inputs, outputs):
                        self.predictions += _instances_to_predictions(output["instances"], inp["image_id"])

                def evaluate(self) -> dict[str, Any]:
                    return {}

            collect = Collect()
            inference_on_dataset(model, Trainer.build_test_loader(d2cfg, source.name), collect)
            metrics = evaluate_predictions(str(source.json), collect.predictions, charts, folder)
        print(f"{source.spec}: evaluator {mode}; wrote {folder / 'metrics.json'}", file=sys.stderr)
        print(json.dumps(metrics, indent=2))
    return 0


def _predict(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    import torch
    from detectron2.engine import DefaultPredictor

    from ..predict import draw_overlay, output_name, read_image_rgb, write_image_rgb

    d2cfg = _build_cfg(cfg, args, [], [])
    _check_weights_file(d2cfg.MODEL.WEIGHTS)
    predictor = DefaultPredictor(d2cfg)  # loads MODEL.WEIGHTS itself; expects BGR like apply_net
    threshold = getattr(args, "score_thresh", None)
    threshold = 0.5 if threshold is None else float(threshold)
    out, taken = Path(args.out), set()
    for path in args.images:
        rgb = read_image_rgb(Path(path))
        with torch.no_grad():
            instances = predictor(np.ascontiguousarray(rgb[..., ::-1]))["instances"]
        detections = [(p["bbox"][:2] + [p["bbox"][0] + p["bbox"][2], p["bbox"][1] + p["bbox"][3]], p["score"],
                       p["densepose"]) for p in _instances_to_predictions(instances, 0) if p["score"] >= threshold]
        target = out / output_name(Path(path), taken)
        write_image_rgb(target, draw_overlay(rgb, detections))
        print(f"{path}: {len(detections)} people -> {target}", file=sys.stderr)
    return 0


def run(command: str, args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    """Entry point from the CLI: command in train | evaluate | predict."""
    require_detectron2()
    commands = {"train": _train, "evaluate": _evaluate, "predict": _predict}
    if command not in commands:
        raise TrainUserError(f"command {command!r} is unknown: use train, evaluate or predict")
    args.command = command
    try:
        return commands[command](args, cfg)
    except ModuleNotFoundError as error:  # a partial install (detectron2 without DensePose's parts)
        if (error.name or "").split(".")[0] in ("detectron2", "densepose"):
            raise TrainUserError(f"{INSTALL_HINT} [missing module {error.name}]") from None
        raise
