"""The default engine: train, evaluate and predict with the torchvision-based DensePose R-CNN.

It wires the package's parts together and owns no algorithm of its own: the model and its
results (`model/`), checkpoints and `--init` (`model/checkpoints.py`), data and `--data`
(`data/`), metrics (`evaluate/`), the loop (`train/trainer.py`) and overlays (`predict.py`).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..config import config_from_mapping, default_config, effective_lr, leaves, save_config
from ..errors import TrainUserError
from ..train.trainer import Trainer, apply_freeze, build_optimizer, last_checkpoint

PREDICT_SCORE_THRESH = 0.5


def run(command: str, args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    """Entry point of `python -m densepose_train COMMAND --engine torchvision`."""
    set_threads(cfg)
    if command == "train":
        return train(args, cfg)
    if command == "evaluate":
        return evaluate(args, cfg)
    if command == "predict":
        return predict(args, cfg)
    raise ValueError(f"unknown command {command!r}")


# --- shared ---------------------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    """`auto` = the first CUDA device when there is one, else the CPU; a missing CUDA is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainUserError(f"--device {name}: this machine has no CUDA device torch can use; pass --device cpu "
                                 "or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainUserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here; pass "
                                 f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return device


def set_threads(cfg: dict[str, Any]) -> None:
    """`train.threads` > 0 caps torch's CPU threads (oversubscribed cores run 10x slower)."""
    if cfg["train"]["threads"] > 0:
        torch.set_num_threads(cfg["train"]["threads"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def say(args: argparse.Namespace, text: str) -> None:
    """A status line on stderr (silenced by --quiet)."""
    if not getattr(args, "quiet", False):
        print(f"densepose_train: {text}", file=sys.stderr, flush=True)


def build(cfg: dict[str, Any]) -> nn.Module:
    from ..model.rcnn import build_model

    return build_model(cfg)


def data_sources(entries: Sequence[str], option: str) -> list[Any]:
    from ..data.sources import parse_data_arg

    return [parse_data_arg(entry, option) for entry in entries]


def user_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys whose value differs from the defaults: what the user set for this command."""
    defaults = dict(leaves(default_config()))
    return {key: value for key, value in leaves(cfg) if defaults.get(key) != value}


def model_from_checkpoint(path: Path, cli_cfg: dict[str, Any], device: torch.device) -> tuple[nn.Module, dict]:
    """Our checkpoint's model, built from the config it was trained with, plus what this command's
    `--config`/options change (test-time options such as score_thresh or min_size)."""
    from ..model.checkpoints import load_checkpoint, stored_config

    if not Path(path).is_file():
        raise TrainUserError(f"--model {path} does not exist: pass OUT/model_final.pth written by train")
    stored = stored_config(path)
    if not isinstance(stored, dict):
        raise TrainUserError(f"checkpoint {path} holds no training config: pass a model_*.pth written by "
                             "`python -m densepose_train train`")
    cfg = _checkpoint_config(path, stored)
    for key, value in user_settings(cli_cfg).items():
        node = cfg
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    model = build(cfg)
    load_checkpoint(path, model)
    model.to(device).eval()
    return model, cfg


def _checkpoint_config(path: Path, stored: dict[str, Any]) -> dict[str, Any]:
    """The stored config through today's schema (keys added since then take their defaults)."""
    defaults = default_config()
    known = dict(leaves(defaults))
    kept = {section: {k: v for k, v in values.items() if f"{section}.{k}" in known}
            for section, values in stored.items() if isinstance(values, dict) and section in defaults}
    return config_from_mapping(kept, f"stored in checkpoint {path}")


# --- train ----------------------------------------------------------------------------------------

def train(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from ..data.sources import build_training_set
    from ..model.checkpoints import init_from, load_checkpoint, save_checkpoint

    out: Path = args.out
    entries = cfg["data"]["sources"]
    if not entries:
        raise TrainUserError("train needs training data: pass --data FOLDER_OR_JSON[:WEIGHT] ... "
                             "(or set data.sources in --config)")
    sources = data_sources(entries, "--data")
    resume = _resume_point(out, getattr(args, "resume", False))
    init = cfg["train"]["init"]
    if resume is None and init not in ("none", "imagenet") and not Path(init).is_file():
        raise TrainUserError(f"--init {init} does not exist: pass none, imagenet, a detectron2 .pkl or one of our "
                             ".pth checkpoints")
    device = resolve_device(cfg["train"]["device"])
    seed_everything(cfg["train"]["seed"])
    # The data first: a bad dataset fails in seconds, before a model is built or weights are read.
    batch = cfg["solver"]["batch_size"]
    dataset, sampler = build_training_set(sources, seed=cfg["train"]["seed"],
                                          flip_prob=0.5 if cfg["data"]["flip"] else 0.0)

    model = build(cfg)
    if resume is None:
        report = init_from(init, model, reinit_coarse=cfg["train"]["reinit_coarse"])
        say(args, f"init: {report.summary()}")
    frozen, trainable = apply_freeze(model, cfg["train"]["freeze"])
    say(args, f"freeze {cfg['train']['freeze']}: {trainable / 1e6:.2f}M parameters train, {frozen / 1e6:.2f}M fixed")
    model.to(device)
    lr = effective_lr(cfg)
    optimizer = build_optimizer(model, lr, cfg["solver"])
    start_iter = 0
    if resume is not None:
        start_iter = load_checkpoint(resume, model, optimizer)
        say(args, f"resume from {resume} at iteration {start_iter}")
        if start_iter >= cfg["solver"]["max_iter"]:
            raise TrainUserError(f"--resume: {resume} already has {start_iter} iterations, not fewer than --max-iter "
                                 f"{cfg['solver']['max_iter']}: raise --max-iter to train on")
    sampler.start = start_iter * batch  # the sampler's draws continue where the checkpoint left them

    loader = make_loader(dataset, sampler, cfg, device, start_iter)
    say(args, f"{len(dataset)} training images from {len(sources)} source(s); batch {batch}, lr {lr:g}, "
          f"{cfg['solver']['max_iter']} iterations on {device}")

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")

    def save(path: Path, net: nn.Module, opt: torch.optim.Optimizer, iteration: int) -> None:
        save_checkpoint(path, net, opt, iteration=iteration, cfg=cfg)

    trainer = Trainer(model, optimizer, cfg, out, device, save, base_lr=lr, quiet=args.quiet)
    started = time.perf_counter()
    done = trainer.fit(_batches(loader), start_iter=start_iter)
    say(args, f"wrote {out / 'model_final.pth'} after {done} iterations ({time.perf_counter() - started:.0f} s)")
    return 0


def make_loader(dataset: Any, sampler: Any, cfg: dict[str, Any], device: torch.device, start_iter: int = 0) -> Any:
    """The training DataLoader: batches of `solver.batch_size` drawn by the mixing sampler."""
    from torch.utils.data import DataLoader

    from ..data.dataset import collate

    workers = cfg["data"]["num_workers"]
    return DataLoader(dataset, batch_size=cfg["solver"]["batch_size"], sampler=sampler, collate_fn=collate,
                      num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None,
                      generator=torch.Generator().manual_seed(cfg["train"]["seed"] + start_iter))


def _batches(loader: Any) -> Iterator[Any]:
    """The loader's batches; the MixedSampler is endless, so one pass never ends."""
    iterator = iter(loader)
    while True:
        yield next(iterator)


def _resume_point(out: Path, resume: bool) -> Path | None:
    """The checkpoint `--resume` continues from, or None for a fresh run (which must not clobber one)."""
    final = out / "model_final.pth"
    found = last_checkpoint(out) if out.is_dir() else None
    if not resume:
        if final.exists() or found is not None:
            raise TrainUserError(f"--out {out} already holds a training run: pass --resume to continue it, or "
                                 "another --out")
        return None
    if final.exists():
        # A finished run continues from its final model (e.g. with a larger --max-iter).
        from ..model.checkpoints import read_our_checkpoint

        final_iter = int(read_our_checkpoint(final).get("iteration", 0))
        if found is None or final_iter >= found[1]:
            return final
    if found is None:
        raise TrainUserError(f"--resume: {out} holds no model_XXXXXXX.pth or model_final.pth to continue from; "
                             "drop --resume to start a new run")
    return found[0]


# --- evaluate -------------------------------------------------------------------------------------

@torch.no_grad()
def run_inference(model: nn.Module, dataset: Any, batch_size: int, device: torch.device, num_workers: int = 0,
                  quiet: bool = True) -> list[dict[str, Any]]:
    """Predictions in the evaluator's format for every image of `dataset` (no flips, no TTA)."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from ..data.dataset import collate

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers)
    predictions: list[dict[str, Any]] = []
    model.eval()
    for images, targets in tqdm(loader, desc="evaluate", unit="batch", disable=quiet, file=sys.stderr):
        outputs = model([image.to(device) for image in images])
        for output, target in zip(outputs, targets):
            boxes = output["boxes"].detach().cpu().numpy()
            scores = output["scores"].detach().cpu().numpy()
            for box, score, result in zip(boxes, scores, output["densepose"]):
                x0, y0, x1, y1 = (float(v) for v in box)
                predictions.append({"image_id": target["image_id"], "category_id": 1,
                                    "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score), "densepose": result})
    return predictions


def _evaluation_functions() -> tuple[Any, Any]:
    from ..evaluate.coco_metrics import evaluate_predictions, format_table

    return evaluate_predictions, format_table


def evaluate(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from ..charts import ChartSurface, find_charts
    from ..data.sources import load_source

    entries = cfg["data"]["test"]
    if not entries:
        raise TrainUserError("evaluate needs data: pass --data FOLDER_OR_JSON (held-out renders or DensePose-COCO)")
    if len(entries) != 1:
        raise TrainUserError(f"evaluate takes one --data entry, got {len(entries)}: run it once per dataset")
    source = data_sources(entries, "--data")[0]
    device = resolve_device(cfg["train"]["device"])
    model, model_cfg = model_from_checkpoint(args.model, cfg, device)
    dataset = load_source(source, train=False)
    charts_path = args.charts if args.charts is not None else find_charts(dataset.coco.json_path)
    if args.charts is not None and not Path(args.charts).is_file():
        raise TrainUserError(f"--charts {args.charts} does not exist: pass the dataset's charts.npz")
    charts = ChartSurface.load(charts_path) if charts_path is not None else None
    evaluate_predictions, format_table = _evaluation_functions()
    started = time.perf_counter()
    predictions = run_inference(model, dataset, model_cfg["test"]["batch_size"], device,
                                cfg["data"]["num_workers"], quiet=args.quiet)
    seconds = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_predictions(str(dataset.coco.json_path), predictions, charts, args.out,
                                   dp_convention=model_cfg["test"]["dp_convention"])
    print(format_table(metrics))
    say(args, f"{len(dataset)} images, {len(predictions)} detections, inference {len(dataset) / seconds:.1f} images/s; "
              f"wrote {args.out / 'metrics.json'}")
    return 0


# --- predict --------------------------------------------------------------------------------------

@torch.no_grad()
def predict(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from ..predict import draw_overlay, output_name, read_image_rgb, write_image_rgb

    device = resolve_device(cfg["train"]["device"])
    images = [(path, read_image_rgb(path)) for path in args.images]  # every file checked before the model loads
    model, _ = model_from_checkpoint(args.model, cfg, device)
    threshold = PREDICT_SCORE_THRESH if args.score_thresh is None else args.score_thresh
    if not 0.0 <= threshold <= 1.0:
        raise TrainUserError(f"--score-thresh {threshold} must lie in [0, 1]")
    roi_heads = getattr(model, "roi_heads", None)
    if roi_heads is not None and hasattr(roi_heads, "score_thresh"):
        roi_heads.score_thresh = min(roi_heads.score_thresh, threshold)
    args.out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    for path, rgb in images:
        tensor = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32).to(device)
        output = model([tensor])[0]
        keep = [(box.tolist(), float(score), result) for box, score, result
                in zip(output["boxes"].cpu(), output["scores"].cpu(), output["densepose"]) if score >= threshold]
        target = args.out / output_name(path, taken)
        write_image_rgb(target, draw_overlay(rgb, keep))
        say(args, f"{path}: {len(keep)} people -> {target}")
    return 0
