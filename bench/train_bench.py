"""Training and evaluation images/s, and whether the data loader keeps up.

`python bench/train_bench.py [--backbone tiny] [--size 160] [--iters 20] [--workers 2]`

On the CPU (and on every CUDA device present) it times:
- training fed by the real DataLoader (PNG decoding, flips with chart symmetry, the mixing
  sampler, `--workers` processes), as `python -m densepose_train train` runs;
- the same training step fed from memory: batches decoded beforehand and already on the
  device, so the figure is the model's alone;
- evaluation (inference, batched, no flips) over the held-out renders.
The ratio loader / memory is the share of the model's speed the loader delivers: acceptance 5
of issue 9 asks >= 0.90 on the GPU. Renders come from bench/train_learning.py's cache.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from train_learning import HELD_OUT_SET, TRAIN_SET, render_set  # noqa: E402

REFERENCE = """model:
  backbone: {backbone}
  norm: {norm}
  min_size: {size}
  max_size: {max_size}
"""
TINY = """  stride_in_1x1: false
  input_format: RGB
  pixel_mean: [123.675, 116.28, 103.53]
  pixel_std: [58.395, 57.12, 57.375]
  fpn_channels: 64
  head_conv_channels: 64
  head_conv_layers: 4
  roi_size: 14
  heatmap_size: 56
  box_head_dim: 256
"""
COMMON = """train:
  init: none
  freeze: none
solver:
  batch_size: {batch}
  lr: 0.005
  warmup_iters: 0
  clip_gradients: 5.0
data:
  num_workers: {workers}
test:
  batch_size: {batch}
"""


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(step: Callable[[], int], iters: int, warmup: int, device: Any) -> float:
    """Images per second over `iters` calls of `step` (returns images done) after `warmup` calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    started = time.perf_counter()
    images = sum(step() for _ in range(iters))
    _sync(device)
    return images / (time.perf_counter() - started)


def bench_device(device_name: str, cfg: dict[str, Any], train_dir: Path, test_dir: Path, iters: int,
                 warmup: int) -> dict[str, float]:
    import torch

    from densepose_train.data.sources import build_training_set, load_source, parse_data_arg
    from densepose_train.engines.torchvision_engine import make_loader, run_inference, seed_everything
    from densepose_train.model.rcnn import build_model
    from densepose_train.train.trainer import Trainer, build_optimizer, to_device

    device = torch.device(device_name)
    seed_everything(0)
    dataset, sampler = build_training_set([parse_data_arg(str(train_dir))], seed=0, flip_prob=0.5)
    loader = make_loader(dataset, sampler, cfg, device)
    model = build_model(cfg).to(device)
    optimizer = build_optimizer(model, 0.005, cfg["solver"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, optimizer, cfg, Path(tmp), device, save=lambda *a: None, base_lr=0.005, quiet=True)
        batches = iter(loader)

        def from_loader() -> int:
            images, targets = next(batches)
            trainer.step(images, targets)
            return len(images)

        loader_rate = _rate(from_loader, iters, warmup, device)
        stored = [to_device(next(batches), device) for _ in range(min(iters, 8))]
        cycle = itertools.cycle(stored)

        def from_memory() -> int:
            images, targets = next(cycle)
            trainer.step(images, targets)
            return len(images)

        memory_rate = _rate(from_memory, iters, warmup, device)
    test = load_source(parse_data_arg(str(test_dir)), train=False)
    model.eval()
    run_inference(model, [test[0]], 1, device)  # warm-up (cudnn autotune, allocator)
    _sync(device)
    started = time.perf_counter()
    run_inference(model, test, cfg["test"]["batch_size"], device, num_workers=cfg["data"]["num_workers"])
    _sync(device)
    eval_rate = len(test) / (time.perf_counter() - started)
    del loader, batches
    return {"train_loader": loader_rate, "train_memory": memory_rate, "eval": eval_rate}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=("tiny", "resnet18", "resnet50"), default="tiny")
    parser.add_argument("--size", type=int, default=160, help="render size and model min_size (square images)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--train-samples", type=int, default=144)
    parser.add_argument("--test-samples", type=int, default=16)
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "densesynth" / "train_learning")
    args = parser.parse_args()

    size = f"{args.size}x{args.size}"
    train_dir = render_set(args.cache / f"train_{args.train_samples}_{size}_p100", args.train_samples, 0, TRAIN_SET,
                           args.size, args.size)
    test_dir = render_set(args.cache / f"held_out_{args.test_samples}_{size}_p100", args.test_samples, 1,
                          HELD_OUT_SET, args.size, args.size)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from densepose_train.config import load_config

    text = REFERENCE.format(backbone=args.backbone, norm="group_norm" if args.backbone == "tiny" else "frozen_bn",
                            size=args.size, max_size=max(args.size, 1333 if args.size >= 800 else args.size))
    if args.backbone == "tiny":
        text += TINY
    text += COMMON.format(batch=args.batch, workers=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(text)
        cfg = load_config(path)
    devices = ["cpu"]
    if torch.cuda.is_available() and not args.cpu_only:
        devices += [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    print(f"backbone {args.backbone}, {args.size} px, batch {args.batch}, {args.workers} loader workers, "
          f"{torch.get_num_threads()} torch threads; {args.iters} timed iterations after {args.warmup}")
    print(f"{'device':10s} {'train img/s (loader)':>21s} {'train img/s (memory)':>21s} {'loader/memory':>14s} "
          f"{'eval img/s':>11s}")
    for name in devices:
        rates = bench_device(name, cfg, train_dir, test_dir, args.iters, args.warmup)
        ratio = rates["train_loader"] / rates["train_memory"]
        print(f"{name:10s} {rates['train_loader']:21.2f} {rates['train_memory']:21.2f} {ratio:14.2f} "
              f"{rates['eval']:11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
