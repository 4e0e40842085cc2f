"""Load, merge and validate training configs.

`train_defaults.yaml` is the schema, as the renderer's `defaults.yaml` is for render configs:
its keys are the only keys, each default fixes its key's kind, and `CHOICES` / the checks below
close the rest. One file as documentation and schema means no option exists without a default.
Precedence: defaults, then the `--config` file, then command-line options (dotted keys).
Every mistake is one `TrainUserError` line naming the file and the key. Reading the file,
merging and "did you mean" are the renderer's own (`densesynth.core.schema`, neutral: it imports
nothing else of densesynth); the kind rules (`_coerce`) and the checks here are the trainer's.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from .errors import TrainUserError

DEFAULTS_PATH = Path(__file__).with_name("train_defaults.yaml")

CHOICES: dict[str, tuple[str, ...]] = {
    "model.backbone": ("resnet50", "resnet18", "tiny"),
    "model.norm": ("frozen_bn", "group_norm", "bn"),
    "model.input_format": ("BGR", "RGB"),
    "model.coarse_segm_channels": (2, 15),
    "model.densepose_pooler_type": ("ROIAlign", "ROIAlignV2"),
    "test.dp_convention": ("exact", "densepose"),
}

# `train.freeze` values: what each leaves fixed is documented in train/trainer.py (FREEZE_SETS).
FREEZE_CHOICES = ("none", "stem", "backbone", "all_but_densepose_head", "all_but_densepose_predictor")

# Lists of strings that may be empty.
STRING_LISTS = {"data.sources", "data.test"}

# Numbers that must be > 0, >= 0, or within [0, 1].
POSITIVE = {"model.min_size", "model.max_size", "model.fpn_channels", "model.head_conv_channels",
            "model.head_conv_layers", "model.roi_size", "model.heatmap_size", "model.box_detections_per_img",
            "model.box_head_dim", "model.roi_batch_size_per_image",
            "solver.batch_size", "solver.base_lr", "solver.reference_batch_size", "solver.max_iter",
            "test.batch_size", "train.log_period"}
NON_NEGATIVE = {"loss.coarse_weight", "loss.fine_weight", "loss.uv_weight", "data.num_workers", "solver.lr",
                "solver.warmup_iters", "solver.momentum", "solver.weight_decay", "solver.clip_gradients",
                "train.checkpoint_period", "train.seed", "train.threads"}
UNIT_INTERVAL = {"model.score_thresh", "model.box_nms_thresh", "model.densepose_iou_threshold", "solver.warmup_factor", "solver.momentum", "solver.gamma"}

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def default_config() -> dict[str, Any]:
    """The embedded defaults (a fresh copy each call: callers may mutate it)."""
    with open(DEFAULTS_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the user's file, then `overrides` (dotted keys from the command line), validated."""
    config = default_config()
    source = "defaults"
    if path is not None:
        source = str(path)
        _merge(config, _read_yaml(Path(path)), source, prefix="")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(config, dotted, value)
    validate(config, source if not overrides else f"{source} + command line")
    return config


