"""detectron2 checkpoint import and our own checkpoints.

The import test writes a real detectron2-style `.pkl` ({"model": {name: array}, "__author__"})
with the exact key names and shapes of `model_final_162be9.pkl` (densepose_rcnn_R_50_FPN_s1x),
filled with random numbers, imports it into the ResNet-50 model, and checks each layer's output
against a small re-implementation of detectron2's layer computed straight from the arrays
(FrozenBN, stride-in-1x1 bottlenecks, FPN top-down sum, RPN head, box head, class order, DensePose
head and predictor). The reference shapes are restated here from detectron2's source so that
the importer's table is checked against an independent copy.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from densepose_train.errors import TrainUserError
from densepose_train.model import checkpoint_import as ci
from densepose_train.model import checkpoints as ck
from densepose_train.model.rcnn import build_model

torch.set_num_threads(1)

EPS = 1e-5                                   # detectron2 FrozenBatchNorm2d
STAGES = [(3, 64, 256), (4, 128, 512), (6, 256, 1024), (3, 512, 2048)]   # blocks, width, out


# ------------------------------------------------------------------------------------------
# The reference checkpoint, restated from detectron2's source
# ------------------------------------------------------------------------------------------

def d2_reference_shapes(res4_blocks: int = 6) -> dict[str, tuple[int, ...]]:
    """detectron2 names -> shapes of densepose_rcnn_R_50_FPN_s1x (written independently of the importer)."""
    s: dict[str, tuple[int, ...]] = {}
    norm = ("weight", "bias", "running_mean", "running_var")

    def cn(name, o, i, k):
        s[name + ".weight"] = (o, i, k, k)
        s.update({f"{name}.norm.{p}": (o,) for p in norm})

    def cb(name, o, i, k):
        s[name + ".weight"], s[name + ".bias"] = (o, i, k, k), (o,)

    cn("backbone.bottom_up.stem.conv1", 64, 3, 7)
    cin = 64
    for st, (n, w, o) in enumerate(STAGES, 2):
        n = res4_blocks if st == 4 else n
        for b in range(n):
            p = f"backbone.bottom_up.res{st}.{b}"
            if b == 0:
                cn(p + ".shortcut", o, cin, 1)
            cn(p + ".conv1", w, cin if b == 0 else o, 1)
            cn(p + ".conv2", w, w, 3)
            cn(p + ".conv3", o, w, 1)
        cin = o
    for lvl, c in zip(range(2, 6), (256, 512, 1024, 2048)):
        cb(f"backbone.fpn_lateral{lvl}", 256, c, 1)
        cb(f"backbone.fpn_output{lvl}", 256, 256, 3)
    cb("proposal_generator.rpn_head.conv", 256, 256, 3)
    cb("proposal_generator.rpn_head.objectness_logits", 3, 256, 1)
    cb("proposal_generator.rpn_head.anchor_deltas", 12, 256, 1)
    for name, shape in (("roi_heads.box_head.fc1", (1024, 256 * 7 * 7)), ("roi_heads.box_head.fc2", (1024, 1024)),
                        ("roi_heads.box_predictor.cls_score", (2, 1024)),
                        ("roi_heads.box_predictor.bbox_pred", (4, 1024))):
        s[name + ".weight"], s[name + ".bias"] = shape, (shape[0],)
    for name in ("p2.0", "p3.0", "p4.0", "p4.2", "p5.0", "p5.2", "p5.4"):
        cb(f"roi_heads.decoder.{name}", 256, 256, 3)
    cb("roi_heads.decoder.predictor", 256, 256, 1)
    for i in range(1, 9):
        cb(f"roi_heads.densepose_head.body_conv_fcn{i}", 512, 256 if i == 1 else 512, 3)
    for name, o in (("ann_index_lowres", 2), ("index_uv_lowres", 25), ("u_lowres", 25), ("v_lowres", 25)):
        s[f"roi_heads.densepose_predictor.{name}.weight"] = (512, o, 4, 4)
        s[f"roi_heads.densepose_predictor.{name}.bias"] = (o,)
    return s


# Buffers that older detectron2 versions saved in model files (and the importer must ignore).
EXTRA_BUFFERS = {"pixel_mean": np.array([103.53, 116.28, 123.675], np.float32).reshape(3, 1, 1),
                 "pixel_std": np.ones((3, 1, 1), np.float32),
                 **{f"proposal_generator.anchor_generator.cell_anchors.{i}": np.zeros((3, 4), np.float32)
                    for i in range(5)}}


def random_d2_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights with sane scales: conv/fc ~ N(0, 1/fan_in), BN statistics far from identity."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif key.endswith("running_mean") or key.endswith("bias"):
            value = rng.normal(0.0, 0.3, shape)
        elif ".norm.weight" in key:
            value = rng.normal(1.0, 0.2, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if "densepose_predictor" not in key else shape[0] * 4
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        out[key] = value.astype(np.float32)
    return out


def write_d2_pkl(path: Path, arrays: dict[str, np.ndarray], protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    with open(path, "wb") as handle:
        pickle.dump({"model": arrays, "__author__": "Detectron2 Model Zoo"}, handle, protocol=protocol)
    return path


@pytest.fixture(scope="module")
def d2_state() -> dict[str, np.ndarray]:
    return random_d2_state(d2_reference_shapes())


@pytest.fixture(scope="module")
def d2_file(tmp_path_factory, d2_state) -> Path:
    return write_d2_pkl(tmp_path_factory.mktemp("d2") / "model_final_162be9.pkl", {**d2_state, **EXTRA_BUFFERS})


@pytest.fixture(scope="module")
def imported(d2_file):
    """The ResNet-50 model with the checkpoint imported from the .pkl file, and the report."""
    model = build_model({})
    model.eval()
    report = ck.init_from(str(d2_file), model)
    return model, report


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ------------------------------------------------------------------------------------------
# detectron2's layers, computed from the arrays
# ------------------------------------------------------------------------------------------

def frozen_bn(x, d, p):
    scale = t(d[p + ".weight"]) / torch.sqrt(t(d[p + ".running_var"]) + EPS)
    shift = t(d[p + ".bias"]) - t(d[p + ".running_mean"]) * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def conv_norm(x, d, p, stride=1, padding=0):
    return frozen_bn(F.conv2d(x, t(d[p + ".weight"]), None, stride, padding), d, p + ".norm")


def d2_stem(x, d):
    y = F.relu(conv_norm(x, d, "backbone.bottom_up.stem.conv1", stride=2, padding=3))
    return F.max_pool2d(y, kernel_size=3, stride=2, padding=1)


def d2_bottleneck(x, d, p, stride):
    """BottleneckBlock with stride_in_1x1=True (detectron2/modeling/backbone/resnet.py)."""
    y = F.relu(conv_norm(x, d, p + ".conv1", stride=stride))
    y = F.relu(conv_norm(y, d, p + ".conv2", padding=1))
    y = conv_norm(y, d, p + ".conv3")
    short = conv_norm(x, d, p + ".shortcut", stride=stride) if p + ".shortcut.weight" in d else x
    return F.relu(y + short)


def d2_resnet(x, d):
    feats = []
    x = d2_stem(x, d)
    for st, (n, _, _) in enumerate(STAGES, 2):
        for b in range(n):
            x = d2_bottleneck(x, d, f"backbone.bottom_up.res{st}.{b}", 2 if (b == 0 and st > 2) else 1)
        feats.append(x)
    return feats


def conv(x, d, p, padding=0, stride=1):
    return F.conv2d(x, t(d[p + ".weight"]), t(d[p + ".bias"]), stride, padding)


def d2_fpn(feats, d):
    """detectron2 FPN.forward with LastLevelMaxPool: top-down nearest x2 sums, 3x3 outputs, P6."""
    prev = conv(feats[3], d, "backbone.fpn_lateral5")
    outs = [conv(prev, d, "backbone.fpn_output5", padding=1)]
    for lvl in (4, 3, 2):
        top_down = F.interpolate(prev, scale_factor=2, mode="nearest")
        prev = conv(feats[lvl - 2], d, f"backbone.fpn_lateral{lvl}") + top_down
        outs.insert(0, conv(prev, d, f"backbone.fpn_output{lvl}", padding=1))
    outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2, padding=0))
    return outs


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> None:
    assert a.shape == b.shape
    scale = max(1.0, float(b.abs().max()))
    assert float((a - b).abs().max()) <= tol * scale, float((a - b).abs().max())


# ------------------------------------------------------------------------------------------
# Key table
# ------------------------------------------------------------------------------------------

def test_reference_table_matches_detectron2_source():
    table = ci.reference_shapes()
    # stem 5 + 16 blocks x 3 convs x 5 + 4 shortcuts x 5 + FPN 16 + RPN 6 + box 8 + decoder 16
    # + DensePose head 16 + predictor 8 = 335
    assert len(table) == 5 + 240 + 20 + 16 + 6 + 8 + 16 + 16 + 8 == 335
    assert table == d2_reference_shapes()
    assert table["roi_heads.box_head.fc1.weight"] == (1024, 12544)
    assert table["backbone.bottom_up.res5.0.shortcut.weight"] == (2048, 1024, 1, 1)
    assert table["roi_heads.densepose_predictor.ann_index_lowres.weight"] == (512, 2, 4, 4)


def test_every_checkpoint_tensor_lands_somewhere(imported, d2_state):
    model, report = imported
    assert sorted(report.loaded.values()) == sorted(d2_state)          # none silently dropped
    assert set(report.ignored) == set(EXTRA_BUFFERS)                    # only the documented buffers
    state = model.state_dict()
    learnt = {k for k in state if not k.endswith("num_batches_tracked")}
    assert set(report.loaded) == learnt                                 # every tensor of ours got one
    assert not report.not_loaded
    assert "imported 335 tensors" in report.summary()


# ------------------------------------------------------------------------------------------
# Every layer computes what detectron2's computes
# ------------------------------------------------------------------------------------------

def test_stem_and_each_bottleneck(imported, d2_state):
    model, _ = imported
    body = model.backbone.body
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        x = torch.randn(1, 3, 32, 32, generator=g) * 50
        close(body.maxpool(body.relu(body.bn1(body.conv1(x)))), d2_stem(x, d2_state))
        cin = 64
        for st, (n, _, out) in enumerate(STAGES, 2):
            layer = getattr(body, f"layer{st - 1}")
            for b in range(n):
                x = torch.randn(1, cin if b == 0 else out, 8, 8, generator=g)
                stride = 2 if (b == 0 and st > 2) else 1
                close(layer[b](x), d2_bottleneck(x, d2_state, f"backbone.bottom_up.res{st}.{b}", stride))
            cin = out


def test_whole_backbone_and_fpn(imported, d2_state):
    model, _ = imported
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 50
    with torch.no_grad():
        feats = d2_resnet(x, d2_state)
        ours = model.backbone.body(x)
        for ref, key in zip(feats, ("0", "1", "2", "3")):
            close(ours[key], ref)
        pyramid = model.backbone.fpn(ours)
        for ref, key in zip(d2_fpn(feats, d2_state), ("0", "1", "2", "3", "pool")):
            close(pyramid[key], ref)


def test_rpn_head(imported, d2_state):
    model, _ = imported
    x = torch.randn(1, 256, 6, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits, deltas = model.rpn.head([x])
        hidden = F.relu(conv(x, d2_state, "proposal_generator.rpn_head.conv", padding=1))
        close(logits[0], conv(hidden, d2_state, "proposal_generator.rpn_head.objectness_logits"))
        close(deltas[0], conv(hidden, d2_state, "proposal_generator.rpn_head.anchor_deltas"))


def test_box_head_and_predictor_class_order(imported, d2_state):
    model, _ = imported
    x = torch.randn(3, 256, 7, 7, generator=torch.Generator().manual_seed(4))
    d = d2_state
    with torch.no_grad():
        h = F.relu(F.linear(x.flatten(1), t(d["roi_heads.box_head.fc1.weight"]), t(d["roi_heads.box_head.fc1.bias"])))
        h = F.relu(F.linear(h, t(d["roi_heads.box_head.fc2.weight"]), t(d["roi_heads.box_head.fc2.bias"])))
        ours = model.roi_heads.box_head(x)
        close(ours, h)
        scores, deltas = model.roi_heads.box_predictor(ours)
        p = "roi_heads.box_predictor"
        d2_scores = F.linear(h, t(d[f"{p}.cls_score.weight"]), t(d[f"{p}.cls_score.bias"]))
        d2_deltas = F.linear(h, t(d[f"{p}.bbox_pred.weight"]), t(d[f"{p}.bbox_pred.bias"]))
        close(scores[:, 1], d2_scores[:, 0])        # person: detectron2 row 0 -> torchvision column 1
        close(scores[:, 0], d2_scores[:, 1])        # background: detectron2 last -> torchvision first
        close(F.softmax(scores, 1)[:, 1], F.softmax(d2_scores, 1)[:, 0])
        close(deltas[:, 4:8], d2_deltas)            # person's box deltas
        assert torch.all(deltas[:, :4] == 0)        # background's, never used by torchvision


def d2_decoder(feats, d):
    """detectron2 DensePose `Decoder.forward`: per level conv3x3+ReLU (x2 bilinear below stride 4), sum, 1x1."""
    total = 0
    for lvl, x in zip(range(2, 6), feats):
        for index in range(max(1, lvl - 2)):
            x = F.relu(conv(x, d, f"roi_heads.decoder.p{lvl}.{2 * index}", padding=1))
            if lvl > 2:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        total = total + x
    return conv(total, d, "roi_heads.decoder.predictor")


def test_decoder(imported, d2_state):
    model, _ = imported
    decoder = model.roi_heads.densepose_decoder
    g = torch.Generator().manual_seed(5)
    feats = [torch.randn(1, 256, 16 // 2 ** i, 16 // 2 ** i, generator=g) for i in range(4)]
    with torch.no_grad():
        for name in ("p2.0", "p3.0", "p4.0", "p4.2", "p5.0", "p5.2", "p5.4"):
            level, index = name.split(".")
            x = torch.randn(1, 256, 4, 4, generator=g)
            ref = F.relu(conv(x, d2_state, f"roi_heads.decoder.{name}", padding=1))
            close(getattr(decoder, level)[int(index)](x), ref)
        close(decoder(feats), d2_decoder(feats, d2_state))


def test_densepose_head_and_predictor(imported, d2_state):
    model, _ = imported
    x = torch.randn(2, 256, 6, 6, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        y = x
        for i in range(1, 9):
            y = F.relu(conv(y, d2_state, f"roi_heads.densepose_head.body_conv_fcn{i}", padding=1))
        head = model.roi_heads.densepose_head(x)
        close(head, y)
        out = model.roi_heads.densepose_predictor(head)
        for field, name in (("coarse_segm", "ann_index_lowres"), ("fine_segm", "index_uv_lowres"), ("u", "u_lowres"),
                            ("v", "v_lowres")):
            p = f"roi_heads.densepose_predictor.{name}"
            ref = F.conv_transpose2d(y, t(d2_state[p + ".weight"]), t(d2_state[p + ".bias"]), stride=2, padding=1)
            ref = F.interpolate(ref, scale_factor=2, mode="bilinear", align_corners=False)
            close(getattr(out, field), ref)
            assert getattr(out, field).shape[-1] == 4 * 6


# ------------------------------------------------------------------------------------------
# Reading files safely
# ------------------------------------------------------------------------------------------

MALICIOUS = {
    # protocol 0: os.system via GLOBAL
    "p0_os_system": lambda marker: f"cos\nsystem\n(V touch {marker}\ntR.".encode(),
    # protocol 4: STACK_GLOBAL with a dotted name under an allowed-looking module (numpy)
    "p4_numpy_runstring": lambda marker: _p4_pickle("numpy", "testing._private.utils.runstring",
                                                    f"open({str(marker)!r}, 'w').close()"),
    # the same exec hidden inside a model-zoo layout
    "p4_inside_model": lambda marker: _p4_pickle("numpy.testing._private.utils", "runstring",
                                                 f"open({str(marker)!r}, 'w').close()", wrap=True),
}


def _p4_pickle(module: str, name: str, code: str, wrap: bool = False) -> bytes:
    def u(s: str) -> bytes:
        b = s.encode()
        return b"\x8c" + bytes([len(b)]) + b
    call = u(module) + u(name) + b"\x93" + u(code) + b"}" + b"\x86" + b"R"     # STACK_GLOBAL, dict, TUPLE2, REDUCE
    if wrap:   # {"model": {"w": <call>}, "__author__": "x"}
        body = b"}" + u("model") + b"}" + u("w") + call + b"s" + b"s" + u("__author__") + u("x") + b"s"
    else:
        body = call
    return b"\x80\x04" + body + b"."


@pytest.mark.parametrize("kind", sorted(MALICIOUS))
def test_malicious_pickle_runs_nothing(tmp_path, kind):
    marker = tmp_path / "marker"
    data = MALICIOUS[kind](marker)
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(data)
    # The file is really malicious: a plain pickle.load runs it (in a child process).
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(bad)!r}, 'rb'))"],
                   cwd=tmp_path, check=False, capture_output=True, timeout=60)
    assert marker.exists(), "the test pickle should execute under plain pickle"
    marker.unlink()
    with pytest.raises(TrainUserError) as error:
        ci.load_detectron2_checkpoint(bad)
    assert not marker.exists()
    message = str(error.value)
    assert "\n" not in message and str(bad) in message
    assert ("system" in message) or ("runstring" in message)


def test_malicious_pth_is_refused(tmp_path):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pth"
    torch.save({"model": {"w": Evil()}}, bad)
    with pytest.raises(TrainUserError) as error:
        ci.load_detectron2_checkpoint(bad)
    assert not marker.exists() and str(bad) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pkl_layouts_and_protocols(tmp_path, protocol):
    arrays = {"backbone.fpn_lateral2.weight": np.arange(12, dtype=np.float32).reshape(3, 4, 1, 1),
              "x.bias": np.array([1.5, -2.0], np.float64)}
    zoo = write_d2_pkl(tmp_path / "zoo.pkl", arrays, protocol)
    flat = tmp_path / "flat.pkl"
    flat.write_bytes(pickle.dumps(OrderedDict(arrays), protocol=protocol))
    for path in (zoo, flat):
        loaded = ci.load_detectron2_checkpoint(path)
        assert set(loaded) == set(arrays)
        for key in arrays:
            np.testing.assert_array_equal(loaded[key], arrays[key])


def test_pth_from_detectron2_training(tmp_path):
    arrays = {"a.weight": np.ones((2, 3), np.float32)}
    path = tmp_path / "model_final.pth"
    torch.save({"model": {k: t(v) for k, v in arrays.items()}, "iteration": 7}, path)
    np.testing.assert_array_equal(ci.load_detectron2_checkpoint(path)["a.weight"], arrays["a.weight"])


# ------------------------------------------------------------------------------------------
# Other architectures and mismatching model configs
# ------------------------------------------------------------------------------------------

class ConfigOnly(nn.Module):
    """Stands in for a model when only its config is checked (refusals happen before any copy)."""

    def __init__(self, **changes):
        super().__init__()
        cfg = {"backbone": "resnet50", "stride_in_1x1": True, "norm": "frozen_bn", "input_format": "BGR",
               "pixel_mean": [103.53, 116.28, 123.675], "pixel_std": [1.0, 1.0, 1.0], "fpn_channels": 256,
               "head_conv_channels": 512, "head_conv_layers": 8, "coarse_segm_channels": 2}
        cfg.update(changes)
        self.config = {"model": cfg}


def _one_line_error(call) -> str:
    with pytest.raises(TrainUserError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("change, setting", [
    ({"stride_in_1x1": False}, "model.stride_in_1x1: true"),
    ({"input_format": "RGB"}, "model.input_format: BGR"),
    ({"pixel_std": [58.395, 57.12, 57.375]}, "model.pixel_std"),
    ({"norm": "group_norm"}, "model.norm: frozen_bn"),
    ({"backbone": "resnet18"}, "model.backbone: resnet50"),
    ({"head_conv_channels": 64}, "model.head_conv_channels: 512"),
    ({"coarse_segm_channels": 15}, "model.coarse_segm_channels: 2"),
])
def test_mismatching_model_config_is_refused(d2_file, d2_state, change, setting):
    message = _one_line_error(lambda: ci.import_detectron2_state(d2_state, ConfigOnly(**change), source=d2_file))
    assert setting in message and str(d2_file) in message


def test_other_architectures_are_refused_in_one_line(tmp_path, d2_state):
    r101 = {k: np.zeros(v, np.float32) for k, v in d2_reference_shapes(res4_blocks=23).items()}
    keypoint = {k: v for k, v in d2_state.items() if "densepose" not in k and "decoder" not in k}
    keypoint["roi_heads.keypoint_head.conv_fcn1.weight"] = np.zeros((512, 256, 3, 3), np.float32)
    deeplab = dict(d2_state)
    deeplab["roi_heads.densepose_head.ASPP.convs.0.0.weight"] = np.zeros((256, 256, 1, 1), np.float32)
    legacy = {k: v for k, v in d2_state.items() if "decoder" not in k}
    legacy["roi_heads.densepose_predictor.ann_index_lowres.weight"] = np.zeros((512, 15, 4, 4), np.float32)
    legacy["roi_heads.densepose_predictor.ann_index_lowres.bias"] = np.zeros(15, np.float32)
    cases = {"r101.pkl": (r101, "ResNet-101"), "keypoint.pkl": (keypoint, "keypoint head"),
             "deeplab.pkl": (deeplab, "DeepLabV3"), "legacy.pkl": (legacy, "decoder")}
    for name, (arrays, words) in cases.items():
        path = tmp_path / name
        model = ConfigOnly(coarse_segm_channels=15) if name == "legacy.pkl" else ConfigOnly()
        message = _one_line_error(lambda: ci.import_detectron2_state(arrays, model, source=path))
        assert str(path) in message and words in message, message
    # and through a real file
    small = write_d2_pkl(tmp_path / "keypoint_rcnn.pkl", {k: v for k, v in keypoint.items() if "res" not in k})
    message = _one_line_error(lambda: ck.init_from(str(small), ConfigOnly()))
    assert str(small) in message and "keypoint head" in message and "missing" in message


def test_model_without_decoder_is_refused(d2_file, d2_state):
    """The s1x head was trained on the Panoptic FPN decoder's output: importing without it is refused."""
    model = build_model({"model": {"densepose_decoder": False}})
    message = _one_line_error(lambda: ci.import_detectron2_state(d2_state, model, source=d2_file))
    assert "decoder" in message and str(d2_file) in message and "model.densepose_decoder: true" in message


