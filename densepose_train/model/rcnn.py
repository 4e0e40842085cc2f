"""DensePose R-CNN on torchvision's detection framework: `build_model(cfg) -> DensePoseRCNN`.

torchvision provides the skeleton (GeneralizedRCNN, GeneralizedRCNNTransform, RPN, RoIHeads,
MultiScaleRoIAlign box pooler, TwoMLPHead + FastRCNNPredictor with classes background=0,
person=1). Written here, each because torchvision lacks it:
- `DensePoseTransform`: torchvision normalises 0..1 RGB; detectron2 weights want BGR (or RGB)
  minus a 0..255 mean, divided by a 0..255 std. Images come in as RGB 0..255.
- `Detectron2AnchorGenerator`: torchvision rounds its cell anchors to integers and derives each
  level's stride as padded_size // grid_size, which is 61 instead of 64 on P6 whenever P5 has an
  odd size (e.g. 800 px). detectron2 keeps exact anchors at exact strides; imported RPN weights
  need the same anchors.
- `DensePoseRoIHeads`: RoIHeads plus the DensePose branch (pooler, head, predictor, losses),
  the way torchvision adds its mask branch.

Module names (helper B maps detectron2 keys onto them): backbone.body.*, backbone.fpn.*,
rpn.head.{conv.0.0,cls_logits,bbox_pred}, roi_heads.box_head.{fc6,fc7},
roi_heads.box_predictor.{cls_score,bbox_pred} (2 classes, background first: detectron2 puts
background last and has class-specific boxes for person only),
roi_heads.densepose_decoder.{p2.0,p3.0,p4.0,p4.2,p5.0,p5.2,p5.4,predictor} (detectron2 roi_heads.decoder.*),
roi_heads.densepose_head.body_conv_fcn1..8,
roi_heads.densepose_predictor.{ann_index_lowres,index_uv_lowres,u_lowres,v_lowres}.

Inputs: `model(images, targets)` with images a list of float (3, H, W) RGB 0..255 tensors and
targets as the shared contract (boxes XYXY, labels, densepose: list of DensePoseTarget | None).
Training returns the loss dict (loss_classifier, loss_box_reg, loss_objectness, loss_rpn_box_reg,
loss_densepose_I/U/V/S, weights applied); eval returns per image {boxes (original pixels),
scores, labels, densepose: list of DensePoseResult} (see outputs.py for the pixel convention).
"""
from __future__ import annotations

import copy
import math
from numbers import Real
from typing import Any, Optional

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from ..errors import TrainUserError
from .backbone import BACKBONES, FPN_STRIDES, NORMS, build_backbone
from .densepose_head import (DensePoseChartOutput, DensePoseChartPredictor, DensePosePooler, DensePoseV1ConvXHead,
                             PanopticFPNDecoder)
from .losses import DensePoseLossWeights, densepose_chart_losses, select_densepose_rois
from .outputs import densepose_results

