"""DensePose R-CNN model (densepose_train.model): names, pooler, losses, training, inference pixels.

Expectations are independent of the code under test: torchvision's own Faster R-CNN key layout,
the level formula floor(4 + log2(sqrt(area) / 224)), ROIAlign of a linear ramp (= bin centres),
smooth-L1 and cross-entropy evaluated by hand, and hand-placed boxes through a fake RPN.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from densepose_train.data.targets import DensePoseTarget as Target
from densepose_train.errors import TrainUserError
from densepose_train.model import DensePoseResult, build_model, paste_in_image, result_grid
from densepose_train.model.backbone import build_backbone
from densepose_train.model.densepose_head import DensePoseChartOutput, DensePoseChartPredictor, DensePosePooler
from densepose_train.model.losses import DensePoseLossWeights, densepose_chart_losses
from densepose_train.model.outputs import densepose_result
from densepose_train.model.rcnn import Detectron2AnchorGenerator
from torchvision.models.detection.image_list import ImageList

torch.set_num_threads(1)

S = 112

TINY = {
    "backbone": "tiny", "norm": "group_norm", "freeze_at": 0, "fpn_channels": 32, "head_conv_channels": 32,
    "head_conv_layers": 2, "box_head_dim": 64, "roi_batch_size_per_image": 64, "min_size": 160, "max_size": 256,
    "input_format": "RGB", "pixel_mean": [123.7, 116.3, 103.5], "pixel_std": [57.4, 57.1, 58.4],
}


def outputs_filled(n: int = 1, coarse_channels: int = 2) -> DensePoseChartOutput:
    return DensePoseChartOutput(torch.zeros(n, coarse_channels, S, S), torch.zeros(n, 25, S, S),
                                torch.zeros(n, 25, S, S), torch.zeros(n, 25, S, S))


def smooth_l1(d: np.ndarray) -> np.ndarray:
    d = np.abs(d)
    return np.where(d < 1.0, 0.5 * d * d, d - 0.5)


# ----------------------------------------------------------------------------- architecture


def test_reference_model_has_torchvision_and_detectron2_names():
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    ours = build_model({}).state_dict()  # every key missing: the reference s1x architecture
    theirs = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2).state_dict()
    for key, value in theirs.items():
        if key.endswith("num_batches_tracked"):  # torchvision uses trainable BN without pretrained weights
            continue
        assert key in ours and ours[key].shape == value.shape, key
    head = [k for k in ours if k.startswith("roi_heads.densepose_head.")]
    assert head == [f"roi_heads.densepose_head.body_conv_fcn{i}.{p}" for i in range(1, 9) for p in ("weight", "bias")]
    assert ours["roi_heads.densepose_head.body_conv_fcn1.weight"].shape == (512, 256, 3, 3)
    assert ours["roi_heads.densepose_head.body_conv_fcn8.weight"].shape == (512, 512, 3, 3)
    # ConvTranspose2d weights are (in, out, k, k)
    assert ours["roi_heads.densepose_predictor.ann_index_lowres.weight"].shape == (512, 2, 4, 4)
    for name in ("index_uv_lowres", "u_lowres", "v_lowres"):
        assert ours[f"roi_heads.densepose_predictor.{name}.weight"].shape == (512, 25, 4, 4)
    assert ours["roi_heads.box_predictor.cls_score.weight"].shape == (2, 1024)
    # detectron2's Panoptic FPN decoder: Sequential indices skip the upsampling layers
    decoder = sorted(k[len("roi_heads.densepose_decoder."):] for k in ours
                     if k.startswith("roi_heads.densepose_decoder.") and k.endswith(".weight"))
    assert decoder == ["p2.0.weight", "p3.0.weight", "p4.0.weight", "p4.2.weight", "p5.0.weight", "p5.2.weight",
                       "p5.4.weight", "predictor.weight"]
    assert ours["roi_heads.densepose_decoder.p5.4.weight"].shape == (256, 256, 3, 3)
    assert ours["roi_heads.densepose_decoder.predictor.weight"].shape == (256, 256, 1, 1)


def test_default_model_freezes_stem_and_res2_and_strides_1x1():
    model = build_model({})
    body = model.backbone.body
    assert not any(p.requires_grad for p in body.conv1.parameters())
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())
    assert body.layer2[0].conv1.stride == (2, 2) and body.layer2[0].conv2.stride == (1, 1)
    pooler = model.roi_heads.densepose_pooler
    assert pooler.aligned is False  # s1x yaml: POOLER_TYPE "ROIAlign"
    assert pooler.scales == (0.25,)  # every RoI from the decoder's stride-4 map


def test_legacy_layout_pools_from_p2_to_p5_without_a_decoder():
    model = build_model({"model": {**TINY, "densepose_decoder": False, "densepose_pooler_type": "ROIAlignV2"}})
    assert model.roi_heads.densepose_decoder is None
    assert not any(k.startswith("roi_heads.densepose_decoder.") for k in model.state_dict())
    pooler = model.roi_heads.densepose_pooler
    assert pooler.scales == (1 / 4, 1 / 8, 1 / 16, 1 / 32) and pooler.aligned is True


def test_decoder_sums_the_levels_at_stride_4():
    from densepose_train.model.densepose_head import PanopticFPNDecoder

    decoder = PanopticFPNDecoder(8, 8, 6)
    feats = [torch.randn(1, 8, 32 // s, 32 // s) for s in (1, 2, 4, 8)]
    F = nn.functional
    expected = 0
    with torch.no_grad():  # detectron2's order per level: (conv3x3 + ReLU, then x2 bilinear) while coarser than /4
        for name, x, n_convs in (("p2", feats[0], 1), ("p3", feats[1], 1), ("p4", feats[2], 2), ("p5", feats[3], 3)):
            head = getattr(decoder, name)
            for k in range(n_convs):
                conv = head[2 * k]
                x = torch.relu(F.conv2d(x, conv.weight, conv.bias, padding=1))
                if name != "p2":
                    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            expected = expected + x
        expected = F.conv2d(expected, decoder.predictor.weight, decoder.predictor.bias)
        out = decoder(feats)
    assert out.shape == (1, 6, 32, 32)
    assert torch.allclose(out, expected, atol=1e-5)


def test_predictor_outputs_are_112_with_deconv_4_2_1():
    predictor = DensePoseChartPredictor(16, coarse_segm_channels=15)
    for name in ("ann_index_lowres", "index_uv_lowres", "u_lowres", "v_lowres"):
        layer = getattr(predictor, name)
        assert isinstance(layer, nn.ConvTranspose2d)
        assert (layer.kernel_size, layer.stride, layer.padding) == ((4, 4), (2, 2), (1, 1))
    out = predictor(torch.randn(3, 16, 28, 28))
    assert out.coarse_segm.shape == (3, 15, S, S)
    for t in (out.fine_segm, out.u, out.v):
        assert t.shape == (3, 25, S, S)


@pytest.mark.parametrize("stride_in_1x1", [True, False])
def test_stride_in_1x1_moves_the_stride_to_conv1(stride_in_1x1):
    backbone = build_backbone("resnet50", "frozen_bn", stride_in_1x1, fpn_channels=32, freeze_at=0)
    for stage in ("layer2", "layer3", "layer4"):
        block = getattr(backbone.body, stage)[0]
        assert block.conv1.stride == ((2, 2) if stride_in_1x1 else (1, 1))
        assert block.conv2.stride == ((1, 1) if stride_in_1x1 else (2, 2))
        assert block.downsample[0].stride == (2, 2)
    shapes = {k: tuple(v.shape[-2:]) for k, v in backbone(torch.randn(1, 3, 64, 64)).items()}
    assert shapes == {"0": (16, 16), "1": (8, 8), "2": (4, 4), "3": (2, 2), "pool": (1, 1)}


def test_stride_placement_changes_the_features():
    a = build_backbone("resnet50", "frozen_bn", True, fpn_channels=32, freeze_at=0)
    b = build_backbone("resnet50", "frozen_bn", False, fpn_channels=32, freeze_at=0)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(a(x)["1"], b(x)["1"])


def test_bad_config_values_are_one_line_user_errors():
    with pytest.raises(TrainUserError, match="model.backbone") as err:
        build_model({"model": {"backbone": "resnet51"}})
    assert "\n" not in str(err.value)
    with pytest.raises(TrainUserError, match="model.heatmap_size"):
        build_model({"model": {"heatmap_size": 100}})
    with pytest.raises(TrainUserError, match="model.coarse_segm_channels"):
        build_model({"model": {"coarse_segm_channels": 14}})


def test_bgr_normalisation_uses_0_255_mean_and_std():
    model = build_model({"model": {**TINY, "input_format": "BGR", "pixel_mean": [10.0, 20.0, 30.0],
                                   "pixel_std": [2.0, 4.0, 5.0]}})
    rgb = torch.rand(3, 8, 8) * 255
    bgr = torch.stack([rgb[2], rgb[1], rgb[0]])
    expected = (bgr - torch.tensor([10.0, 20.0, 30.0])[:, None, None]) / torch.tensor([2.0, 4.0, 5.0])[:, None, None]
    assert torch.allclose(model.transform.normalize(rgb), expected)


def test_anchors_are_detectron2s_unrounded_at_fixed_strides():
    gen = Detectron2AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5,
                                    (4, 8, 16, 32, 64))
    w = math.sqrt(32 * 32 / 0.5)
    assert torch.allclose(gen.cell_anchors[0][0], torch.tensor([-w / 2, -0.5 * w / 2, w / 2, 0.5 * w / 2]))
    # 800 x 1216 padded batch: P5 is 25 x 38, P6 13 x 19; P6 anchors step 64 px (not 800 // 13 = 61)
    sizes = [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]
    feats = [torch.zeros(1, 1, h, w_) for h, w_ in sizes]
    anchors = gen(ImageList(torch.zeros(1, 3, 800, 1216), [(800, 1199)]), feats)[0]
    p6 = anchors[-13 * 19 * 3:]
    centres_y = ((p6[:, 1] + p6[:, 3]) / 2).round(decimals=3)
    assert torch.allclose(centres_y.unique(), torch.arange(13, dtype=torch.float32) * 64)


# ----------------------------------------------------------------------------- pooler


def test_pooler_level_assignment_formula():
    pooler = DensePosePooler()
    sides = [30.0, 56.0, 111.9, 112.0, 224.0, 447.0, 448.0, 1000.0]
    boxes = torch.tensor([[5.0, 5.0, 5.0 + s, 5.0 + s] for s in sides])
    expected = [min(5, max(2, math.floor(4 + math.log2(s / 224)))) for s in sides]
    assert expected == [2, 2, 2, 3, 4, 4, 5, 5]
    assert (pooler.levels([boxes]) + 2).tolist() == expected


@pytest.mark.parametrize("aligned", [True, False])
def test_pooler_reads_the_right_level_at_the_right_place(aligned):
    # Each level's map holds its column index + 1000 * level: ROIAlign of a linear ramp is the ramp
    # at each bin centre, so pooled values reveal both the level and the sampling positions.
    image = 512
    feats = []
    for level, stride in enumerate((4, 8, 16, 32)):
        n = image // stride
        ramp = torch.arange(n, dtype=torch.float32)[None, :].expand(n, n) + 1000.0 * level
        feats.append(ramp[None, None].repeat(2, 1, 1, 1))
    pooler = DensePosePooler(output_size=28, aligned=aligned)
    boxes = [torch.tensor([[100.0, 100.0, 156.0, 160.0]]), torch.tensor([[40.0, 60.0, 300.0, 340.0]])]
    pooled = pooler(feats, boxes)
    assert pooled.shape == (2, 1, 28, 28)
    for k, (box, batch) in enumerate(zip(boxes, range(2))):
        x0, y0, x1, y1 = box[0].tolist()
        level = min(5, max(2, math.floor(4 + math.log2(math.sqrt((x1 - x0) * (y1 - y0)) / 224)))) - 2
        scale = 1.0 / (4 * 2 ** level)
        offset = 0.5 if aligned else 0.0
        bin_w = (x1 - x0) * scale / 28
        expected = x0 * scale - offset + (torch.arange(28) + 0.5) * bin_w + 1000.0 * level
        assert torch.allclose(pooled[k, 0, 7], expected, atol=1e-3), (k, level)
        # and the same as one torchvision roi_align call on that level alone
        from torchvision.ops import roi_align

        roi = torch.tensor([[float(batch), x0, y0, x1, y1]])
        direct = roi_align(feats[level], roi, 28, spatial_scale=scale, sampling_ratio=2, aligned=aligned)
        assert torch.allclose(pooled[k], direct[0])


# ----------------------------------------------------------------------------- losses


def test_fine_loss_is_zero_for_a_huge_logit_on_the_gt_part_and_50_on_a_wrong_one():
    box = torch.tensor([[10.0, 20.0, 110.0, 220.0]])
    g = torch.Generator().manual_seed(1)
    t = Target(torch.rand(50, generator=g) * 256, torch.rand(50, generator=g) * 256, torch.full((50,), 7),
               torch.rand(50, generator=g), torch.rand(50, generator=g))
    out = outputs_filled()
    out.fine_segm[:, 7] = 50.0
    assert densepose_chart_losses(out, box, box, [t])["loss_densepose_I"].item() < 1e-6
    out = outputs_filled()
    out.fine_segm[:, 3] = 50.0
    loss = densepose_chart_losses(out, box, box, [t], DensePoseLossWeights(fine=2.0))["loss_densepose_I"].item()
    assert loss == pytest.approx(2.0 * (50.0 + math.log(1 + 24 * math.exp(-50))), rel=1e-5)


@pytest.mark.parametrize("constant", [0.3, 2.5])  # both branches of smooth-L1
def test_uv_loss_is_summed_smooth_l1_for_a_constant_head(constant):
    box = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    g = torch.Generator().manual_seed(2)
    u, v = torch.rand(40, generator=g), torch.rand(40, generator=g)
    t = Target(torch.rand(40, generator=g) * 255, torch.rand(40, generator=g) * 255,
               torch.randint(1, 25, (40,), generator=g), u, v)
    out = outputs_filled()
    out.u[:] = constant
    out.v[:] = constant
    losses = densepose_chart_losses(out, box, box, [t])
    assert losses["loss_densepose_U"].item() == pytest.approx(0.01 * smooth_l1(constant - u.numpy()).sum(), rel=1e-5)
    assert losses["loss_densepose_V"].item() == pytest.approx(0.01 * smooth_l1(constant - v.numpy()).sum(), rel=1e-5)


def test_points_are_mapped_from_the_gt_box_into_the_proposal_grid():
    # GT box (10, 20)-(110, 220); proposal (30, 0)-(130, 200). A point at (x, y) of the 256 frame sits at
    # image (10 + x * 100 / 256, 20 + y * 200 / 256) and proposal cell (gx, gy) = ((X - 30) * 112 / 100,
    # Y * 112 / 200); cell k stands for box-relative position k / 112. Points outside the proposal drop out.
    gt = torch.tensor([[10.0, 20.0, 110.0, 220.0]])
    prop = torch.tensor([[30.0, 0.0, 130.0, 200.0]])
    x = torch.tensor([10.0, 60.0, 100.0, 200.0, 250.0, 128.0, 128.0])
    y = torch.tensor([5.0, 40.0, 128.0, 200.0, 10.0, 225.0, 240.0])  # x=10 left of prop; y=240 below it
    t = Target(x, y, torch.full((7,), 4), torch.zeros(7), torch.zeros(7))
    out = outputs_filled()
    cols = torch.arange(S, dtype=torch.float32)
    out.u[:] = cols[None, None, None, :] / 1000  # U ramp along columns, V along rows, GT 0: loss = sum of squares
    out.v[:] = cols[None, None, :, None] / 1000
    losses = densepose_chart_losses(out, prop, gt, [t])
    X = 10 + x.numpy() * 100 / 256
    Y = 20 + y.numpy() * 200 / 256
    inside = (X >= 30) & (X < 130) & (Y >= 0) & (Y < 200)
    assert inside.tolist() == [False, True, True, True, True, True, False]
    gx = np.minimum((X - 30) * 112 / 100, 111)[inside]
    gy = np.minimum(Y * 112 / 200, 111)[inside]
    assert losses["loss_densepose_U"].item() == pytest.approx(0.01 * (0.5 * (gx / 1000) ** 2).sum(), rel=1e-4)
    assert losses["loss_densepose_V"].item() == pytest.approx(0.01 * (0.5 * (gy / 1000) ** 2).sum(), rel=1e-4)


def test_coarse_loss_resamples_the_256_mask_into_the_proposal():
    # Proposal twice as wide as the GT box: GT (all-foreground mask) covers proposal columns 0..55,
    # column 56 is its edge (logits left at 0: log 2 per pixel), columns 57..111 are outside (background).
    gt = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    prop = torch.tensor([[0.0, 0.0, 200.0, 100.0]])
    t = Target(torch.tensor([128.0]), torch.tensor([128.0]), torch.tensor([1]), torch.zeros(1), torch.zeros(1),
               mask=torch.ones(256, 256, dtype=torch.uint8))
    big = 30.0
    right = outputs_filled()
    right.coarse_segm[:, 1, :, :56] = big
    right.coarse_segm[:, 0, :, 57:] = big
    loss = densepose_chart_losses(right, prop, gt, [t])["loss_densepose_S"].item()
    assert loss == pytest.approx(5.0 * math.log(2) / 112, rel=1e-3)
    wrong = outputs_filled()
    wrong.coarse_segm[:, 1, :, :56] = big
    wrong.coarse_segm[:, 1, :, 57:] = big
    loss = densepose_chart_losses(wrong, prop, gt, [t])["loss_densepose_S"].item()
    assert loss == pytest.approx(5.0 * (55 * big + math.log(2)) / 112, rel=1e-3)


def test_coarse_loss_with_15_channels_uses_part_labels():
    box = torch.tensor([[0.0, 0.0, 50.0, 80.0]])
    mask = torch.zeros(256, 256, dtype=torch.uint8)
    mask[:128] = 3
    mask[128:] = 14
    t = Target(torch.tensor([20.0]), torch.tensor([20.0]), torch.tensor([1]), torch.zeros(1), torch.zeros(1), mask)
    out = outputs_filled(coarse_channels=15)
    out.coarse_segm[:, 3, :56] = 30.0  # row 56 = the mask's row-127/128 edge, left at 0
    out.coarse_segm[:, 14, 57:] = 30.0
    loss = densepose_chart_losses(out, box, box, [t])["loss_densepose_S"].item()
    assert loss == pytest.approx(5.0 * math.log(15) / 112, rel=1e-3)


def test_coarse_loss_skips_instances_without_masks_unless_asked_to_drop_it():
    box = torch.tensor([[0.0, 0.0, 60.0, 60.0]]).repeat(2, 1)
    full = torch.ones(256, 256, dtype=torch.uint8)
    point = (torch.tensor([100.0]), torch.tensor([100.0]), torch.tensor([2]), torch.zeros(1), torch.zeros(1))
    out = outputs_filled(2)
    out.coarse_segm[0, 1] = 30.0  # first RoI: perfect; second: all logits 0 (log 2 per pixel)
    both = densepose_chart_losses(out, box, box, [Target(*point, full), Target(*point, full)])
    assert both["loss_densepose_S"].item() == pytest.approx(5.0 * math.log(2) / 2, rel=1e-4)
    only_first = densepose_chart_losses(out, box, box, [Target(*point, full), Target(*point, None)])
    assert only_first["loss_densepose_S"].item() < 1e-6
    detectron2_rule = densepose_chart_losses(out, box, box, [Target(*point, full), Target(*point, None)],
                                             DensePoseLossWeights(coarse_requires_all_masks=True))
    assert detectron2_rule["loss_densepose_S"].item() == 0.0


def test_no_point_inside_any_proposal_gives_zero_losses_that_backpropagate():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    prop = torch.tensor([[50.0, 50.0, 90.0, 90.0]])
    t = Target(torch.tensor([100.0]), torch.tensor([100.0]), torch.tensor([2]), torch.zeros(1), torch.zeros(1))
    out = outputs_filled()
    for field in ("coarse_segm", "fine_segm", "u", "v"):
        getattr(out, field).requires_grad_(True)
    losses = densepose_chart_losses(out, prop, gt, [t])
    assert sorted(losses) == ["loss_densepose_I", "loss_densepose_S", "loss_densepose_U", "loss_densepose_V"]
    assert all(v.item() == 0.0 for v in losses.values())
    sum(losses.values()).backward()
    assert out.u.grad is not None and float(out.u.grad.abs().sum()) == 0.0


# ----------------------------------------------------------------------------- training and inference


def synthetic_sample() -> tuple[torch.Tensor, dict]:
    image = torch.full((3, 160, 160), 30.0)
    image[:, 40:140, 60:110] = 200.0
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(100, generator=g) * 256, torch.rand(100, generator=g) * 256
    i = (1 + (y / 256 * 4).long() * 6 + (x / 256 * 6).long()).clamp(1, 24)
    mask = torch.zeros(256, 256, dtype=torch.uint8)
    mask[20:240, 30:220] = 1
    target = {"boxes": torch.tensor([[60.0, 40.0, 110.0, 140.0]]), "labels": torch.tensor([1]),
              "densepose": [Target(x, y, i, x / 256, y / 256, mask)]}
    return image, target


def test_training_returns_the_loss_dict_and_a_few_steps_lower_it():
    torch.manual_seed(0)
    model = build_model({"model": TINY})
    model.train()
    image, target = synthetic_sample()
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    totals = []
    for _ in range(15):
        losses = model([image], [target])
        total = sum(losses.values())
        optimiser.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        totals.append(total.item())
    assert sorted(losses) == sorted(["loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg",
                                     "loss_densepose_I", "loss_densepose_U", "loss_densepose_V", "loss_densepose_S"])
    assert all(math.isfinite(t) for t in totals)
    assert np.mean(totals[-3:]) < 0.9 * np.mean(totals[:3]), totals


class FixedProposals(nn.Module):
    """An RPN stand-in that proposes one fixed box (in the transform's resized frame)."""

    def __init__(self, box: list[float]) -> None:
        super().__init__()
        self.box = torch.tensor([box])

    def forward(self, images, features, targets=None):
        return [self.box.clone() for _ in images.image_sizes], {}


def constant_heads(model) -> None:
    """Box branch: person with score ~1 and no regression; DensePose: part 7, U 0.25, V 0.75, all foreground."""
    heads = model.roi_heads
    with torch.no_grad():
        for layer in (heads.box_predictor.cls_score, heads.box_predictor.bbox_pred):
            layer.weight.zero_()
            layer.bias.zero_()
        heads.box_predictor.cls_score.bias[1] = 10.0
        predictor = heads.densepose_predictor
        for layer in (predictor.ann_index_lowres, predictor.index_uv_lowres, predictor.u_lowres, predictor.v_lowres):
            layer.weight.zero_()
            layer.bias.zero_()
        predictor.ann_index_lowres.bias[1] = 5.0
        predictor.index_uv_lowres.bias[7] = 5.0
        predictor.u_lowres.bias[7] = 0.25
        predictor.v_lowres.bias[7] = 0.75


def test_inference_boxes_and_results_are_in_original_pixels():
    model = build_model({"model": {**TINY, "min_size": 200, "max_size": 400}})
    model.eval()
    # The same proposal in the transform's resized frame for both images: the 100 x 150 image is
    # resized 2x, so its box is (20, 30)-(60, 90) in its own pixels; the 200 x 300 one is not resized.
    model.rpn = FixedProposals([40.0, 60.0, 120.0, 180.0])
    constant_heads(model)
    with torch.no_grad():
        out = model([torch.rand(3, 100, 150) * 255, torch.rand(3, 200, 300) * 255])
    assert len(out) == 2
    for detections, box, hw in ((out[0], [20.0, 30.0, 60.0, 90.0], (60, 40)),
                                (out[1], [40.0, 60.0, 120.0, 180.0], (120, 80))):
        assert detections["boxes"].shape == (1, 4)
        assert torch.allclose(detections["boxes"][0], torch.tensor(box), atol=1e-4)
        assert detections["labels"].tolist() == [1] and detections["scores"][0] > 0.99
        assert "densepose_raw" not in detections and len(detections["densepose"]) == 1
        result = detections["densepose"][0]
        assert isinstance(result, DensePoseResult)
        assert result.labels.shape == hw and result.labels.dtype == np.uint8
        assert result.uv.shape == (2, *hw) and result.uv.dtype == np.float32
        assert result.coarse.shape == hw and result.coarse.dtype == np.bool_
        assert (result.labels == 7).all() and result.coarse.all()
        assert np.allclose(result.uv[0], 0.25) and np.allclose(result.uv[1], 0.75)


def test_inference_without_detections_gives_empty_lists():
    model = build_model({"model": {**TINY, "score_thresh": 1.0}})
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 120, 160) * 255])
    assert out[0]["boxes"].shape == (0, 4) and out[0]["densepose"] == []


