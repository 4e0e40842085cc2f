"""Render a small dataset, train on it, evaluate on held-out renders, predict, resume: the whole
`python -m densepose_train` path a user runs, on the CPU with the tiny backbone.

Everything goes through the command line in subprocesses (what a user runs), and the one
training run also records which modules it imported (acceptance 8: no bpy, no renderer).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, render_with_config

SMALL_RENDER = """
render:
  resolution: [160, 128]
  beauty_samples: 2
  denoise: false
  shadow_catcher: false
appearance:
  texture_size: 256
annotation:
  points_per_person: 80
"""

# Small enough for a few dozen CPU iterations in seconds; GroupNorm and clipping because it
# starts from random weights (the s1x FrozenBN recipe diverges from scratch).
TINY_MODEL = """
model:
  backbone: tiny
  norm: group_norm
  stride_in_1x1: false
  input_format: RGB
  pixel_mean: [123.675, 116.28, 103.53]
  pixel_std: [58.395, 57.12, 57.375]
  min_size: 128
  max_size: 160
  fpn_channels: 32
  head_conv_channels: 32
  head_conv_layers: 2
  roi_size: 14
  heatmap_size: 56
  box_head_dim: 128
  roi_batch_size_per_image: 128
  box_detections_per_img: 10
data:
  num_workers: 0
train:
  init: none
  freeze: none
  checkpoint_period: 8
  log_period: 1
  device: cpu
  threads: 1
solver:
  batch_size: 2
  lr: 0.01
  max_iter: 32
  warmup_iters: 4
  clip_gradients: 5.0
test:
  batch_size: 2