# The contract's `model:` keys with the reference values, plus a few this module adds (marked).
MODEL_DEFAULTS: dict[str, Any] = {
    "backbone": "resnet50",
    "stride_in_1x1": True,
    "norm": "frozen_bn",
    "input_format": "BGR",
    "pixel_mean": [103.53, 116.28, 123.675],
    "pixel_std": [1.0, 1.0, 1.0],
    "min_size": 800,  # int, or a list to pick from at random in training (the last one at test)
    "max_size": 1333,
    "fpn_channels": 256,
    "head_conv_channels": 512,
    "head_conv_layers": 8,
    "roi_size": 28,
    "heatmap_size": 112,
    "coarse_segm_channels": 2,
    "box_detections_per_img": 100,
    "score_thresh": 0.05,
    # Added by the model module:
    "freeze_at": 2,  # detectron2 BACKBONE.FREEZE_AT (0 = train all, for from-scratch GroupNorm)
    # The s1x reference config (Base-DensePose-RCNN-FPN.yaml) sets ROI_DENSEPOSE_HEAD.POOLER_TYPE
    # "ROIAlign" (aligned=False), overriding config.py's default "ROIAlignV2".
    "densepose_pooler_type": "ROIAlign",
    "densepose_iou_threshold": 0.7,  # detectron2 ROI_DENSEPOSE_HEAD.FG_IOU_THRESHOLD
    # Panoptic FPN decoder before the DensePose pooler (detectron2 DECODER_ON, on in the s1x model;
    # false = the *_legacy models, pooling from P2..P5 by box size).
    "densepose_decoder": True,
    "box_head_dim": 1024,
    "box_nms_thresh": 0.5,
    "roi_batch_size_per_image": 512,
}
LOSS_DEFAULTS: dict[str, Any] = {
    "coarse_weight": 5.0,
    "fine_weight": 1.0,
    "uv_weight": 0.01,
    "coarse_requires_all_masks": False,  # True = detectron2: no coarse loss if any instance lacks masks
}
POOLER_TYPES = {"ROIAlign": False, "ROIAlignV2": True}
DENSEPOSE_FEATURES = ("0", "1", "2", "3")  # P2..P5


def _bad(key: str, value: Any, fix: str) -> TrainUserError:
    return TrainUserError(f"config {key}: {value!r} is not valid; {fix}")


def _positive_int(section: dict[str, Any], name: str, prefix: str) -> int:
    value = section[name]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _bad(f"{prefix}.{name}", value, "use a positive integer")
    return value


def _number(section: dict[str, Any], name: str, prefix: str, low: float = 0.0) -> float:
    value = section[name]
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < low:
        raise _bad(f"{prefix}.{name}", value, f"use a number >= {low}")
    return float(value)