# ------------------------------------------------------------------------------------------
# Our own checkpoints
# ------------------------------------------------------------------------------------------

TINY = {"model": {"backbone": "tiny", "norm": "group_norm", "head_conv_channels": 16, "head_conv_layers": 2,
                  "fpn_channels": 32, "min_size": 64, "max_size": 96, "roi_size": 7, "heatmap_size": 28,
                  "stride_in_1x1": False, "input_format": "RGB"}}


def _tiny(**changes):
    cfg = {"model": {**TINY["model"], **changes}}
    torch.manual_seed(0)
    return build_model(cfg), cfg


def test_save_load_round_trip(tmp_path):
    model, cfg = _tiny()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3)
    loss = sum(p.sum() for p in model.parameters() if p.requires_grad)
    loss.backward()
    optimizer.step()
    scheduler.step()
    path = ck.save_checkpoint(tmp_path / "model_0000012.pth", model, optimizer, scheduler, 12, cfg)
    assert [p.name for p in tmp_path.iterdir()] == ["model_0000012.pth"]       # no temporary left

    fresh, _ = _tiny()
    torch.manual_seed(1)
    for p in fresh.parameters():
        nn.init.normal_(p)
    fresh_opt = torch.optim.SGD([p for p in fresh.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, step_size=3)
    assert ck.load_checkpoint(path, fresh, fresh_opt, fresh_sched) == 12
    model.eval(), fresh.eval()
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(7)) * 255
    with torch.no_grad():
        a = model.backbone(model.transform([image])[0].tensors)
        b = fresh.backbone(fresh.transform([image])[0].tensors)
    for key in a:
        assert torch.equal(a[key], b[key])
    for name, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[name]), name
    momentum = [s["momentum_buffer"] for s in optimizer.state_dict()["state"].values()]
    loaded = [s["momentum_buffer"] for s in fresh_opt.state_dict()["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(momentum, loaded)) and len(momentum) == len(loaded) > 0
    assert fresh_sched.last_epoch == scheduler.last_epoch == 1


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, cfg = _tiny()
    path = ck.save_checkpoint(tmp_path / "model_final.pth", model, iteration=3, cfg=cfg)
    before = path.read_bytes()

    def broken(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"truncated")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(path, model, iteration=4, cfg=cfg)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model_final.pth"]


def test_architecture_mismatch_is_one_line(tmp_path):
    model, cfg = _tiny()
    path = ck.save_checkpoint(tmp_path / "model_final.pth", model, iteration=1, cfg=cfg)
    other, _ = _tiny(head_conv_channels=24)
    message = _one_line_error(lambda: ck.load_checkpoint(path, other))
    assert str(path) in message and "model.head_conv_channels=16" in message
    rgb_bgr, _ = _tiny(input_format="BGR")          # same shapes, other meaning
    message = _one_line_error(lambda: ck.load_checkpoint(path, rgb_bgr))
    assert "model.input_format=RGB" in message


def test_init_from_our_checkpoint_and_coarse_reinit(tmp_path):
    model, cfg = _tiny()
    path = ck.save_checkpoint(tmp_path / "model_final.pth", model, iteration=9, cfg=cfg)
    target, _ = _tiny(coarse_segm_channels=15)
    message = _one_line_error(lambda: ck.init_from(str(path), target))
    assert "coarse_segm_channels" in message
    before = target.roi_heads.densepose_predictor.ann_index_lowres.weight.clone()
    report = ck.init_from(str(path), target, reinit_coarse=True)
    assert torch.equal(target.roi_heads.densepose_predictor.ann_index_lowres.weight, before)
    assert torch.equal(target.roi_heads.densepose_predictor.u_lowres.weight,
                       model.roi_heads.densepose_predictor.u_lowres.weight)
    assert any("ann_index_lowres" in k for k in report.not_loaded)


def test_init_none_and_bad_specs(tmp_path):
    model, _ = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not ck.init_from("none", model).loaded
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    (tmp_path / "truncated.pkl").write_bytes(pickle.dumps({"model": {"w": np.ones(9)}})[:40])
    for spec in (str(tmp_path / "missing.pkl"), str(tmp_path / "weights.bin"), str(tmp_path / "truncated.pkl")):
        message = _one_line_error(lambda: ck.init_from(spec, model))
        assert spec in message or "weights.bin" in message
    assert "tiny" in _one_line_error(lambda: ck.init_from("imagenet", model))


def test_imagenet_from_torchvision_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cfg = {"model": {**TINY["model"], "backbone": "resnet18", "norm": "frozen_bn",
                     "pixel_mean": [123.675, 116.28, 103.53], "pixel_std": [58.395, 57.12, 57.375]}}
    model = build_model(cfg)
    message = _one_line_error(lambda: ck.init_from("imagenet", model))
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(cached) in message
    reference = torchvision.models.resnet18(weights=None)
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    report = ck.init_from("imagenet", model)
    assert "fc.weight" in report.ignored
    x = torch.randn(1, 3, 32, 32)
    reference.eval()
    with torch.no_grad():
        ref = reference.layer4(reference.layer3(reference.layer2(reference.layer1(
            reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))
        close(model.backbone.body(x)["3"], ref)
    bgr = build_model({"model": {**cfg["model"], "input_format": "BGR"}})
    assert "input_format: RGB" in _one_line_error(lambda: ck.init_from("imagenet", bgr))


def test_msra_imagenet_backbone_pkl(tmp_path, d2_state):
    """detectron2's Caffe2-named R-50.pkl (res2_0_branch2a_w, res_conv1_bn_s, no running stats)."""
    c2 = {}
    for key, value in d2_state.items():
        if not key.startswith("backbone.bottom_up.") or key.endswith(("running_mean", "running_var")):
            continue
        name = key[len("backbone.bottom_up."):]
        name = name.replace("stem.conv1.norm.", "res_conv1.norm.").replace("stem.conv1.", "conv1.")
        for d2_part, c2_part in (("shortcut", "branch1"), ("conv1", "branch2a"), ("conv2", "branch2b"),
                                 ("conv3", "branch2c")):
            name = name.replace(f".{d2_part}.", f".{c2_part}.")
        name = name.replace(".norm.weight", "_bn_s").replace(".norm.bias", "_bn_b").replace(".weight", "_w")
        c2[name.replace(".", "_")] = value
    c2["fc1000_w"] = np.zeros((1000, 2048), np.float32)
    assert "res2_0_branch2a_w" in c2 and "res_conv1_bn_s" in c2 and "conv1_w" in c2
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps(c2, protocol=2))
    cfg = {"model": {"head_conv_channels": 16, "head_conv_layers": 1}}
    model = build_model(cfg)
    report = ck.init_from(str(path), model)
    assert "fc1000_w" in report.ignored and len(report.loaded) == 265
    body = model.backbone.body
    assert torch.equal(body.layer3[4].conv2.weight, t(d2_state["backbone.bottom_up.res4.4.conv2.weight"]))
    shortcut_norm = t(d2_state["backbone.bottom_up.res2.0.shortcut.norm.weight"])
    assert torch.equal(body.layer1[0].downsample[1].weight, shortcut_norm)
    assert torch.equal(body.bn1.running_var, torch.ones(64))   # AffineChannel: mean 0, variance 1
