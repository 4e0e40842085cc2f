"""The DensePose branch: Panoptic FPN decoder, RoI pooler, DensePoseV1ConvXHead, DensePoseChartPredictor.

Architecture, module names and initialisation follow detectron2's DensePose project
(`densepose/modeling/roi_heads/roi_head.py` Decoder, `roi_heads/v1convx.py`, `predictors/chart.py`,
`modeling/utils.py`) so that its checkpoints load name by name. The reference
densepose_rcnn_R_50_FPN_s1x ("Improved Baselines" in DENSEPOSE_IUV.md; config.py DECODER_ON = True)
first merges P2..P5 into one stride-4 map with the Panoptic FPN decoder and pools every RoI from
that map; the legacy models (no decoder) pool from P2..P5 by box size. Then
`body_conv_fcn1..N` (3x3 conv + ReLU) and four
ConvTranspose2d(kernel 4, stride 2, padding 1) `ann_index_lowres` (coarse segmentation),
`index_uv_lowres` (25 fine-part logits), `u_lowres`, `v_lowres` (25 each), each followed by
bilinear x2 upsampling (align_corners=False): 28x28 pooled features -> 56 -> 112x112 outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import roi_align
from torchvision.ops.poolers import LevelMapper

from densesynth.core.parts import NUM_FINE_PARTS

NUM_FINE_CHANNELS = NUM_FINE_PARTS + 1  # 24 charts + background


def initialize_module_params(module: nn.Module) -> None:
    """detectron2's `initialize_module_params`: every weight Kaiming-normal (fan_out, relu), biases 0."""
    for name, param in module.named_parameters():
        if "bias" in name:
            nn.init.constant_(param, 0)
        elif "weight" in name:
            nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")


@dataclass
class DensePoseChartOutput:
    """Raw predictor outputs over each RoI's box, all (N, C, S, S) with S = 112 by default.

    coarse_segm: K = 2 (bg/fg) or 15 (bg + 14 coarse parts) logits; fine_segm: 25 logits
    (bg + 24 charts); u, v: one regression channel per fine label (channel 0 unused).
    """

    coarse_segm: Tensor
    fine_segm: Tensor
    u: Tensor
    v: Tensor

    def __len__(self) -> int:
        return self.u.shape[0]


def c2_msra_fill(module: nn.Conv2d) -> None:
    """detectron2 / fvcore `c2_msra_fill`: Kaiming-normal weight (fan_out, relu), bias 0."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


class ConvReLU(nn.Conv2d):
    """A conv with its ReLU inside, as detectron2's `Conv2d(..., activation=F.relu)`.

    One module rather than Conv2d + nn.ReLU, so that the decoder's nn.Sequential indices
    (p4.0, p4.2, ...) are detectron2's and its checkpoint keys map one to one.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))


class PanopticFPNDecoder(nn.Module):
    """detectron2 DensePose's `Decoder` (Panoptic FPN semantic head, Kirillov et al. 2019).

    Per level p2..p5: max(1, log2(stride / 4)) conv3x3 + ReLU layers, each followed by bilinear x2
    upsampling while the level is coarser than stride 4; the four stride-4 maps are summed and a
    1x1 `predictor` conv gives the map the DensePose RoIs are pooled from. DECODER_NORM is "" in the
    reference, so no normalisation. Widths: detectron2 uses 256 (= the FPN width) for both.
    """

    def __init__(self, in_channels: int = 256, conv_dims: int = 256, num_classes: int = 256,
                 strides: tuple[int, ...] = (4, 8, 16, 32), common_stride: int = 4) -> None:
        super().__init__()
        self.in_features = [f"p{int(math.log2(s))}" for s in strides]
        for name, stride in zip(self.in_features, strides):
            ops: list[nn.Module] = []
            for k in range(max(1, int(math.log2(stride) - math.log2(common_stride)))):
                conv = ConvReLU(in_channels if k == 0 else conv_dims, conv_dims, 3, stride=1, padding=1, bias=True)
                c2_msra_fill(conv)
                ops.append(conv)
                if stride != common_stride:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(name, nn.Sequential(*ops))
        self.predictor = nn.Conv2d(conv_dims, num_classes, kernel_size=1, stride=1, padding=0)
        c2_msra_fill(self.predictor)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = getattr(self, self.in_features[0])(features[0])
        for name, feature in zip(self.in_features[1:], features[1:]):
            x = x + getattr(self, name)(feature)
        return self.predictor(x)