def resolve_options(cfg: Optional[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model and loss sections with defaults filled in and values checked (TrainUserError)."""
    cfg = cfg or {}
    model = {**copy.deepcopy(MODEL_DEFAULTS), **(cfg.get("model") or {})}
    loss = {**LOSS_DEFAULTS, **(cfg.get("loss") or {})}
    if model["backbone"] not in BACKBONES:
        raise _bad("model.backbone", model["backbone"], f"use one of {', '.join(BACKBONES)}")
    if model["norm"] not in NORMS:
        raise _bad("model.norm", model["norm"], f"use one of {', '.join(NORMS)}")
    if model["input_format"] not in ("BGR", "RGB"):
        raise _bad("model.input_format", model["input_format"], "use BGR or RGB")
    if model["densepose_pooler_type"] not in POOLER_TYPES:
        raise _bad("model.densepose_pooler_type", model["densepose_pooler_type"], "use ROIAlign or ROIAlignV2")
    for section, prefix, name in ((model, "model", "stride_in_1x1"), (model, "model", "densepose_decoder"),
                                  (loss, "loss", "coarse_requires_all_masks")):
        if not isinstance(section[name], bool):
            raise _bad(f"{prefix}.{name}", section[name], "use true or false")
    for name in ("pixel_mean", "pixel_std"):
        value = model[name]
        ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(v, Real) and not isinstance(v, bool) for v in value)
        if not ok or (name == "pixel_std" and min(value) <= 0):
            raise _bad(f"model.{name}", value, "use three numbers in 0..255 units, in input_format order"
                       + (", all > 0" if name == "pixel_std" else ""))
    sizes = model["min_size"] if isinstance(model["min_size"], (list, tuple)) else [model["min_size"]]
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in sizes):
        raise _bad("model.min_size", model["min_size"], "use a positive integer or a list of them")
    for name in ("max_size", "fpn_channels", "head_conv_channels", "head_conv_layers", "roi_size", "heatmap_size",
                 "box_detections_per_img", "box_head_dim", "roi_batch_size_per_image"):
        _positive_int(model, name, "model")
    if model["coarse_segm_channels"] not in (2, 15):
        raise _bad("model.coarse_segm_channels", model["coarse_segm_channels"], "use 2 (fg/bg) or 15 (14 parts + bg)")
    if model["heatmap_size"] != 4 * model["roi_size"]:
        raise _bad("model.heatmap_size", model["heatmap_size"],
                   f"it must be 4 x model.roi_size = {4 * model['roi_size']} (deconv x2, then upsampling x2)")
    if isinstance(model["freeze_at"], bool) or model["freeze_at"] not in range(6):
        raise _bad("model.freeze_at", model["freeze_at"], "use 0..5 (detectron2 FREEZE_AT)")
    for name in ("score_thresh", "box_nms_thresh", "densepose_iou_threshold"):
        if not 0.0 <= _number(model, name, "model") <= 1.0:
            raise _bad(f"model.{name}", model[name], "use a number in 0..1")
    for name in ("coarse_weight", "fine_weight", "uv_weight"):
        _number(loss, name, "loss")
    return model, loss


class DensePoseTransform(GeneralizedRCNNTransform):
    """GeneralizedRCNNTransform for RGB 0..255 inputs and detectron2-style 0..255 mean/std.

    normalize: reorder to `input_format` (RGB -> BGR flips channels), then (x - mean) / std with the
    mean/std given in input_format order and 0..255 units. Resize (shortest edge min_size, longest
    at most max_size, bilinear), padding to a multiple of 32 and the box rescaling of outputs are
    torchvision's. Target instance `masks` are dropped before resizing: this model never reads
    them (its coarse segmentation is trained from dp_masks) and resizing them is costly.
    """

    def __init__(self, min_size: int | list[int], max_size: int, input_format: str, pixel_mean: list[float],
                 pixel_std: list[float]) -> None:
        sizes = tuple(min_size) if isinstance(min_size, (list, tuple)) else min_size
        super().__init__(sizes, max_size, image_mean=list(pixel_mean), image_std=list(pixel_std))
        self.input_format = input_format

    def normalize(self, image: Tensor) -> Tensor:
        if image.dim() != 3 or image.shape[0] != 3:
            raise TrainUserError(f"model input: expected a (3, H, W) RGB image tensor, got shape {tuple(image.shape)}")
        if self.input_format == "BGR":
            image = image.flip(0)
        return super().normalize(image)

    def forward(self, images: list[Tensor], targets: Optional[list[dict[str, Any]]] = None
                ) -> tuple[ImageList, Optional[list[dict[str, Any]]]]:
        if targets is not None:
            targets = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
        return super().forward(images, targets)


class Detectron2AnchorGenerator(AnchorGenerator):
    """AnchorGenerator with detectron2's exact cell anchors and fixed per-level strides."""

    def __init__(self, sizes: tuple[tuple[int, ...], ...], aspect_ratios: tuple[tuple[float, ...], ...],
                 strides: tuple[int, ...]) -> None:
        super().__init__(sizes, aspect_ratios)
        self.strides = tuple(strides)

    def generate_anchors(self, scales: list[int], aspect_ratios: list[float], dtype: torch.dtype = torch.float32,
                         device: torch.device = torch.device("cpu")) -> Tensor:
        # detectron2 DefaultAnchorGenerator.generate_cell_anchors: w = sqrt(size^2 / ratio), h = ratio * w,
        # centred on 0, NOT rounded (torchvision rounds).
        anchors = []
        for ratio in aspect_ratios:
            for size in scales:
                w = math.sqrt(size * size / ratio)
                h = ratio * w
                anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        return torch.tensor(anchors, dtype=dtype, device=device)

    def forward(self, image_list: ImageList, feature_maps: list[Tensor]) -> list[Tensor]:
        grid_sizes = [list(feature_map.shape[-2:]) for feature_map in feature_maps]
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        strides = [[torch.tensor(s, dtype=torch.int64, device=device)] * 2 for s in self.strides]
        self.set_cell_anchors(dtype, device)
        per_level = self.grid_anchors(grid_sizes, strides)
        return [torch.cat(per_level) for _ in image_list.image_sizes]


class DensePoseRoIHeads(RoIHeads):
    """torchvision RoIHeads (box branch unchanged) plus detectron2's DensePose branch.

    Training: the sampled proposals (512 per image, 25 % foreground) train the box branch; the
    foreground ones with IoU > densepose_iou_threshold to a GT person with DensePose points
    train the DensePose branch (detectron2's DensePoseDataFilter). Eval: the DensePose branch runs
    on the final detections, and each image's result carries its raw outputs as "densepose_raw".
    """

    def __init__(self, *args: Any, densepose_decoder: Optional[PanopticFPNDecoder], densepose_pooler: DensePosePooler,
                 densepose_head: DensePoseV1ConvXHead, densepose_predictor: DensePoseChartPredictor,
                 loss_weights: DensePoseLossWeights, densepose_iou_threshold: float = 0.7, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.densepose_decoder = densepose_decoder
        self.densepose_pooler = densepose_pooler
        self.densepose_head = densepose_head
        self.densepose_predictor = densepose_predictor
        self.loss_weights = loss_weights
        self.densepose_iou_threshold = densepose_iou_threshold

    def densepose_outputs(self, features: dict[str, Tensor], boxes: list[Tensor]) -> DensePoseChartOutput:
        maps = [features[k] for k in DENSEPOSE_FEATURES]
        if self.densepose_decoder is not None:
            maps = [self.densepose_decoder(maps)]
        pooled = self.densepose_pooler(maps, boxes)
        return self.densepose_predictor(self.densepose_head(pooled))

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]],
                targets: Optional[list[dict[str, Any]]] = None) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)

        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            rois, gt_boxes, dp_targets = select_densepose_rois(
                proposals, labels, matched_idxs, targets, self.densepose_iou_threshold)
            outputs = self.densepose_outputs(features, rois)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
            losses.update(densepose_chart_losses(outputs, torch.cat(rois), gt_boxes, dp_targets, self.loss_weights))
            return [], losses

        boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        outputs = self.densepose_outputs(features, boxes)
        result: list[dict[str, Any]] = []
        start = 0
        for b, s, lab in zip(boxes, scores, labels):
            part = slice(start, start + b.shape[0])
            start += b.shape[0]
            result.append({
                "boxes": b, "labels": lab, "scores": s,
                "densepose_raw": DensePoseChartOutput(outputs.coarse_segm[part], outputs.fine_segm[part],
                                                      outputs.u[part], outputs.v[part]),
            })
        return result, {}


