"""DensePose chart losses, as detectron2's `DensePoseChartLoss` (densepose/modeling/losses/chart.py,
losses/utils.py, losses/segm.py).

Per RoI (a foreground proposal matched to a GT person that carries DensePose points):
- points: a GT point (x, y) in the GT box's 256 frame sits at image position
  `x0_gt + x * w_gt / 256`; it is mapped into the proposal's S x S output grid as
  `gx = (x_img - x0_prop) * S / w_prop` and read by bilinear interpolation between the cells
  floor(gx) and floor(gx) + 1 (clamped to S - 1), i.e. output cell k stands for box-relative
  position k / S (detectron2's BilinearInterpolationHelper). Points outside the proposal are
  dropped.
- loss_densepose_I: cross-entropy of the 25 interpolated fine logits at every valid point
  (mean over points) x fine_weight.
- loss_densepose_U / _V: smooth-L1 (beta 1) between the interpolated U (V) of the GT part's
  channel and the GT value, summed (not averaged) over valid points with I > 0, x uv_weight.
- loss_densepose_S: cross-entropy of the coarse logits against the 256 x 256 `dp_masks` label
  image resampled into the proposal box (nearest, zeros outside the GT box, grid_sample with
  align_corners=True, as detectron2's `resample_data`); 2 channels -> labels > 0, 15 channels ->
  labels 0..14; mean over pixels x coarse_weight.
When no RoI has a valid foreground point, all four losses are 0 * sum(outputs) (graph kept,
as detectron2 does for DistributedDataParallel).

One deliberate difference, switchable: detectron2 drops the coarse loss of the whole batch
when any DensePose instance lacks `dp_masks`. Here, by default, the coarse loss is the mean over
the RoIs whose instance has a mask (identical whenever all have masks, which our data always
does); `coarse_requires_all_masks=True` restores detectron2's rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from .densepose_head import DensePoseChartOutput

LOSS_NAMES = ("loss_densepose_I", "loss_densepose_U", "loss_densepose_V", "loss_densepose_S")


@dataclass(frozen=True)
class DensePoseLossWeights:
    """Reference weights (detectron2 INDEX_WEIGHTS, PART_WEIGHTS, POINT_REGRESSION_WEIGHTS)."""

    coarse: float = 5.0
    fine: float = 1.0
    uv: float = 0.01
    coarse_requires_all_masks: bool = False


def _linear_interpolation(v_norm: Tensor, v0_src: Tensor, size_src: Tensor, v0_dst: Tensor, size_dst: Tensor,
                          size_z: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """detectron2's `_linear_interpolation_utilities`: lower/upper cell, weight, inside-flag per point."""
    v = v0_src + v_norm * size_src / 256.0
    valid = (v - v0_dst >= 0) & (v - v0_dst < size_dst)
    grid = (v - v0_dst) * size_z / size_dst
    lo = grid.floor().long().clamp(min=0, max=size_z - 1)
    hi = (lo + 1).clamp(max=size_z - 1)
    grid = torch.min(hi.float(), grid)
    return lo, hi, grid - lo.float(), valid


@dataclass
class _PointSampler:
    """Bilinear reads of (N, C, S, S) outputs at the packed GT points."""

    roi: Tensor  # (P,) which RoI each point belongs to
    y_lo: Tensor
    y_hi: Tensor
    x_lo: Tensor
    x_hi: Tensor
    w_x: Tensor
    w_y: Tensor
    valid: Tensor  # (P,) bool: point lies inside its proposal

    def at_channel(self, z: Tensor, channel: Tensor) -> Tensor:
        """(P,) values of z[roi, channel] at the points."""
        return self._blend(lambda yy, xx: z[self.roi, channel, yy, xx], self.w_x, self.w_y)

    def all_channels(self, z: Tensor) -> Tensor:
        """(P, C) values of every channel of z at the points."""
        return self._blend(lambda yy, xx: z[self.roi, :, yy, xx], self.w_x[:, None], self.w_y[:, None])

    def _blend(self, read: Any, w_x: Tensor, w_y: Tensor) -> Tensor:
        return (read(self.y_lo, self.x_lo) * (1 - w_x) * (1 - w_y) + read(self.y_lo, self.x_hi) * w_x * (1 - w_y)
                + read(self.y_hi, self.x_lo) * (1 - w_x) * w_y + read(self.y_hi, self.x_hi) * w_x * w_y)


