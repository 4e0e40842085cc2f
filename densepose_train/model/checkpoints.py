"""Our own checkpoints (`OUT/model_XXXXXXX.pth`) and the `--init` choices.

A checkpoint is a `torch.save` of plain containers and tensors, so that `torch.load(...,
weights_only=True)` reads it back without unpickling code:
`{"format", "model", "optimizer", "scheduler", "iteration", "architecture", "config"}`.
`architecture` is the part of the `model:` config that fixes tensor shapes or what the weights
mean (depth, norm, stride placement, channel order, pixel statistics, widths); loading into a
model built with other values is refused with one line that names the differing setting, where
a bare `load_state_dict` would either fail with a page of shape errors or, worse, load weights
that mean something else (BGR weights into an RGB model load without complaint).
Writes are atomic (temporary file + `os.replace`): a run killed while saving leaves the previous
checkpoint intact instead of a truncated file that `--resume` would pick up.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import TrainUserError
from .checkpoint_import import ImportReport, import_detectron2_file, model_settings, read_checkpoint_file

FORMAT = "densepose_train/1"

# model: keys that fix parameter shapes or the meaning of the weights (see the module docstring).
ARCHITECTURE_KEYS = ("backbone", "norm", "stride_in_1x1", "input_format", "pixel_mean", "pixel_std",
                     "fpn_channels", "head_conv_channels", "head_conv_layers", "coarse_segm_channels",
                     "densepose_decoder")

# torchvision's ImageNet ResNets (IMAGENET1K_V1) as torch.hub caches them, and the input they expect.
TORCHVISION_WEIGHTS = {"resnet50": "resnet50-0676ba61.pth", "resnet18": "resnet18-f37072fd.pth"}
TORCHVISION_URL = "https://download.pytorch.org/models/{}"
TORCHVISION_MEAN_RGB = (123.675, 116.28, 103.53)     # 0.485, 0.456, 0.406 in 0..255 units
TORCHVISION_STD_RGB = (58.395, 57.12, 57.375)        # 0.229, 0.224, 0.225
# detectron2's MSRA ResNet-50 (what densepose_rcnn_R_50_FPN_s1x starts from), as its file cache keeps it.
MSRA_R50 = Path("detectron2") / "ImageNetPretrained" / "MSRA" / "R-50.pkl"
MSRA_R50_URL = "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl"


def architecture_signature(model: nn.Module) -> dict[str, Any]:
    """The `ARCHITECTURE_KEYS` of the config the model was built from (plain values)."""
    cfg = model_settings(model)
    return {key: _plain(cfg[key]) for key in ARCHITECTURE_KEYS if key in cfg}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and bool(np.allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-6))
    return a == b


def save_checkpoint(path: Path | str, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any | None = None, iteration: int = 0,
                    cfg: Mapping[str, Any] | None = None) -> Path:
    """Write weights, optimizer/scheduler state, iteration and architecture to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "iteration": int(iteration),
        "architecture": architecture_signature(model),
        "config": _plain_config(cfg) if cfg is not None else None,
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def _plain_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config as nested dicts/lists of str, numbers, bools and None (what weights_only reads)."""
    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        return str(value)
    return convert(cfg)


def read_our_checkpoint(path: Path | str) -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint`, read with `weights_only=True`."""
    path = Path(path)
    if path.suffix != ".pth":
        raise TrainUserError(f"checkpoint {path} is not a .pth file written by densepose_train train: pass "
                             "OUT/model_final.pth (or a model_XXXXXXX.pth)")
    data = read_checkpoint_file(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TrainUserError(f"checkpoint {path} was not written by densepose_train train (no '{FORMAT}' record): "
                             "pass one of its OUT/model_*.pth files, or a detectron2 file to --init")
    return data


def stored_config(path: Path | str) -> dict[str, Any] | None:
    """The config a checkpoint was trained with (to rebuild its model for evaluate / predict)."""
    return read_our_checkpoint(path).get("config")


def check_architecture(path: Path | str, stored: Mapping[str, Any], model: nn.Module,
                       skip: tuple[str, ...] = ()) -> None:
    """One-line error naming the first setting in which the checkpoint and the model differ."""
    current = architecture_signature(model)
    for key in ARCHITECTURE_KEYS:
        if key in skip or not (key in stored or key in current):
            continue
        mine, theirs = current.get(key), stored.get(key)
        if not _same(mine, theirs):
            shown = theirs if not isinstance(theirs, list) else "[" + ", ".join(f"{v:g}" for v in theirs) + "]"
            raise TrainUserError(
                f"checkpoint {path} was trained with model.{key}={shown} but this model has "
                f"model.{key}={mine}: pass --config with model.{key}: {shown} (the config the checkpoint was "
                "trained with) or another checkpoint")


def load_checkpoint(path: Path | str, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any | None = None) -> int:
    """Load our checkpoint into `model` (and optimizer/scheduler when given); returns its iteration."""
    path = Path(path)
    data = read_our_checkpoint(path)
    check_architecture(path, data.get("architecture") or {}, model)
    state = data["model"]
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        first = (result.missing_keys or result.unexpected_keys)[0]
        raise TrainUserError(f"checkpoint {path} does not fit this model ({len(result.missing_keys)} tensors missing, "
                             f"{len(result.unexpected_keys)} unknown, first {first}): it comes from another version "
                             "of densepose_train; retrain or load it with that version")
    if optimizer is not None:
        if data.get("optimizer") is None:
            raise TrainUserError(f"checkpoint {path} holds no optimizer state, so it cannot resume a run: start a "
                                 f"new run with --init {path}")
        try:
            optimizer.load_state_dict(data["optimizer"])
        except (ValueError, KeyError) as error:
            raise TrainUserError(f"checkpoint {path}: its optimizer state does not fit this run ({error}); resume "
                                 "with the same --freeze and config, or start afresh with --init") from None
    if scheduler is not None and data.get("scheduler") is not None:
        scheduler.load_state_dict(data["scheduler"])
    return int(data.get("iteration", 0))


# ---------------------------------------------------------------------------------------------
# --init
# ---------------------------------------------------------------------------------------------

def init_from(spec: str, model: nn.Module, reinit_coarse: bool = False) -> ImportReport:
    """Initialise `model` for `--init none | imagenet | PATH.pkl | PATH.pth`.

    none: keep the random initialisation. imagenet: the backbone from ImageNet weights already on
    disk (no download here): detectron2's MSRA R-50.pkl for an MSRA-style model (stride in the
    1x1, BGR, std 1), torchvision's file for a torchvision-style one. PATH.pkl: a detectron2
    checkpoint (densepose_rcnn_R_50_FPN_s1x or an MSRA backbone). PATH.pth: ours (weights only,
    the iteration starts at 0) or detectron2's own `model_final.pth`.
    """
    if spec == "none":
        return ImportReport(source="none (random initialisation)")
    if spec == "imagenet":
        return init_imagenet(model)
    path = Path(spec)
    if path.suffix == ".pkl":
        return import_detectron2_file(path, model, reinit_coarse=reinit_coarse)
    if path.suffix == ".pth":
        data = read_checkpoint_file(path)
        if isinstance(data, dict) and data.get("format") == FORMAT:
            return _init_from_ours(path, data, model, reinit_coarse)
        weights = data.get("model", data) if isinstance(data, dict) else None
        if isinstance(weights, Mapping) and any(str(k).startswith("backbone.bottom_up.") for k in weights):
            return import_detectron2_file(path, model, reinit_coarse=reinit_coarse)
        raise TrainUserError(f"checkpoint {path} is neither ours (densepose_train train) nor detectron2's: pass one "
                             "of those, or --init imagenet")
    raise TrainUserError(f"--init {spec!r} is not none, imagenet, a .pkl or a .pth file: pass one of those")


def _init_from_ours(path: Path, data: dict[str, Any], model: nn.Module, reinit_coarse: bool) -> ImportReport:
    """Weights of one of our checkpoints (not its optimizer: a new run starts at iteration 0)."""
    state = dict(data["model"])
    report = ImportReport(source=str(path))
    skip: tuple[str, ...] = ()
    if reinit_coarse:
        # The coarse layer may change width (2 -> 15 channels): it keeps its initial values.
        skip = ("coarse_segm_channels",)
        for key in [k for k in state if ".ann_index_lowres." in k]:
            report.ignored[key] = "train.reinit_coarse: the coarse layer starts afresh"
            report.not_loaded[key] = "train.reinit_coarse"
            del state[key]
    check_architecture(path, data.get("architecture") or {}, model, skip=skip)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in report.not_loaded]
    if missing or result.unexpected_keys:
        first = (missing or result.unexpected_keys)[0]
        raise TrainUserError(f"checkpoint {path} does not fit this model ({len(missing)} tensors missing, "
                             f"{len(result.unexpected_keys)} unknown, first {first}): it comes from another version "
                             "of densepose_train; retrain or load it with that version")
    report.loaded.update({key: key for key in state})
    return report


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _fvcore_caches() -> list[Path]:
    """Where detectron2 keeps downloaded files ($FVCORE_CACHE, then iopath's and fvcore's defaults)."""
    roots = []
    if os.environ.get("FVCORE_CACHE"):
        roots.append(Path(os.environ["FVCORE_CACHE"]))
    home = Path(os.path.expanduser("~"))
    roots += [home / ".torch" / "iopath_cache", home / ".torch" / "fvcore_cache"]
    return roots


