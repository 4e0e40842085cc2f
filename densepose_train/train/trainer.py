"""The training loop: freezing, SGD with detectron2's schedule, logging, checkpoints, resume.

The loop knows nothing about DensePose: it takes a model whose training forward returns a dict
of losses (torchvision's detection convention) and an endless iterator of (images, targets)
batches. That keeps it testable on a toy model and shared by every data source.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..errors import TrainUserError

# What each `--freeze` value leaves fixed (parameter-name prefixes of DensePoseRCNN, which is
# torchvision's GeneralizedRCNN: `backbone.body` = ResNet, `backbone.fpn`, `rpn`, `roi_heads`).
# The DensePose branch is the `roi_heads` children whose names contain "densepose" (decoder,
# head, predictor: detectron2's DensePose ROI head); its predictor (the last layers, which output
# coarse/fine/U/V) contains "predictor" too.
FREEZE_SETS: dict[str, str] = {
    "none": "nothing (train every parameter)",
    "stem": "the ResNet stem and res2 (detectron2's FREEZE_AT 2, the s1x default)",
    "backbone": "the whole backbone: ResNet and FPN",
    "all_but_densepose_head": "everything except the DensePose branch (decoder, head, predictor): the seed recipe, "
                              "backbone, RPN and box head fixed",
    "all_but_densepose_predictor": "everything except the DensePose predictor (the last layers only)",
}

CHECKPOINT_NAME = re.compile(r"^model_(\d{7})\.pth$")


def _is_densepose(name: str) -> bool:
    return name.startswith("roi_heads.") and "densepose" in name


def _is_stem(name: str) -> bool:
    """ResNet stem and res2 under torchvision's naming (conv1, bn1, layer1) or a `stem` module."""
    if not name.startswith("backbone.body."):
        return False
    rest = name[len("backbone.body."):]
    return rest.startswith(("conv1", "bn1", "layer1", "stem", "res2"))


def frozen_by(freeze: str, name: str) -> bool:
    """Whether parameter `name` stays fixed under the `--freeze` value `freeze`."""
    if freeze == "none":
        return False
    if freeze == "stem":
        return _is_stem(name)
    if freeze == "backbone":
        return name.startswith("backbone.")
    if freeze == "all_but_densepose_head":
        return not _is_densepose(name)
    if freeze == "all_but_densepose_predictor":
        return not (_is_densepose(name) and "predictor" in name)
    raise TrainUserError(f"--freeze {freeze!r} is unknown: use one of {', '.join(FREEZE_SETS)}")


def apply_freeze(model: nn.Module, freeze: str) -> tuple[int, int]:
    """Set `requires_grad` per `freeze`; returns (frozen, trainable) parameter counts (elements)."""
    frozen = trainable = 0
    for name, param in model.named_parameters():
        fixed = frozen_by(freeze, name)
        param.requires_grad_(not fixed)
        if fixed:
            frozen += param.numel()
        else:
            trainable += param.numel()
    if trainable == 0:
        raise TrainUserError(f"--freeze {freeze} leaves no parameter to train in this model: use --freeze none")
    return frozen, trainable


def keep_frozen_norms_in_eval(model: nn.Module) -> None:
    """BatchNorm layers whose parameters are all frozen keep their running statistics
    (detectron2 converts them to FrozenBatchNorm; here they simply stay in eval mode)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def lr_factor(iteration: int, solver: dict[str, Any]) -> float:
    """detectron2's WarmupMultiStepLR: linear warmup from `warmup_factor`, then x gamma at each step.

    `steps` are fractions of `max_iter`, so a shorter `--max-iter` keeps the s1x shape.
    """
    max_iter = solver["max_iter"]
    steps = [int(round(fraction * max_iter)) for fraction in solver["steps"]]
    factor = solver["gamma"] ** sum(1 for step in steps if step <= iteration)
    warmup = min(solver["warmup_iters"], max_iter)
    if iteration < warmup:
        alpha = iteration / warmup
        factor *= solver["warmup_factor"] * (1 - alpha) + alpha
    return factor


def build_optimizer(model: nn.Module, lr: float, solver: dict[str, Any]) -> torch.optim.SGD:
    """SGD with momentum; no weight decay on normalisation parameters (detectron2's WEIGHT_DECAY_NORM 0)."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm))
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if is_norm else decay).append(param)
    groups = [{"params": decay, "weight_decay": solver["weight_decay"]}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=lr, momentum=solver["momentum"])