def _xywh(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    return x0, y0, x1 - x0, y1 - y0


def resample_masks_to_boxes(masks: Tensor, gt_boxes: Tensor, dst_boxes: Tensor, size: int) -> Tensor:
    """(N, 256, 256) labels in GT-box frames -> (N, size, size) labels over `dst_boxes` (XYXY).

    detectron2's `resample_data` (nearest, zero padding, align_corners=True): output cell k of a
    destination box samples the source at normalised position x0n + k / size * (x1n - x0n).
    """
    n = masks.shape[0]
    x0s, y0s, ws, hs = _xywh(gt_boxes)
    x0d, y0d, wd, hd = _xywh(dst_boxes)
    x0n, y0n = 2 * (x0d - x0s) / ws - 1, 2 * (y0d - y0s) / hs - 1
    x1n, y1n = 2 * (x0d + wd - x0s) / ws - 1, 2 * (y0d + hd - y0s) / hs - 1
    steps = torch.arange(size, device=masks.device, dtype=torch.float32) / size
    grid_x = x0n[:, None, None] + steps[None, None, :] * (x1n - x0n)[:, None, None]
    grid_y = y0n[:, None, None] + steps[None, :, None] * (y1n - y0n)[:, None, None]
    grid = torch.stack((grid_x.expand(n, size, size), grid_y.expand(n, size, size)), dim=3)
    out = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=True)
    return out[:, 0]


def _fake_losses(outputs: DensePoseChartOutput) -> dict[str, Tensor]:
    return {
        "loss_densepose_I": outputs.fine_segm.sum() * 0,
        "loss_densepose_U": outputs.u.sum() * 0,
        "loss_densepose_V": outputs.v.sum() * 0,
        "loss_densepose_S": outputs.coarse_segm.sum() * 0,
    }


def densepose_chart_losses(
    outputs: DensePoseChartOutput,
    proposal_boxes: Tensor,
    gt_boxes: Tensor,
    targets: Sequence[Any],
    weights: DensePoseLossWeights = DensePoseLossWeights(),
) -> dict[str, Tensor]:
    """The four DensePose losses for N RoIs.

    outputs: predictor outputs for the N RoIs; proposal_boxes, gt_boxes: (N, 4) XYXY in one image
    frame (the resized one in training); targets: N DensePose targets (C's `DensePoseTarget`, or
    anything with tensors x, y (256 frame), i (1..24), u, v and `mask` (256, 256) labels or None),
    each with at least one point. Returns the dict named in LOSS_NAMES, weights applied.
    """
    if len(targets) == 0:
        return _fake_losses(outputs)
    device = outputs.u.device
    counts = torch.tensor([len(t.x) for t in targets], device=device)
    roi = torch.repeat_interleave(torch.arange(len(targets), device=device), counts)

    def cat(field: str, dtype: torch.dtype) -> Tensor:
        return torch.cat([torch.as_tensor(getattr(t, field)).reshape(-1) for t in targets]).to(device, dtype)

    x_gt, y_gt = cat("x", torch.float32), cat("y", torch.float32)
    i_gt = cat("i", torch.long)
    u_gt, v_gt = cat("u", torch.float32), cat("v", torch.float32)

    gt_boxes = gt_boxes.to(device, torch.float32)
    proposal_boxes = proposal_boxes.to(device, torch.float32)
    x0g, y0g, wg, hg = (c[roi] for c in _xywh(gt_boxes))
    x0e, y0e, we, he = (c[roi] for c in _xywh(proposal_boxes))
    zh, zw = outputs.u.shape[2:]
    x_lo, x_hi, w_x, jx = _linear_interpolation(x_gt, x0g, wg, x0e, we, zw)
    y_lo, y_hi, w_y, jy = _linear_interpolation(y_gt, y0g, hg, y0e, he, zh)
    sampler = _PointSampler(roi, y_lo, y_hi, x_lo, x_hi, w_x, w_y, jx & jy)

    valid_fg = sampler.valid & (i_gt > 0)
    if not bool(valid_fg.any()):
        return _fake_losses(outputs)

    u_est = sampler.at_channel(outputs.u, i_gt)[valid_fg]
    v_est = sampler.at_channel(outputs.v, i_gt)[valid_fg]
    fine_est = sampler.all_channels(outputs.fine_segm)[sampler.valid]
    losses = {
        "loss_densepose_I": F.cross_entropy(fine_est, i_gt[sampler.valid]) * weights.fine,
        "loss_densepose_U": F.smooth_l1_loss(u_est, u_gt[valid_fg], reduction="sum") * weights.uv,
        "loss_densepose_V": F.smooth_l1_loss(v_est, v_gt[valid_fg], reduction="sum") * weights.uv,
    }
    losses["loss_densepose_S"] = _coarse_loss(outputs, proposal_boxes, gt_boxes, targets, weights)
    return losses