def init_imagenet(model: nn.Module) -> ImportReport:
    """ImageNet backbone weights from a local cache, matched to the model's conventions."""
    cfg = model_settings(model)
    backbone = cfg.get("backbone")
    if backbone not in TORCHVISION_WEIGHTS:
        raise TrainUserError(f"--init imagenet has no weights for model.backbone {backbone!r}: use --init none "
                             "(tiny is a test backbone) or model.backbone: resnet50")
    msra_style = bool(cfg.get("stride_in_1x1")) and cfg.get("input_format") == "BGR" and \
        np.allclose(cfg.get("pixel_std", ()), 1.0)
    if msra_style and backbone == "resnet50":
        for root in _fvcore_caches():
            candidate = root / MSRA_R50
            if candidate.is_file():
                return import_detectron2_file(candidate, model)
        raise TrainUserError(
            f"--init imagenet with detectron2's conventions (model.stride_in_1x1 true, BGR, pixel_std 1) needs "
            f"detectron2's MSRA R-50.pkl, which is not in {_fvcore_caches()[0] / MSRA_R50}: download {MSRA_R50_URL} "
            "there, or pass --init PATH.pkl")
    _require_torchvision_style(cfg, backbone)
    file = _hub_checkpoints() / TORCHVISION_WEIGHTS[backbone]
    if not file.is_file():
        raise TrainUserError(f"--init imagenet needs torchvision's {backbone} weights at {file} (no download here): "
                             f"place {TORCHVISION_URL.format(TORCHVISION_WEIGHTS[backbone])} there, or use --init none")
    return _import_torchvision_resnet(file, model)


