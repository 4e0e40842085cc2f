"""Import detectron2's DensePose R-CNN weights (`model_final_162be9.pkl`) into our torchvision model.

detectron2 is not installable here, so the file is read without it: a detectron2 model-zoo `.pkl`
is a pickle of `{"model": {name: numpy array}, "__author__": ...}` (detectron2
`detectron2/checkpoint/detection_checkpoint.py`, `_load_file`), read by a restricted unpickler
that can rebuild numpy arrays and nothing else, so that a checkpoint can never run code.
The key names and shapes below were read from detectron2's source (files cited at
`reference_shapes`); `import_detectron2_state` renames them onto `densepose_train.model.rcnn`'s
module names, swaps the classifier's background row (detectron2 puts it last, torchvision
first) and widens the class-specific box regression to torchvision's (K + 1) * 4 rows.
Anything that would make the imported weights mean something else (stride in the 3x3 conv,
RGB input, ImageNet pixel std, trainable BN, another depth or head width) is refused with
a one-line `TrainUserError` naming the setting to use.
"""
from __future__ import annotations

import codecs
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import TrainUserError

REFERENCE_NAME = "densepose_rcnn_R_50_FPN_s1x (model_final_162be9.pkl)"

# ResNet-50 stages as detectron2 names them (res2..res5): blocks, bottleneck width, output width.
# detectron2/modeling/backbone/resnet.py: build_resnet_backbone, num_blocks_per_stage[50] = [3, 4, 6, 3],
# bottleneck = 64 * 2**i, out = 256 * 2**i (RES2_OUT_CHANNELS 256, STEM_OUT_CHANNELS 64).
RESNET50_STAGES = ((3, 64, 256), (4, 128, 512), (6, 256, 1024), (3, 512, 2048))
FPN_CHANNELS = 256          # MODEL.FPN.OUT_CHANNELS
NUM_ANCHORS = 3             # one size per level x ASPECT_RATIOS [[0.5, 1.0, 2.0]]
BOX_FC_DIM = 1024           # MODEL.ROI_BOX_HEAD.FC_DIM, NUM_FC 2, POOLER_RESOLUTION 7
BOX_POOL = 7
NUM_CLASSES = 1             # person (MODEL.ROI_HEADS.NUM_CLASSES 1)
HEAD_DIM = 512              # MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_DIM
HEAD_LAYERS = 8             # NUM_STACKED_CONVS
DECONV_KERNEL = 4           # DECONV_KERNEL
NUM_PATCHES = 24            # NUM_PATCHES (+ 1 background channel)
COARSE_CHANNELS = 2         # NUM_COARSE_SEGM_CHANNELS in Base-DensePose-RCNN-FPN.yaml
DECODER_DIM = 256           # DECODER_CONV_DIMS = DECODER_NUM_CLASSES = 256, DECODER_COMMON_STRIDE 4
PIXEL_MEAN_BGR = (103.530, 116.280, 123.675)   # MODEL.PIXEL_MEAN (BGR, INPUT.FORMAT "BGR")
PIXEL_STD = (1.0, 1.0, 1.0)                    # MODEL.PIXEL_STD: MSRA weights absorb the std
FROZEN_BN_EPS = 1e-5        # detectron2/layers/batch_norm.py FrozenBatchNorm2d(eps=1e-5)

# Decoder scale heads: detectron2 names them by FPN level and numbers the Sequential's members;
# a 2x bilinear upsample follows each conv below stride 4, so the convs sit at even indices.
DECODER_CONVS = {"p2": (0,), "p3": (0,), "p4": (0, 2), "p5": (0, 2, 4)}

# Keys that a detectron2 checkpoint may hold without a tensor of ours behind them (documented
# ignores): non-learnt buffers that older detectron2 versions saved and the model rebuilds from
# its config (detectron2's DetectionCheckpointer drops the same ones).
IGNORABLE_PREFIXES = {
    "pixel_mean": "input normalisation buffer: ours comes from model.pixel_mean (checked against it)",
    "pixel_std": "input normalisation buffer: ours comes from model.pixel_std (checked against it)",
    "proposal_generator.anchor_generator.cell_anchors.": "anchor buffer: rebuilt from the anchor sizes",
}