def to_device(value: Any, device: torch.device) -> Any:
    """Move tensors inside nested dicts, lists, tuples and dataclasses (DensePose targets) to `device`."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(item, device) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: to_device(getattr(value, f.name), device) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value


def last_checkpoint(out: Path) -> tuple[Path, int] | None:
    """The periodic checkpoint with the most iterations in `out` (name model_XXXXXXX.pth)."""
    found = []
    for path in out.glob("model_*.pth"):
        match = CHECKPOINT_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        return None
    iteration, path = max(found)
    return path, iteration


class TrainLog:
    """One JSON object per logged iteration in OUT/train_log.jsonl (appended on resume)."""

    def __init__(self, path: Path, resume_from: int) -> None:
        self.path = path
        if path.is_file() and resume_from > 0:
            # Drop lines past the checkpoint we resume from: they belong to the lost tail.
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["iteration"] <= resume_from]
            path.write_text("".join(line + "\n" for line in kept))
        elif path.is_file():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class Trainer:
    """Runs SGD iterations on `model` from an endless batch iterator.

    `save(path, model, optimizer, iteration)` writes a checkpoint (B's `checkpoints.save` in the
    engine); the trainer decides when and under which name.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg: dict[str, Any], out: Path,
                 device: torch.device, save: Callable[[Path, nn.Module, torch.optim.Optimizer, int], None],
                 base_lr: float, quiet: bool = False) -> None:
        self.model = model
        self.optimizer = optimizer
        self.cfg = cfg
        self.solver = cfg["solver"]
        self.out = out
        self.device = device
        self.save = save
        self.base_lr = base_lr
        self.quiet = quiet
        self.use_amp = bool(cfg["train"]["amp"]) and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None

    def set_lr(self, iteration: int) -> float:
        lr = self.base_lr * lr_factor(iteration, self.solver)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self, images: list[torch.Tensor], targets: list[dict[str, Any]]) -> dict[str, float]:
        """One SGD iteration; returns the losses as floats (and `total`)."""
        self.model.train()
        keep_frozen_norms_in_eval(self.model)
        images = to_device(images, self.device)
        targets = to_device(targets, self.device)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            loss_dict = self.model(images, targets)
        total = sum(loss_dict.values())
        if not torch.isfinite(total):
            bad = ", ".join(f"{k}={float(v):.3g}" for k, v in loss_dict.items() if not torch.isfinite(v))
            raise TrainUserError(
                f"training diverged: the loss became {float(total)} ({bad}): lower --lr, set solver.clip_gradients, "
                "and from random weights use model.norm: group_norm")
        self.optimizer.zero_grad(set_to_none=True)
        clip = self.solver["clip_gradients"]
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self._trainable(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self._trainable(), clip)
            self.optimizer.step()
        losses = {name: float(value.detach()) for name, value in loss_dict.items()}
        losses["total"] = float(total.detach())
        return losses

    def _trainable(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def fit(self, batches: Iterator[tuple[list[torch.Tensor], list[dict[str, Any]]]], start_iter: int = 0) -> int:
        """Iterate from `start_iter` to `solver.max_iter`; returns the iterations done in total."""
        from tqdm import tqdm

        max_iter = self.solver["max_iter"]
        period = self.cfg["train"]["checkpoint_period"]
        log_period = self.cfg["train"]["log_period"]
        log = TrainLog(self.out / "train_log.jsonl", start_iter)
        bar = tqdm(total=max_iter, initial=start_iter, disable=self.quiet, file=sys.stderr, desc="train",
                   unit="it", dynamic_ncols=True)
        start = time.perf_counter()
        iteration = start_iter
        try:
            while iteration < max_iter:
                lr = self.set_lr(iteration)
                t0 = time.perf_counter()
                images, targets = next(batches)
                t1 = time.perf_counter()
                losses = self.step(images, targets)
                t2 = time.perf_counter()
                iteration += 1
                if iteration % log_period == 0 or iteration in (start_iter + 1, max_iter):
                    log.write({"iteration": iteration, "lr": lr, "losses": losses, "data_time": t1 - t0,
                               "time": t2 - t0, "elapsed": time.perf_counter() - start})
                bar.set_postfix(loss=f"{losses['total']:.3f}", lr=f"{lr:.2e}", refresh=False)
                bar.update(1)
                if period > 0 and iteration % period == 0 and iteration < max_iter:
                    self.save(self.out / f"model_{iteration:07d}.pth", self.model, self.optimizer, iteration)
        finally:
            bar.close()
        self.save(self.out / "model_final.pth", self.model, self.optimizer, iteration)
        return iteration