def test_fine_labels_are_zero_where_the_coarse_segmentation_is_background():
    coarse = torch.zeros(1, 2, S, S)
    coarse[:, 1, :, :56] = 5.0
    coarse[:, 0, :, 56:] = 5.0
    fine = torch.zeros(1, 25, S, S)
    fine[:, 5] = 3.0
    u = torch.full((1, 25, S, S), 0.4)
    v = torch.full((1, 25, S, S), 1.7)  # out of range: clipped to 1
    r = densepose_result(coarse, fine, u, v, torch.tensor([0.0, 0.0, 112.0, 112.0]))
    assert (r.labels[:, :56] == 5).all() and (r.labels[:, 56:] == 0).all()
    assert r.coarse[:, :56].all() and not r.coarse[:, 56:].any()
    assert np.allclose(r.uv[0, :, :56], 0.4) and np.allclose(r.uv[1, :, :56], 1.0)
    assert (r.uv[:, :, 56:] == 0).all()


def test_result_grid_and_pasting_follow_the_documented_convention():
    assert result_grid([10.7, 5.2, 30.9, 25.1]) == (10, 5, 20, 19)
    assert result_grid([3.0, 4.0, 3.4, 4.2]) == (3, 4, 1, 1)
    pasted = paste_in_image(np.ones((19, 20), bool), [10.7, 5.2, 30.9, 25.1], (30, 40))
    rows, cols = np.nonzero(pasted)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (5, 23, 10, 29)
    clipped = paste_in_image(np.ones((2, 10, 9), np.float32), [35.5, 0.0, 45.2, 10.0], (30, 40))
    assert clipped.shape == (2, 30, 40) and clipped[:, :10, 35:].all() and clipped.sum() == 2 * 10 * 5