def reference_shapes(decoder: bool = True, coarse_channels: int = COARSE_CHANNELS) -> dict[str, tuple[int, ...]]:
    """Every learnt tensor of `densepose_rcnn_R_50_FPN_s1x`, detectron2 name -> shape (335 keys).

    Read from facebookresearch/detectron2:
    - detectron2/modeling/backbone/resnet.py: BasicStem (`stem.conv1`, 7x7/2, no bias, `.norm`),
      BottleneckBlock (`conv1` 1x1, `conv2` 3x3, `conv3` 1x1, `shortcut` 1x1 in the first block
      of each stage, every conv bias-free with a `.norm` FrozenBatchNorm2d: weight, bias,
      running_mean, running_var), stages `res2..res5` under `backbone.bottom_up`;
    - detectron2/modeling/backbone/fpn.py: `fpn_lateral{2..5}` (1x1) and `fpn_output{2..5}`
      (3x3), with bias since FPN.NORM is "", LastLevelMaxPool (no weights);
    - detectron2/modeling/proposal_generator/rpn.py: StandardRPNHead `rpn_head.conv` (3x3),
      `objectness_logits` (A), `anchor_deltas` (4A), under `proposal_generator`;
    - detectron2/modeling/roi_heads/box_head.py: FastRCNNConvFCHead `fc1`, `fc2`;
      detectron2/modeling/roi_heads/fast_rcnn.py: FastRCNNOutputLayers `cls_score` (K + 1 rows,
      background LAST), `bbox_pred` (K * 4 rows: class-specific, no background row);
    - projects/DensePose/densepose/modeling/roi_heads/roi_head.py: `Decoder` (Panoptic FPN head,
      on by default: config.py ROI_DENSEPOSE_HEAD.DECODER_ON = True, and DENSEPOSE_IUV.md lists
      R_50_FPN_s1x among the "Improved Baselines" that use it), scale heads `p2..p5` +
      `predictor` (1x1), all 256 wide;
    - projects/DensePose/densepose/modeling/roi_heads/v1convx.py: `body_conv_fcn1..8` (3x3, bias);
    - projects/DensePose/densepose/modeling/predictors/chart.py: ConvTranspose2d
      `ann_index_lowres` (coarse), `index_uv_lowres`, `u_lowres`, `v_lowres` (25 each),
      weights shaped (in, out, k, k);
    - projects/DensePose/configs/Base-DensePose-RCNN-FPN.yaml, densepose_rcnn_R_50_FPN_s1x.yaml
      and densepose/config.py for the counts (NUM_CLASSES 1, NUM_FC 2, CONV_HEAD_DIM 512,
      NUM_STACKED_CONVS 8, DECONV_KERNEL 4, NUM_PATCHES 24, NUM_COARSE_SEGM_CHANNELS 2).
    `decoder=False` / `coarse_channels=15` give the legacy-style variants (for error messages).
    """
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_norm(name: str, out: int, inp: int, k: int) -> None:
        shapes[f"{name}.weight"] = (out, inp, k, k)
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.norm.{part}"] = (out,)

    def conv(name: str, out: int, inp: int, k: int) -> None:
        shapes[f"{name}.weight"] = (out, inp, k, k)
        shapes[f"{name}.bias"] = (out,)

    bottom = "backbone.bottom_up"
    conv_norm(f"{bottom}.stem.conv1", 64, 3, 7)
    inp = 64
    for stage, (blocks, width, out) in enumerate(RESNET50_STAGES, start=2):
        for block in range(blocks):
            name = f"{bottom}.res{stage}.{block}"
            if block == 0:
                conv_norm(f"{name}.shortcut", out, inp, 1)
            conv_norm(f"{name}.conv1", width, inp if block == 0 else out, 1)
            conv_norm(f"{name}.conv2", width, width, 3)
            conv_norm(f"{name}.conv3", out, width, 1)
        inp = out
    for level, (_, _, channels) in zip(range(2, 6), RESNET50_STAGES):
        conv(f"backbone.fpn_lateral{level}", FPN_CHANNELS, channels, 1)
        conv(f"backbone.fpn_output{level}", FPN_CHANNELS, FPN_CHANNELS, 3)
    rpn = "proposal_generator.rpn_head"
    conv(f"{rpn}.conv", FPN_CHANNELS, FPN_CHANNELS, 3)
    conv(f"{rpn}.objectness_logits", NUM_ANCHORS, FPN_CHANNELS, 1)
    conv(f"{rpn}.anchor_deltas", 4 * NUM_ANCHORS, FPN_CHANNELS, 1)
    linear = {"roi_heads.box_head.fc1": (BOX_FC_DIM, FPN_CHANNELS * BOX_POOL * BOX_POOL),
              "roi_heads.box_head.fc2": (BOX_FC_DIM, BOX_FC_DIM),
              "roi_heads.box_predictor.cls_score": (NUM_CLASSES + 1, BOX_FC_DIM),
              "roi_heads.box_predictor.bbox_pred": (4 * NUM_CLASSES, BOX_FC_DIM)}
    for name, shape in linear.items():
        shapes[f"{name}.weight"] = shape
        shapes[f"{name}.bias"] = (shape[0],)
    head_in = FPN_CHANNELS
    if decoder:
        for level, indices in DECODER_CONVS.items():
            for index in indices:
                conv(f"roi_heads.decoder.{level}.{index}", DECODER_DIM, FPN_CHANNELS if index == 0 else DECODER_DIM, 3)
        conv("roi_heads.decoder.predictor", DECODER_DIM, DECODER_DIM, 1)
        head_in = DECODER_DIM
    for layer in range(1, HEAD_LAYERS + 1):
        conv(f"roi_heads.densepose_head.body_conv_fcn{layer}", HEAD_DIM, head_in if layer == 1 else HEAD_DIM, 3)
    for name, out in (("ann_index_lowres", coarse_channels), ("index_uv_lowres", NUM_PATCHES + 1),
                      ("u_lowres", NUM_PATCHES + 1), ("v_lowres", NUM_PATCHES + 1)):
        shapes[f"roi_heads.densepose_predictor.{name}.weight"] = (HEAD_DIM, out, DECONV_KERNEL, DECONV_KERNEL)
        shapes[f"roi_heads.densepose_predictor.{name}.bias"] = (out,)
    return shapes