def config_from_mapping(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Defaults overlaid with `data` (a config already read, e.g. stored in a checkpoint), validated."""
    config = default_config()
    _merge(config, data, source, prefix="")
    validate(config, source)
    return config


def save_config(config: dict[str, Any], path: Path) -> None:
    """Write the resolved config; `load_config(path)` gives it back unchanged."""
    path.write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=None), encoding="utf-8")


def _schema():
    # At call time: importing the CLI or this module loads nothing of densesynth.
    from densesynth.core import schema

    return schema


def _read_yaml(path: Path) -> dict[str, Any]:
    return _schema().read_yaml_mapping(path, TrainUserError, sections="model:, solver:, ...")


def _merge(base: dict[str, Any], user: dict[str, Any], source: str, prefix: str) -> None:
    _schema().merge(base, user, source, coerce=_coerce, error=TrainUserError, prefix=prefix, word_order=True)


def _set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    _schema().set_dotted(config, dotted, value, "command line", coerce=_coerce)


def _suggest(key: str, options: dict[str, Any]) -> str:
    return _schema().suggest(key, options, word_order=True)


def _is_number(value: Any) -> bool:
    """A finite int or float: an inf or NaN learning rate, mean or weight trains nothing."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _coerce(dotted: str, default: Any, value: Any, source: str) -> Any:
    """Check `value` against the kind of `default`; an int given for a float key becomes a float."""
    def fail(expected: str) -> TrainUserError:
        return TrainUserError(f"config {source}: '{dotted}' must be {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail("a whole number")
        return value
    if isinstance(default, float):
        if not _is_number(value):
            raise fail("a finite number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise fail("a list")
        if dotted in STRING_LISTS:
            if not all(isinstance(v, str) for v in value):
                raise fail("a list of strings")
            return value
        if dotted == "solver.steps":
            if not all(_is_number(v) for v in value):
                raise fail("a list of numbers")
            return [float(v) for v in value]
        if not (len(value) == len(default) and all(_is_number(v) for v in value)):
            raise fail(f"a list of {len(default)} numbers")
        return [float(v) for v in value]
    return value


def validate(config: dict[str, Any], source: str) -> None:
    """Checks across values that the kinds alone cannot express."""
    def fail(dotted: str, text: str) -> TrainUserError:
        return TrainUserError(f"config {source}: '{dotted}' {text}")

    for dotted, choices in CHOICES.items():
        value = get(config, dotted)
        if value not in choices:
            raise fail(dotted, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    for dotted in POSITIVE:
        if not get(config, dotted) > 0:
            raise fail(dotted, f"must be above 0, got {get(config, dotted)!r}")
    for dotted in NON_NEGATIVE:
        if get(config, dotted) < 0:
            raise fail(dotted, f"must be 0 or more, got {get(config, dotted)!r}")
    for dotted in UNIT_INTERVAL:
        if not 0.0 <= get(config, dotted) <= 1.0:
            raise fail(dotted, f"must lie in [0, 1], got {get(config, dotted)!r}")
    steps = config["solver"]["steps"]
    if any(not 0.0 < s <= 1.0 for s in steps) or steps != sorted(steps):
        raise fail("solver.steps", f"must be increasing fractions of max_iter in (0, 1], got {steps!r}")
    if config["model"]["max_size"] < config["model"]["min_size"]:
        raise fail("model.max_size", "must be at least model.min_size")
    if config["model"]["heatmap_size"] != 4 * config["model"]["roi_size"]:
        raise fail("model.heatmap_size", f"must be 4 x model.roi_size = {4 * config['model']['roi_size']} "
                   "(the head upsamples x2 twice)")
    if any(s <= 0 for s in config["model"]["pixel_std"]):
        raise fail("model.pixel_std", "must be three numbers above 0")
    freeze = config["train"]["freeze"]
    if freeze not in FREEZE_CHOICES:
        raise fail("train.freeze", f"must be one of {', '.join(FREEZE_CHOICES)}, got {freeze!r}"
                   f"{_suggest(freeze, dict.fromkeys(FREEZE_CHOICES))}")
    if not _DEVICE.match(config["train"]["device"]):
        raise fail("train.device", f"must be auto, cpu, cuda or cuda:N, got {config['train']['device']!r}")
    if config["train"]["init"] == "none" and freeze not in ("none",):
        raise fail("train.freeze", f"is {freeze!r} with init none: that would freeze random weights: pass --freeze none (train.freeze: none)")
    if not config["train"]["init"]:
        raise fail("train.init", "must be none, imagenet or a checkpoint path")


def get(config: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key (`get(cfg, "solver.max_iter")`)."""
    return _schema().get(config, dotted)


def leaves(config: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf."""
    return _schema().leaves(config, prefix)


def effective_lr(config: dict[str, Any]) -> float:
    """`solver.lr` when set, else the linear scaling rule (Goyal et al.) from `base_lr`."""
    solver = config["solver"]
    if solver["lr"] > 0:
        return float(solver["lr"])
    return float(solver["base_lr"]) * solver["batch_size"] / solver["reference_batch_size"]


