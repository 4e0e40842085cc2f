"""ResNet-FPN backbones for DensePose R-CNN, built from torchvision's ResNet and FPN.

The module tree is torchvision's `BackboneWithFPN` (`body.*` = the ResNet through
IntermediateLayerGetter, `fpn.*` = FeaturePyramidNetwork with LastLevelMaxPool), so a
model's keys read `backbone.body.layer1.0.conv1.weight`, `backbone.fpn.inner_blocks.0.0.weight`
and a detectron2 checkpoint maps onto them name by name (helper B's importer relies on it).
FPN outputs: '0'..'3' = P2..P5 (strides 4..32), 'pool' = P6 (stride 64, max-pool of P5),
exactly detectron2's `build_resnet_fpn_backbone` with `LastLevelMaxPool`.

Only two things are written here because torchvision lacks them:
- `stride_in_1x1`: detectron2's MSRA ResNet weights put the stride of each stage's first
  bottleneck on the 1x1 conv (`conv1`); torchvision builds it on the 3x3 (`conv2`). Loading
  MSRA weights into the torchvision layout without moving the stride would silently sample
  the wrong pixels, so `move_stride_to_1x1` swaps it after construction.
- `freeze_at`: detectron2's BACKBONE.FREEZE_AT stage numbering (1 = stem, 2 = stem + res2).
"""
from __future__ import annotations

import math
from typing import Callable

from torch import nn
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from ..errors import TrainUserError

BACKBONES = ("resnet50", "resnet18", "tiny")
NORMS = ("frozen_bn", "group_norm", "bn")
# Strides of the FPN outputs '0', '1', '2', '3', 'pool' (P2..P6).
FPN_STRIDES = (4, 8, 16, 32, 64)


def group_norm(num_channels: int) -> nn.GroupNorm:
    """detectron2's "GN": 32 groups; fewer (a divisor) when a narrow test model has fewer channels."""
    groups = math.gcd(32, num_channels)
    return nn.GroupNorm(groups, num_channels)


def norm_layer_factory(norm: str) -> Callable[[int], nn.Module]:
    """Normalisation layer constructor for the ResNet body.

    frozen_bn is the reference (fixed ImageNet statistics, as detectron2's FrozenBN; eps 1e-5 in both);
    group_norm is what detectron2's from-scratch recipes use; bn is plain trainable BatchNorm.
    """
    if norm == "frozen_bn":
        return FrozenBatchNorm2d
    if norm == "group_norm":
        return group_norm
    if norm == "bn":
        return nn.BatchNorm2d
    raise TrainUserError(f"config model.norm: unknown value {norm!r}; use one of {', '.join(NORMS)}")


def move_stride_to_1x1(body: resnet.ResNet) -> None:
    """Put each stage's downsampling stride on the bottleneck's 1x1 conv (detectron2 MSRA layout).

    torchvision's Bottleneck strides its 3x3 `conv2`; detectron2's `stride_in_1x1=True` strides
    `conv1` (1x1, no padding) and keeps the 3x3 at stride 1. Output sizes are identical, the
    sampled pixels are not. BasicBlock (resnet18, tiny) has no 1x1 conv, so nothing moves there.
    """
    for stage in (body.layer1, body.layer2, body.layer3, body.layer4):
        for block in stage:
            if isinstance(block, resnet.Bottleneck) and block.conv2.stride != (1, 1):
                block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)


def freeze_stages(body: resnet.ResNet, freeze_at: int) -> None:
    """Freeze parameters as detectron2's FREEZE_AT: 0 none, 1 the stem, k >= 2 the stem and res2..res_k."""
    if not 0 <= freeze_at <= 5:
        raise TrainUserError(f"config model.freeze_at: {freeze_at} is out of range; use 0..5 (detectron2 FREEZE_AT)")
    frozen: list[nn.Module] = []
    if freeze_at >= 1:
        frozen += [body.conv1, body.bn1]
    frozen += [getattr(body, f"layer{k}") for k in range(1, freeze_at)]
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def _resnet_body(name: str, norm_layer: Callable[[int], nn.Module]) -> tuple[resnet.ResNet, list[int]]:
    """The torchvision ResNet and the channel counts of its four stages."""
    if name == "resnet50":
        return resnet.resnet50(weights=None, norm_layer=norm_layer), [256, 512, 1024, 2048]
    if name == "resnet18":
        return resnet.resnet18(weights=None, norm_layer=norm_layer), [64, 128, 256, 512]
    if name == "tiny":
        # A ResNet-10 (one BasicBlock per stage): same module names as resnet18, about a quarter
        # of its compute; it trains a few dozen iterations on 160 px images in seconds on a CPU.
        return resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], norm_layer=norm_layer), [64, 128, 256, 512]
    raise TrainUserError(f"config model.backbone: unknown backbone {name!r}; use one of {', '.join(BACKBONES)}")


def build_backbone(
    name: str = "resnet50",
    norm: str = "frozen_bn",
    stride_in_1x1: bool = True,
    fpn_channels: int = 256,
    freeze_at: int = 2,
) -> BackboneWithFPN:
    """ResNet-FPN with outputs P2..P6 ('0'..'3', 'pool'), `out_channels` = fpn_channels.

    The FPN gets GroupNorm when the body does (detectron2's GN recipes norm the FPN too) and no
    norm otherwise (detectron2's default FPN.NORM = ""), so frozen_bn keeps the reference keys.
    """
    norm_layer = norm_layer_factory(norm)
    body, in_channels = _resnet_body(name, norm_layer)
    if stride_in_1x1:
        move_stride_to_1x1(body)
    freeze_stages(body, freeze_at)
    return BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=in_channels,
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=group_norm if norm == "group_norm" else None,
    )