def _coarse_loss(outputs: DensePoseChartOutput, proposal_boxes: Tensor, gt_boxes: Tensor, targets: Sequence[Any],
                 weights: DensePoseLossWeights) -> Tensor:
    with_mask = [k for k, t in enumerate(targets) if getattr(t, "mask", None) is not None]
    if not with_mask or (weights.coarse_requires_all_masks and len(with_mask) != len(targets)):
        return outputs.coarse_segm.sum() * 0
    device = outputs.coarse_segm.device
    index = torch.tensor(with_mask, device=device)
    masks = torch.stack([torch.as_tensor(targets[k].mask).to(device) for k in with_mask])
    size = outputs.coarse_segm.shape[-1]
    with torch.no_grad():
        labels = resample_masks_to_boxes(masks, gt_boxes[index], proposal_boxes[index], size)
    if outputs.coarse_segm.shape[1] == 2:
        labels = labels > 0
    return F.cross_entropy(outputs.coarse_segm[index], labels.long()) * weights.coarse


def select_densepose_rois(
    proposals: Sequence[Tensor],
    labels: Sequence[Tensor],
    matched_idxs: Sequence[Tensor],
    targets: Sequence[dict[str, Any]],
    iou_threshold: float = 0.7,
) -> tuple[list[Tensor], Tensor, list[Any]]:
    """RoIs that train the DensePose head (detectron2's select_foreground_proposals + DensePoseDataFilter).

    Keeps sampled foreground proposals whose IoU with their matched GT box is > iou_threshold
    (strictly, as detectron2's code) and whose GT instance has DensePose points. Returns the
    per-image kept proposal boxes, the (R, 4) matched GT boxes and the R targets, in order.
    """
    kept_boxes: list[Tensor] = []
    gt_kept: list[Tensor] = []
    dp_kept: list[Any] = []
    for props, labs, matched, target in zip(proposals, labels, matched_idxs, targets):
        dp_list: Optional[Sequence[Any]] = target.get("densepose")
        fg = torch.where(labs > 0)[0]
        if dp_list is None or fg.numel() == 0:
            kept_boxes.append(props[:0])
            continue
        gt_index = matched[fg]
        gt = target["boxes"][gt_index].to(props.dtype)
        p = props[fg]
        has_points = torch.tensor([dp is not None and len(dp.x) > 0 for dp in dp_list], dtype=torch.bool,
                                  device=props.device)
        keep_t = torch.where((_matched_iou(gt, p) > iou_threshold) & has_points[gt_index])[0]
        dp_kept.extend(dp_list[int(k)] for k in gt_index[keep_t])
        kept_boxes.append(p[keep_t])
        gt_kept.append(gt[keep_t])
    gt_boxes = torch.cat(gt_kept) if gt_kept else proposals[0].new_zeros((0, 4))
    return kept_boxes, gt_boxes, dp_kept


def _matched_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of a[k] with b[k] (detectron2's matched_pairwise_iou; torchvision's box_iou is all-pairs)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (area_a + area_b - inter)