# ---------------------------------------------------------------------------------------------
# Reading checkpoint files
# ---------------------------------------------------------------------------------------------

class _RefusedGlobal(Exception):
    """A pickle asked for a global outside the allow-list (carries 'module.name')."""


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes, limited to latin-1 text."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1") or errors != "strict" \
            or not isinstance(text, str):
        raise _RefusedGlobal(f"_codecs.encode({encoding!r})")
    return codecs.encode(text, "latin-1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Exactly what pickled numpy arrays need (numpy 1.x and 2.x spell the module differently)."""
    from numpy.core import multiarray, numeric  # the modules numpy 1.x pickles name

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): multiarray.scalar,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "scalar"): multiarray.scalar,
        ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,       # protocol 5
        ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
        ("collections", "OrderedDict"): __import__("collections").OrderedDict,
        ("_codecs", "encode"): _latin1_encode,
    }
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, strings, numbers and numpy arrays; refuses every other global.

    The allow-list is matched on the exact (module, name) pair: no module prefixes and no dotted
    names, since protocol 4 resolves a dotted name attribute by attribute
    (`numpy` + `testing._private.utils.runstring` would reach an exec).
    """

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self._ALLOWED.get((module, name))
        if found is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise _RefusedGlobal("persistent id (a torch zip file renamed .pkl?)")


def _unpickle_arrays(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            return _ArrayUnpickler(handle, encoding="latin1").load()
    except _RefusedGlobal as refused:
        raise TrainUserError(
            f"checkpoint {path} asks to load '{refused}', which is not numpy array data: refusing to "
            "unpickle it (a detectron2 .pkl holds only arrays; re-export it or pass a .pth)") from None
    except Exception as error:   # a damaged pickle can fail in many ways; none of them is a bug of ours
        raise TrainUserError(f"checkpoint {path} is not a readable pickle ({type(error).__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else 'no detail'}): pass an intact "
                             "detectron2 .pkl") from None


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainUserError(f"checkpoint {path} cannot be read as weights only ({first[:160]}): "
                             "pass a state-dict .pth or a detectron2 .pkl") from None


def read_checkpoint_file(path: Path | str) -> Any:
    """The raw object in a `.pkl` (restricted unpickler) or `.pth` (`torch.load(weights_only=True)`)."""
    path = Path(path)
    if not path.is_file():
        raise TrainUserError(f"checkpoint {path} does not exist: pass an existing .pkl or .pth file")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if path.suffix == ".pth" or magic.startswith(b"PK"):   # torch.save writes a zip archive
        return _torch_load(path)
    if path.suffix == ".pkl":
        return _unpickle_arrays(path)
    raise TrainUserError(f"checkpoint {path} has neither a .pkl (detectron2) nor a .pth (PyTorch) suffix: "
                         "rename it or pass the right file")


def _as_array(path: Path, key: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise TrainUserError(f"checkpoint {path}: '{key}' is {type(value).__name__}"
                             f"{'' if not isinstance(value, np.ndarray) else ' of ' + str(value.dtype)}, "
                             "not a numeric array: pass a detectron2 model checkpoint")
    return value


def load_detectron2_checkpoint(path: Path | str) -> dict[str, np.ndarray]:
    """A detectron2 checkpoint's weights, name -> numpy array.

    Accepts the model-zoo layout `{"model": {...}, "__author__": ...}`, detectron2's own
    `model_final.pth` (`{"model": state_dict, "optimizer": ..., ...}`), a flat name -> array dict,
    and Caffe2 ImageNet backbones such as detectron2's `ImageNetPretrained/MSRA/R-50.pkl`
    (renamed as detectron2's `c2_model_loading.convert_basic_c2_names` does).
    """
    path = Path(path)
    data = read_checkpoint_file(path)
    if not isinstance(data, Mapping):
        raise TrainUserError(f"checkpoint {path} holds a {type(data).__name__}, not a dict of weights: "
                             "pass a detectron2 checkpoint")
    weights = data.get("model", data.get("blobs", data))
    if not isinstance(weights, Mapping) or not weights:
        raise TrainUserError(f"checkpoint {path} has no weights under 'model': pass a detectron2 model checkpoint")
    arrays = {str(key): _as_array(path, str(key), value) for key, value in weights.items()
              if not str(key).endswith("_momentum")}          # Caffe2 optimiser state
    if _looks_caffe2(arrays):
        arrays = convert_caffe2_backbone_names(arrays)
    return arrays


def _looks_caffe2(arrays: Mapping[str, np.ndarray]) -> bool:
    return "conv1_w" in arrays and any(key.startswith("res2_0_branch2a") for key in arrays)


def convert_caffe2_backbone_names(blobs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Caffe2 ResNet blob names (`res2_0_branch2a_w`, `res_conv1_bn_s`) -> detectron2 names.

    The renaming of detectron2/checkpoint/c2_model_loading.py `convert_basic_c2_names`, for the
    backbone only: `_w/_b` -> `.weight/.bias`, `bn_s/bn_b/bn_rm/bn_riv` -> `norm.*`,
    `branch1` -> `shortcut`, `branch2a/b/c` -> `conv1/2/3`, `conv1` -> `stem.conv1`; prefixed with
    `backbone.bottom_up.`. The ImageNet classifier (`fc1000_*`) keeps its name and is ignored.
    AffineChannel files carry no running statistics: FrozenBN then gets mean 0, variance 1, as
    detectron2's FrozenBatchNorm2d._load_from_state_dict fills them.
    """
    out: dict[str, np.ndarray] = {}
    for key, value in blobs.items():
        if key.startswith("fc1000"):
            out[key] = value
            continue
        name = key.replace("_", ".")
        for old, new in ((".bn.s", ".norm.weight"), (".bn.b", ".norm.bias"), (".bn.rm", ".norm.running_mean"),
                         (".bn.riv", ".norm.running_var")):
            if name.endswith(old):
                name = name[: -len(old)] + new
                break
        else:
            if name.endswith(".w"):
                name = name[:-2] + ".weight"
            elif name.endswith(".b"):
                name = name[:-2] + ".bias"
        if name.startswith("res.conv1.norm."):
            name = "conv1.norm." + name[len("res.conv1.norm."):]
        if name.startswith("conv1."):
            name = "stem." + name
        for old, new in ((".branch1.", ".shortcut."), (".branch2a.", ".conv1."), (".branch2b.", ".conv2."),
                         (".branch2c.", ".conv3.")):
            name = name.replace(old, new)
        out[f"backbone.bottom_up.{name}"] = value
    for key in [k for k in out if k.endswith(".norm.weight")]:
        stem = key[: -len("weight")]
        channels = out[key].shape
        out.setdefault(stem + "running_mean", np.zeros(channels, dtype=np.float32))
        out.setdefault(stem + "running_var", np.ones(channels, dtype=np.float32))
    return out


# ---------------------------------------------------------------------------------------------
# Mapping detectron2 names onto ours
# ---------------------------------------------------------------------------------------------

# How a detectron2 tensor becomes ours: "copy", "cls_swap" (background row last -> first),
# "bbox_pad" (K * 4 rows -> (K + 1) * 4 with zero background rows, unused by torchvision).
Transform = str

_NORM_PARTS = ("weight", "bias", "running_mean", "running_var")


def name_map(decoder: bool = True) -> Iterator[tuple[str, str, Transform]]:
    """(detectron2 name, our name, transform) for every tensor of the reference checkpoint."""
    bottom = "backbone.bottom_up"
    yield f"{bottom}.stem.conv1.weight", "backbone.body.conv1.weight", "copy"
    for part in _NORM_PARTS:
        yield f"{bottom}.stem.conv1.norm.{part}", f"backbone.body.bn1.{part}", "copy"
    for stage, (blocks, _, _) in enumerate(RESNET50_STAGES, start=2):
        for block in range(blocks):
            d2 = f"{bottom}.res{stage}.{block}"
            ours = f"backbone.body.layer{stage - 1}.{block}"
            convs = [(f"conv{k}", f"conv{k}", f"bn{k}") for k in (1, 2, 3)]
            if block == 0:
                convs.insert(0, ("shortcut", "downsample.0", "downsample.1"))
            for d2_conv, our_conv, our_norm in convs:
                yield f"{d2}.{d2_conv}.weight", f"{ours}.{our_conv}.weight", "copy"
                for part in _NORM_PARTS:
                    yield f"{d2}.{d2_conv}.norm.{part}", f"{ours}.{our_norm}.{part}", "copy"
    for level in range(2, 6):
        for part in ("weight", "bias"):
            yield f"backbone.fpn_lateral{level}.{part}", f"backbone.fpn.inner_blocks.{level - 2}.0.{part}", "copy"
            yield f"backbone.fpn_output{level}.{part}", f"backbone.fpn.layer_blocks.{level - 2}.0.{part}", "copy"
    for d2, ours in (("conv", "conv.0.0"), ("objectness_logits", "cls_logits"), ("anchor_deltas", "bbox_pred")):
        for part in ("weight", "bias"):
            yield f"proposal_generator.rpn_head.{d2}.{part}", f"rpn.head.{ours}.{part}", "copy"
    for part in ("weight", "bias"):
        yield f"roi_heads.box_head.fc1.{part}", f"roi_heads.box_head.fc6.{part}", "copy"
        yield f"roi_heads.box_head.fc2.{part}", f"roi_heads.box_head.fc7.{part}", "copy"
        yield f"roi_heads.box_predictor.cls_score.{part}", f"roi_heads.box_predictor.cls_score.{part}", "cls_swap"
        yield f"roi_heads.box_predictor.bbox_pred.{part}", f"roi_heads.box_predictor.bbox_pred.{part}", "bbox_pad"
    if decoder:
        for level, indices in DECODER_CONVS.items():
            for index in indices:
                for part in ("weight", "bias"):
                    name = f"roi_heads.decoder.{level}.{index}.{part}"
                    yield name, f"roi_heads.densepose_decoder.{level}.{index}.{part}", "copy"
        for part in ("weight", "bias"):
            yield f"roi_heads.decoder.predictor.{part}", f"roi_heads.densepose_decoder.predictor.{part}", "copy"
    for layer in range(1, HEAD_LAYERS + 1):
        for part in ("weight", "bias"):
            name = f"roi_heads.densepose_head.body_conv_fcn{layer}.{part}"
            yield name, name, "copy"
    for name in ("ann_index_lowres", "index_uv_lowres", "u_lowres", "v_lowres"):
        for part in ("weight", "bias"):
            key = f"roi_heads.densepose_predictor.{name}.{part}"
            yield key, key, "copy"


def _transform(kind: Transform, value: np.ndarray) -> np.ndarray:
    if kind == "cls_swap":          # detectron2 [person, background] -> torchvision [background, person]
        return np.concatenate([value[-1:], value[:-1]], axis=0)
    if kind == "bbox_pad":          # torchvision also regresses a (never used) background box
        return np.concatenate([np.zeros_like(value[:4]), value], axis=0)
    return value


@dataclass
class ImportReport:
    """What an import did: our tensors that got weights, and checkpoint tensors left out (with why)."""

    source: str
    loaded: dict[str, str] = field(default_factory=dict)        # our name -> detectron2 name
    ignored: dict[str, str] = field(default_factory=dict)       # detectron2 name -> reason
    not_loaded: dict[str, str] = field(default_factory=dict)    # our name -> reason (kept its init)

    def loaded_modules(self) -> list[str]:
        """Our module names that received weights (the `--freeze` sets are prefixes of these)."""
        return sorted({name.rsplit(".", 1)[0] for name in self.loaded})

    def summary(self) -> str:
        """One line for the training log."""
        text = f"imported {len(self.loaded)} tensors from {self.source}"
        if self.ignored:
            names = sorted(self.ignored)
            text += f"; ignored {len(names)} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
        if self.not_loaded:
            parts = sorted({".".join(name.split(".")[:2]) for name in self.not_loaded})
            text += f"; {len(self.not_loaded)} tensors keep their initial values ({', '.join(parts[:4])}" \
                    f"{', ...' if len(parts) > 4 else ''})"
        return text


# ---------------------------------------------------------------------------------------------
# Checking the model and the checkpoint against the reference
# ---------------------------------------------------------------------------------------------

def model_settings(model: nn.Module) -> Mapping[str, Any]:
    """The `model:` config section the model was built from (`build_model` keeps it as `model.config`)."""
    for attribute in ("config", "model_cfg", "cfg"):
        value = getattr(model, attribute, None)
        if isinstance(value, Mapping):
            return value.get("model", value)
    raise TypeError("the model keeps no config (model.config): build it with densepose_train.model.rcnn.build_model")


def _close(a: Any, b: Any) -> bool:
    return len(list(a)) == len(list(b)) and bool(np.allclose(np.asarray(a, float), np.asarray(b, float), atol=1e-3))


def check_model_for_detectron2(model: nn.Module, path: Path, d2: Mapping[str, np.ndarray],
                               reinit_coarse: bool = False, backbone_only: bool = False) -> None:
    """Refuse a model whose settings would give the imported weights another meaning."""
    cfg = model_settings(model)
    fix = f"checkpoint {path} is detectron2's ResNet-50 with MSRA conventions"

    def need(key: str, wanted: Any, why: str) -> None:
        if cfg.get(key) != wanted:
            shown = str(wanted).lower() if isinstance(wanted, bool) else wanted
            raise TrainUserError(f"{fix}, but model.{key} is {cfg.get(key)!r}: set model.{key}: {shown} ({why})")

    need("backbone", "resnet50", "the checkpoint's depth")
    need("stride_in_1x1", True, "its stride-2 convs are the 1x1 ones")
    need("norm", "frozen_bn", "it was trained with frozen batch norm statistics")
    need("input_format", "BGR", "its first conv expects BGR channels")
    if not _close(cfg.get("pixel_std", ()), PIXEL_STD):
        raise TrainUserError(f"{fix}, but model.pixel_std is {cfg.get('pixel_std')}: set model.pixel_std: "
                             "[1.0, 1.0, 1.0] (the std is absorbed into its first conv)")
    mean = d2.get("pixel_mean")
    wanted_mean = PIXEL_MEAN_BGR if mean is None else tuple(float(v) for v in np.ravel(mean))
    if not _close(cfg.get("pixel_mean", ()), wanted_mean):
        raise TrainUserError(f"{fix}, but model.pixel_mean is {cfg.get('pixel_mean')}: set model.pixel_mean: "
                             f"[{', '.join(f'{v:g}' for v in wanted_mean)}]")
    stored_std = d2.get("pixel_std")
    if stored_std is not None and not _close(np.ravel(stored_std), PIXEL_STD):
        raise TrainUserError(f"checkpoint {path} was trained with pixel_std {np.ravel(stored_std).tolist()}, "
                             "not detectron2's MSRA [1, 1, 1]: this importer takes only MSRA-style weights")
    if backbone_only:
        return
    need("fpn_channels", FPN_CHANNELS, "the checkpoint's FPN width")
    need("head_conv_channels", HEAD_DIM, "the checkpoint's DensePose head width")
    need("head_conv_layers", HEAD_LAYERS, "the checkpoint's DensePose head depth")
    coarse = d2.get("roi_heads.densepose_predictor.ann_index_lowres.bias")
    coarse_channels = COARSE_CHANNELS if coarse is None else int(coarse.shape[0])
    if cfg.get("coarse_segm_channels") != coarse_channels and not reinit_coarse:
        raise TrainUserError(
            f"checkpoint {path} predicts {coarse_channels} coarse segmentation channels, but model."
            f"coarse_segm_channels is {cfg.get('coarse_segm_channels')}: set model.coarse_segm_channels: "
            f"{coarse_channels}, or train.reinit_coarse: true to start the coarse layer afresh")


def _describe_architecture(keys: set[str]) -> str:
    """A few words on what a foreign detectron2 checkpoint is, from its key names."""
    words = []
    res4 = {k.split(".")[3] for k in keys if k.startswith("backbone.bottom_up.res4.")}
    if res4:
        depth = {6: "ResNet-50", 23: "ResNet-101", 36: "ResNet-152"}.get(len(res4), f"{len(res4)} res4 blocks")
        if depth != "ResNet-50":
            words.append(f"a {depth} backbone")
    if any(".ASPP." in k for k in keys):
        words.append("the DeepLabV3 DensePose head (R_*_FPN_DL)")
    if any(k.startswith("roi_heads.keypoint_head.") for k in keys):
        words.append("a keypoint head")
    if any(k.startswith("roi_heads.mask_head.") for k in keys):
        words.append("a mask head")
    if any(k.startswith("roi_heads.embedder.") or "densepose_predictor.embed" in k for k in keys):
        words.append("continuous surface embeddings (CSE)")
    if any("sigma" in k or "kappa" in k for k in keys if "densepose_predictor" in k):
        words.append("confidence outputs (WC1/WC2)")
    if not any(k.startswith("roi_heads.densepose_") for k in keys):
        words.append("no DensePose head")
    if not any(k.startswith("roi_heads.decoder.") for k in keys) and \
            any(k.startswith("roi_heads.densepose_head.") for k in keys):
        words.append("no Panoptic FPN decoder (a *_legacy model)")
    return ", ".join(words)


def check_checkpoint_keys(path: Path, d2: Mapping[str, np.ndarray], reinit_coarse: bool = False) -> None:
    """One-line error when `d2` is not densepose_rcnn_R_50_FPN_s1x (missing, extra, misshapen keys)."""
    expected = reference_shapes()
    keys = set(d2)
    missing = sorted(set(expected) - keys)
    extra = sorted(k for k in keys - set(expected) if not k.startswith(tuple(IGNORABLE_PREFIXES)))
    shaped = [k for k in sorted(keys & set(expected)) if tuple(d2[k].shape) != expected[k]
              and not (reinit_coarse and ".ann_index_lowres." in k)]
    if not (missing or extra or shaped):
        return
    what = _describe_architecture(keys)
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensors missing (first {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unknown (first {extra[0]})")
    if shaped:
        k = shaped[0]
        parts.append(f"{len(shaped)} of another shape (first {k}: {tuple(d2[k].shape)}, expected {expected[k]})")
    raise TrainUserError(f"checkpoint {path} is not {REFERENCE_NAME}" + (f" but has {what}" if what else "")
                         + f": {'; '.join(parts)}; pass that model's weights or use --init imagenet")


# ---------------------------------------------------------------------------------------------
# The import
# ---------------------------------------------------------------------------------------------

def _copy_into(target: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype))


def _check_backbone_keys(path: Path, d2: Mapping[str, np.ndarray]) -> None:
    """One-line error when a backbone-only file is not detectron2's ResNet-50 (MSRA R-50.pkl)."""
    expected = {k: v for k, v in reference_shapes().items() if k.startswith("backbone.bottom_up.")}
    missing = sorted(set(expected) - set(d2))
    shaped = [k for k in sorted(set(expected) & set(d2)) if tuple(d2[k].shape) != expected[k]]
    extra = sorted(k for k in set(d2) - set(expected) if not k.startswith("fc1000"))
    if missing or shaped or extra:
        what = _describe_architecture(set(d2))
        raise TrainUserError(
            f"checkpoint {path} is not a ResNet-50 backbone like detectron2's MSRA R-50.pkl"
            f"{' but has ' + what if what else ''}: {len(missing)} tensors missing, {len(shaped)} of another "
            f"shape, {len(extra)} unknown (first {(missing or shaped or extra)[0]}); pass R-50.pkl or "
            f"{REFERENCE_NAME}")


def _decoder_missing(path: Path, model: nn.Module) -> TrainUserError:
    fix = ("set model.densepose_decoder: true" if "densepose_decoder" in model_settings(model) else
           "this densepose_train model has no decoder to put them in: use --init imagenet or one of our checkpoints")
    return TrainUserError(f"checkpoint {path} feeds its DensePose head from a Panoptic FPN decoder "
                          f"(roi_heads.decoder.*, detectron2's DECODER_ON) that this model lacks: {fix}")


def import_detectron2_state(d2: Mapping[str, np.ndarray], model: nn.Module, source: str | Path = "checkpoint",
                            reinit_coarse: bool = False) -> ImportReport:
    """Copy a detectron2 `densepose_rcnn_R_50_FPN_s1x` state (or an MSRA ImageNet backbone) into `model`.

    Every tensor of the reference checkpoint lands in one of ours (`name_map`); the only keys
    left out are the documented buffers of `IGNORABLE_PREFIXES` and, for a backbone-only file,
    the ImageNet classifier. `reinit_coarse` leaves the coarse segmentation layer at its
    initial values (the seed recipe's 14-part coarse head over a 2-channel checkpoint).
    Nothing is copied unless every check passes.
    """
    path = Path(str(source))
    backbone_only = all(k.startswith(("backbone.bottom_up.", "fc1000")) for k in d2)
    check_model_for_detectron2(model, path, d2, reinit_coarse=reinit_coarse, backbone_only=backbone_only)
    report = ImportReport(source=str(source))
    if backbone_only:
        _check_backbone_keys(path, d2)
        report.ignored.update({k: "ImageNet classifier: a detector has none" for k in d2 if k.startswith("fc1000")})
    else:
        check_checkpoint_keys(path, d2, reinit_coarse=reinit_coarse)
    state = model.state_dict()
    if not backbone_only and not any(k.startswith("roi_heads.densepose_decoder.") for k in state):
        raise _decoder_missing(path, model)
    plan = []
    for d2_key, our_key, kind in name_map(decoder=True):
        if d2_key not in d2:
            continue            # a backbone-only file
        if reinit_coarse and ".ann_index_lowres." in d2_key:
            report.ignored[d2_key] = "train.reinit_coarse: the coarse layer starts afresh"
            report.not_loaded[our_key] = "train.reinit_coarse"
            continue
        value = _transform(kind, d2[d2_key])
        if our_key not in state or tuple(state[our_key].shape) != value.shape:
            shape = tuple(state[our_key].shape) if our_key in state else "absent"
            raise RuntimeError(f"{our_key} is {shape} in the model but {value.shape} from detectron2's {d2_key}: "
                               "rcnn.py and checkpoint_import.name_map disagree")
        plan.append((our_key, d2_key, value))
    for our_key, d2_key, value in plan:
        _copy_into(state[our_key], value)
        report.loaded[our_key] = d2_key
    for key in d2:
        for prefix, why in IGNORABLE_PREFIXES.items():
            if key.startswith(prefix):
                report.ignored[key] = why
    for key in state:
        if key not in report.loaded and not key.endswith("num_batches_tracked"):
            report.not_loaded.setdefault(key, "not in the checkpoint")
    return report


def import_detectron2_file(path: Path | str, model: nn.Module, reinit_coarse: bool = False) -> ImportReport:
    """`load_detectron2_checkpoint` + `import_detectron2_state`."""
    return import_detectron2_state(load_detectron2_checkpoint(path), model, source=path, reinit_coarse=reinit_coarse)