"""

ITERATIONS = 32
PERIOD = 8


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "densepose_train", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env=_env())


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _render(folder: Path, samples: int, seed: int, extra_config: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = render_with_config(folder, SMALL_RENDER + extra_config, samples, seed)
    if not (out / "charts.npz").is_file():  # older renderers: add the chart surface the way farm does
        from densesynth.annotate.chart_surface import write_chart_surface

        write_chart_surface(out / "charts.npz", {"kind": "anny"})
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> tuple[Path, Path]:
    """6 training renders (seed 0) and 3 held-out renders (seed 1, other clips)."""
    root = tmp_path_factory.mktemp("train_data")
    train = _render(root / "train", 6, 0, "motion:\n  clips: [walk, wave, squat]\n")
    held_out = _render(root / "held_out", 3, 1, "motion:\n  clips: [run, idle, reach]\n")
    return train, held_out


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("train_config") / "tiny.yaml"
    path.write_text(TINY_MODEL)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, datasets, tiny_config) -> tuple[Path, list[str]]:
    """One training run through the real entry point, recording the modules it imported."""
    out = tmp_path_factory.mktemp("train_run") / "out"
    probe = (
        "import json, runpy, sys\n"
        f"sys.argv = ['densepose_train', 'train', '--config', {str(tiny_config)!r}, '--data', {str(datasets[0])!r},"
        f" '--out', {str(out)!r}, '--quiet']\n"
        "try:\n"
        "    runpy.run_module('densepose_train', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print('MODULES ' + json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=600,
                            env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    modules = json.loads(result.stdout.split("MODULES ", 1)[1])
    return out, modules


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]


def test_training_writes_checkpoints_log_and_config(trained):
    out, _ = trained
    assert (out / "model_final.pth").is_file()
    periodic = sorted(p.name for p in out.glob("model_0*.pth"))
    assert periodic == [f"model_{i:07d}.pth" for i in range(PERIOD, ITERATIONS, PERIOD)]
    log = _log(out)
    assert [r["iteration"] for r in log] == list(range(1, ITERATIONS + 1))
    for record in log:
        assert {"iteration", "lr", "losses", "time"} <= set(record)
        assert np.isfinite(record["losses"]["total"])
    # The warmup: lr rises linearly from warmup_factor x lr over 4 iterations, then holds.
    assert log[0]["lr"] == pytest.approx(0.01 * 0.1)
    assert log[5]["lr"] == pytest.approx(0.01)
    from densepose_train.config import load_config

    resolved = load_config(out / "config.yaml")  # the resolved config loads through validation again
    assert resolved["model"]["backbone"] == "tiny" and resolved["solver"]["max_iter"] == ITERATIONS


def test_training_imports_neither_bpy_nor_the_renderer(trained):
    _, modules = trained
    assert "bpy" not in modules
    renderer = [m for m in modules if m.split(".")[0] in ("densesynth", "farm")
                and m not in ("densesynth", "densesynth.core", "densesynth.core.parts", "densesynth.core.schema")]
    assert renderer == []


def test_cli_import_is_light():
    code = ("import json, sys, densepose_train.cli, densepose_train.config\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('bpy', 'densesynth', 'farm', "
            "'torch'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def _fixed_batch_loss(model_path: Path | None, cfg_path: Path, data: Path) -> float:
    """The DensePose + detector loss of one fixed batch (first two images, no flip), with the
    proposal sampling seeded, for a checkpoint (or a freshly initialised model)."""
    from densepose_train.config import load_config
    from densepose_train.data.dataset import collate
    from densepose_train.data.sources import load_source, parse_data_arg
    from densepose_train.model.checkpoints import load_checkpoint
    from densepose_train.model.rcnn import build_model

    torch.set_num_threads(1)
    cfg = load_config(cfg_path)
    torch.manual_seed(123)
    model = build_model(cfg)
    if model_path is not None:
        load_checkpoint(model_path, model)
    dataset = load_source(parse_data_arg(str(data)), train=True, flip_prob=0.0)
    images, targets = collate([dataset[0], dataset[1]])
    model.train()
    totals = []
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():
            losses = model(images, targets)
        totals.append(float(sum(losses.values())))
    return float(np.mean(totals))


def test_loss_goes_down(trained, tiny_config, datasets):
    out, _ = trained
    log = _log(out)
    first = np.mean([r["losses"]["total"] for r in log[:5]])
    last = np.mean([r["losses"]["total"] for r in log[-5:]])
    assert last < 0.9 * first, (first, last)
    before = _fixed_batch_loss(None, tiny_config, datasets[0])
    after = _fixed_batch_loss(out / "model_final.pth", tiny_config, datasets[0])
    assert after < 0.85 * before, (before, after)


def test_evaluate_prints_every_metric(trained, datasets, tmp_path):
    out, _ = trained
    result = cli("evaluate", "--model", str(out / "model_final.pth"), "--data", str(datasets[1]),
                 "--out", str(tmp_path / "eval"), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for task in ("bbox", "segm", "gps", "gpsm"):
        assert task in metrics, metrics.keys()
        for key in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
            assert key in metrics[task], (task, metrics[task])
            value = metrics[task][key]
            assert value is None or 0.0 <= value <= 100.0
    text = result.stdout
    for needle in ("AP50", "AP75", "AR"):
        assert needle in text
    assert all(name in text.lower() for name in ("bbox", "segm", "gps", "gpsm"))


def test_predict_writes_an_overlay(trained, datasets, tmp_path):
    out, _ = trained
    image = sorted((datasets[1] / "images").glob("*.png"))[0]
    result = cli("predict", "--model", str(out / "model_final.pth"), str(image), "--out", str(tmp_path / "pred"),
                 "--score-thresh", "0", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted((tmp_path / "pred").glob("*.png"))
    assert len(written) == 1
    overlay = cv2.imread(str(written[0]))
    original = cv2.imread(str(image))
    assert overlay.shape == original.shape
    assert np.abs(overlay.astype(int) - original.astype(int)).sum() > 0


def test_resume_continues_from_the_last_checkpoint(trained, datasets, tmp_path):
    out, _ = trained
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    (resumed / "model_final.pth").unlink()
    last = max(range(PERIOD, ITERATIONS, PERIOD))  # the final model is gone: the last periodic one
    result = cli("train", "--config", str(resumed / "config.yaml"), "--data", str(datasets[0]), "--out",
                 str(resumed), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"iteration {last}" in result.stderr
    log = _log(resumed)
    assert [r["iteration"] for r in log] == list(range(1, ITERATIONS + 1))  # old lines kept, none repeated
    from densepose_train.model.checkpoints import read_our_checkpoint

    assert read_our_checkpoint(resumed / "model_final.pth")["iteration"] == ITERATIONS


def test_a_second_run_into_the_same_folder_is_refused(trained, datasets, tiny_config):
    out, _ = trained
    result = cli("train", "--config", str(tiny_config), "--data", str(datasets[0]), "--out", str(out), "--quiet")
    assert result.returncode == 2 and "--resume" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_checkpoint_of_another_architecture(trained, datasets, tmp_path):
    out, _ = trained
    other = tmp_path / "other.yaml"
    other.write_text(TINY_MODEL.replace("head_conv_channels: 32", "head_conv_channels: 16"))
    result = cli("evaluate", "--model", str(out / "model_final.pth"), "--config", str(other), "--data",
                 str(datasets[1]), "--out", str(tmp_path / "e"), "--quiet")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "model_final.pth" in lines[0] and "head_conv_channels" in lines[0]