def test_people_without_densepose_and_images_without_people_train_with_zero_densepose_losses():
    torch.manual_seed(0)
    model = build_model({"model": TINY})
    model.train()
    image, target = synthetic_sample()
    no_dp = {**target, "densepose": [None]}
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "densepose": []}
    for images, targets in (([image], [no_dp]), ([image], [empty])):
        losses = model(images, targets)
        assert all(losses[k].item() == 0.0 for k in losses if k.startswith("loss_densepose"))
        sum(losses.values()).backward()  # the graph still reaches the DensePose head
        assert model.roi_heads.densepose_predictor.u_lowres.weight.grad is not None
        model.zero_grad()
    losses = model([image, image], [empty, target])  # a mixed batch still trains DensePose
    assert losses["loss_densepose_I"].item() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_step_and_inference_on_cuda():
    device = torch.device("cuda")
    model = build_model({"model": TINY}).to(device)
    image, target = synthetic_sample()
    target = {**target, "boxes": target["boxes"].to(device), "labels": target["labels"].to(device)}
    model.train()
    losses = model([image.to(device)], [target])  # DensePose targets may stay on the CPU
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model([image.to(device)])
    assert out[0]["boxes"].device.type == "cuda"
    assert all(isinstance(r, DensePoseResult) for r in out[0]["densepose"])