class DensePoseRCNN(GeneralizedRCNN):
    """GeneralizedRCNN whose eval outputs carry per-detection `densepose` results.

    `config` holds the resolved {"model": ..., "loss": ...} options it was built from (for
    checkpoints). Set `return_raw_densepose = True` to also keep each image's raw 112 x 112
    predictor outputs under "densepose_raw" (a DensePoseChartOutput).
    """

    def __init__(self, backbone: nn.Module, rpn: nn.Module, roi_heads: DensePoseRoIHeads,
                 transform: DensePoseTransform, config: dict[str, Any]) -> None:
        super().__init__(backbone, rpn, roi_heads, transform)
        self.config = config
        self.return_raw_densepose = False

    def forward(self, images: list[Tensor], targets: Optional[list[dict[str, Any]]] = None) -> Any:
        out = super().forward(images, targets)
        if self.training:
            return out
        with torch.no_grad():
            for detection in out:
                raw = detection["densepose_raw"] if self.return_raw_densepose else detection.pop("densepose_raw")
                detection["densepose"] = densepose_results(raw, detection["boxes"])
        return out


def _init_box_branch(box_head: TwoMLPHead, box_predictor: FastRCNNPredictor) -> None:
    """detectron2's initialisation: c2_xavier_fill on the fcs, N(0, 0.01) scores, N(0, 0.001) deltas."""
    for fc in (box_head.fc6, box_head.fc7):
        nn.init.kaiming_uniform_(fc.weight, a=1)
        nn.init.constant_(fc.bias, 0)
    nn.init.normal_(box_predictor.cls_score.weight, std=0.01)
    nn.init.normal_(box_predictor.bbox_pred.weight, std=0.001)
    for layer in (box_predictor.cls_score, box_predictor.bbox_pred):
        nn.init.constant_(layer.bias, 0)