class DensePosePooler(nn.Module):
    """detectron2's ROIPooler: ROIAlign over one map (the decoder's, scale 1/4) or over P2..P5 by box size.

    Written by hand because torchvision's MultiScaleRoIAlign always calls roi_align with
    aligned=False (detectron2's "ROIAlign") and cannot do "ROIAlignV2" (aligned=True, the
    half-pixel-correct variant, config.py's default ROI_DENSEPOSE_HEAD.POOLER_TYPE; the s1x
    yaml uses "ROIAlign"), and it infers scales instead of taking them. Over several maps, level of a
    box = floor(4 + log2(sqrt(area) / 224)) clamped to [2, 5], via torchvision's LevelMapper
    (eps 1e-6 added after the log; detectron2 adds 1e-8 inside it, which differs only for boxes
    within ~1e-6 of a power-of-two size). Feature scales are fixed from the FPN strides rather
    than inferred from the padded image size, which is what detectron2 does.
    """

    def __init__(
        self,
        output_size: int = 28,
        scales: tuple[float, ...] = (1 / 4, 1 / 8, 1 / 16, 1 / 32),
        sampling_ratio: int = 2,
        aligned: bool = True,
        canonical_box_size: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        self.output_size = (output_size, output_size)
        self.scales = tuple(scales)
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.k_min = int(round(-torch.log2(torch.tensor(self.scales[0])).item()))
        k_max = self.k_min + len(self.scales) - 1
        self.mapper = LevelMapper(self.k_min, k_max, canonical_scale=canonical_box_size, canonical_level=canonical_level)

    def levels(self, boxes: list[Tensor]) -> Tensor:
        """Index into `scales` (0 = P2) for each box of the concatenated list; all 0 for one map."""
        if len(self.scales) == 1:  # detectron2's ROIPooler with one level skips the assignment
            return torch.zeros(sum(b.shape[0] for b in boxes), dtype=torch.int64, device=boxes[0].device)
        return self.mapper(boxes)

    def forward(self, features: list[Tensor], boxes: list[Tensor]) -> Tensor:
        """features: one map per scale (B, C, Hl, Wl); boxes: per image (Ni, 4) XYXY in the padded-batch frame."""
        rois = torch.cat(
            [torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)], dim=0
        )
        result = features[0].new_zeros((rois.shape[0], features[0].shape[1], *self.output_size))
        if rois.shape[0] == 0:
            return result
        levels = self.levels(boxes)
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            index = torch.where(levels == level)[0]
            if index.numel() == 0:
                continue
            pooled = roi_align(
                feature, rois[index], self.output_size, spatial_scale=scale,
                sampling_ratio=self.sampling_ratio, aligned=self.aligned,
            )
            result[index] = pooled.to(result.dtype)
        return result


class DensePoseV1ConvXHead(nn.Module):
    """detectron2's DensePoseV1ConvXHead: `n_stacked_convs` conv3x3 + ReLU layers `body_conv_fcn{i}`."""

    def __init__(self, input_channels: int, hidden_dim: int = 512, n_stacked_convs: int = 8, kernel_size: int = 3):
        super().__init__()
        self.n_stacked_convs = n_stacked_convs
        channels = input_channels
        for i in range(n_stacked_convs):
            layer = nn.Conv2d(channels, hidden_dim, kernel_size, stride=1, padding=kernel_size // 2)
            self.add_module(f"body_conv_fcn{i + 1}", layer)
            channels = hidden_dim
        self.n_out_channels = channels
        initialize_module_params(self)

    def forward(self, features: Tensor) -> Tensor:
        x = features
        for i in range(self.n_stacked_convs):
            x = F.relu(getattr(self, f"body_conv_fcn{i + 1}")(x))
        return x


class DensePoseChartPredictor(nn.Module):
    """detectron2's DensePoseChartPredictor: four deconvs (x2) then bilinear x2 upsampling."""

    def __init__(self, input_channels: int, coarse_segm_channels: int = 2, kernel_size: int = 4, up_scale: int = 2):
        super().__init__()
        padding = int(kernel_size / 2 - 1)

        def deconv(out_channels: int) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(input_channels, out_channels, kernel_size, stride=2, padding=padding)

        self.ann_index_lowres = deconv(coarse_segm_channels)
        self.index_uv_lowres = deconv(NUM_FINE_CHANNELS)
        self.u_lowres = deconv(NUM_FINE_CHANNELS)
        self.v_lowres = deconv(NUM_FINE_CHANNELS)
        self.scale_factor = up_scale
        initialize_module_params(self)

    def interp2d(self, tensor_nchw: Tensor) -> Tensor:
        return F.interpolate(tensor_nchw, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)

    def forward(self, head_outputs: Tensor) -> DensePoseChartOutput:
        return DensePoseChartOutput(
            coarse_segm=self.interp2d(self.ann_index_lowres(head_outputs)),
            fine_segm=self.interp2d(self.index_uv_lowres(head_outputs)),
            u=self.interp2d(self.u_lowres(head_outputs)),
            v=self.interp2d(self.v_lowres(head_outputs)),
        )