def _require_torchvision_style(cfg: Mapping[str, Any], backbone: str) -> None:
    """torchvision's ImageNet ResNets: stride in the 3x3, RGB, ImageNet mean and std, batch norm."""
    wanted = {"stride_in_1x1": False, "input_format": "RGB"}
    if backbone == "resnet18":
        wanted.pop("stride_in_1x1")            # BasicBlock: no 1x1 conv, the flag changes nothing
    for key, value in wanted.items():
        if cfg.get(key) != value:
            raise TrainUserError(
                f"--init imagenet uses torchvision's {backbone} weights, trained with model.stride_in_1x1: false, "
                f"input_format: RGB, pixel_mean: {list(TORCHVISION_MEAN_RGB)}, pixel_std: "
                f"{list(TORCHVISION_STD_RGB)}; model.{key} is {cfg.get(key)!r}: set those, or pass detectron2's "
                "R-50.pkl with --init PATH.pkl")
    for key, value in (("pixel_mean", TORCHVISION_MEAN_RGB), ("pixel_std", TORCHVISION_STD_RGB)):
        if not np.allclose(cfg.get(key, ()), value, atol=1e-2):
            raise TrainUserError(f"--init imagenet uses torchvision's {backbone} weights: set model.{key}: "
                                 f"{list(value)} (model.{key} is {cfg.get(key)})")
    if cfg.get("norm") == "group_norm":
        raise TrainUserError("--init imagenet brings batch-norm statistics, which model.norm group_norm has no "
                             "place for: set model.norm: frozen_bn (or bn), or use --init none")


def _import_torchvision_resnet(file: Path, model: nn.Module) -> ImportReport:
    """torchvision's `resnet*.pth` (conv1, bn1, layer1..4) into `backbone.body`, all checked before copying."""
    data = read_checkpoint_file(file)
    if not isinstance(data, Mapping) or "conv1.weight" not in data:
        raise TrainUserError(f"checkpoint {file} is not a torchvision ResNet state dict: replace it with the file "
                             "from download.pytorch.org")
    state = model.state_dict()
    report = ImportReport(source=str(file))
    plan = []
    for key, value in data.items():
        ours = f"backbone.body.{key}"
        if key.startswith("fc."):
            report.ignored[key] = "ImageNet classifier: a detector has none"
        elif key.endswith("num_batches_tracked") and ours not in state:
            report.ignored[key] = "BatchNorm counter: frozen batch norm keeps none"
        elif ours not in state or tuple(state[ours].shape) != tuple(value.shape):
            raise TrainUserError(f"checkpoint {file}: '{key}' {tuple(value.shape)} has no place in this model's "
                                 f"backbone: the file is not torchvision's {model_settings(model).get('backbone')}")
        else:
            plan.append((ours, key, value))
    for ours, key, value in plan:
        with torch.no_grad():
            state[ours].copy_(value.to(state[ours].dtype))
        report.loaded[ours] = key
    return report