def build_model(cfg: Optional[dict[str, Any]] = None) -> DensePoseRCNN:
    """DensePose R-CNN from the merged config dict (`model:` and `loss:` sections; missing keys = defaults).

    Reference values reproduce densepose_rcnn_R_50_FPN_s1x: ResNet-50 FPN (P2-P6), RPN with anchors
    32..512 x ratios 0.5/1/2 (2000/1000 pre-NMS, 1000/1000 post-NMS, train/test), box head 2 x fc 1024,
    Panoptic FPN decoder (256), DensePose head 8 x conv 512 on 28 x 28 RoIs (ROIAlign from the
    decoder's stride-4 map), 112 x 112 outputs, 2 classes (background, person).
    Weights are random (no downloads); load them with the checkpoint modules.
    """
    model_opts, loss_opts = resolve_options(cfg)
    channels = model_opts["fpn_channels"]
    backbone = build_backbone(model_opts["backbone"], model_opts["norm"], model_opts["stride_in_1x1"], channels,
                              model_opts["freeze_at"])
    anchor_generator = Detectron2AnchorGenerator(
        sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5, strides=FPN_STRIDES)
    rpn = RegionProposalNetwork(
        anchor_generator, RPNHead(channels, anchor_generator.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256, positive_fraction=0.5,
        pre_nms_top_n={"training": 2000, "testing": 1000}, post_nms_top_n={"training": 1000, "testing": 1000},
        nms_thresh=0.7,
    )
    box_head = TwoMLPHead(channels * 7 * 7, model_opts["box_head_dim"])
    box_predictor = FastRCNNPredictor(model_opts["box_head_dim"], num_classes=2)
    _init_box_branch(box_head, box_predictor)
    # With the decoder every RoI is pooled from its one stride-4 map (detectron2 uses the decoder
    # width = FPN width, 256, for both its convs and its output).
    decoder = PanopticFPNDecoder(channels, channels, channels, FPN_STRIDES[:4]) \
        if model_opts["densepose_decoder"] else None
    pooler_scales = tuple(1.0 / s for s in (FPN_STRIDES[:1] if decoder is not None else FPN_STRIDES[:4]))
    densepose_head = DensePoseV1ConvXHead(channels, model_opts["head_conv_channels"], model_opts["head_conv_layers"])
    roi_heads = DensePoseRoIHeads(
        MultiScaleRoIAlign(featmap_names=list(DENSEPOSE_FEATURES), output_size=7, sampling_ratio=2),
        box_head, box_predictor,
        0.5, 0.5, model_opts["roi_batch_size_per_image"], 0.25, None,
        model_opts["score_thresh"], model_opts["box_nms_thresh"], model_opts["box_detections_per_img"],
        densepose_decoder=decoder,
        densepose_pooler=DensePosePooler(output_size=model_opts["roi_size"], scales=pooler_scales, sampling_ratio=2,
                                         aligned=POOLER_TYPES[model_opts["densepose_pooler_type"]]),
        densepose_head=densepose_head,
        densepose_predictor=DensePoseChartPredictor(densepose_head.n_out_channels,
                                                    model_opts["coarse_segm_channels"]),
        loss_weights=DensePoseLossWeights(loss_opts["coarse_weight"], loss_opts["fine_weight"],
                                          loss_opts["uv_weight"], loss_opts["coarse_requires_all_masks"]),
        densepose_iou_threshold=model_opts["densepose_iou_threshold"],
    )
    transform = DensePoseTransform(model_opts["min_size"], model_opts["max_size"], model_opts["input_format"],
                                   model_opts["pixel_mean"], model_opts["pixel_std"])
    return DensePoseRCNN(backbone, rpn, roi_heads, transform, config={"model": model_opts, "loss": loss_opts})
