"""Does the data teach? Train from scratch on a few dozen renders, test on other people.

`python bench/train_learning.py [--iters 1500] [--train-samples 144] [--test-samples 16] [--threads 2]`

About 12 minutes on 2 cores (3-4 of them rendering, once: renders are cached).

Renders (once, cached under --cache) a training set and a held-out set that differ in seed,
body shapes (anny phenotype weight/muscle ranges) and motion clips (disjoint built-in clips),
trains the tiny backbone with GroupNorm from random weights for a bounded number of CPU
iterations through the real `python -m densepose_train train`, and prints, for the trained
and for an untrained model of the same architecture:
- coarse-part accuracy: at every annotated DensePose point of every held-out person, the
  14-part label of the predicted fine part (predicted on the GT box, so detection plays no
  part) against the GT's; background predictions count as wrong. Also fine-part accuracy and
  the mean |U|, |V| error where the fine part is right;
- bbox, segm, GPS and GPSm AP from `evaluate` (detections, the DensePose-COCO protocol).
Acceptance 2 of issue 9: the trained figures must be well above the untrained ones.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "addon"))

RENDER = """render:
  resolution: [{width}, {height}]
  beauty_samples: 4
  denoise: false
  shadow_catcher: false
  threads: 1
appearance:
  texture_size: 256
annotation:
  points_per_person: {points}
"""
# Train and held-out sets: other seed, other body shapes, other motions.
TRAIN_SET = """motion:
  clips: [walk, wave, squat, jumping_jacks]
body:
  phenotype:
    weight: [0.15, 0.5]
    muscle: [0.2, 0.5]
"""
HELD_OUT_SET = """motion:
  clips: [run, idle, reach]
body:
  phenotype:
    weight: [0.55, 0.85]
    muscle: [0.5, 0.8]
"""

# Small and from scratch: GroupNorm, no frozen stages, gradient clipping (the s1x FrozenBN
# recipe diverges from random weights).
MODEL = """model:
  backbone: tiny
  norm: group_norm
  stride_in_1x1: false
  input_format: RGB
  pixel_mean: [123.675, 116.28, 103.53]
  pixel_std: [58.395, 57.12, 57.375]
  min_size: {min_size}
  max_size: {max_size}
  fpn_channels: 64
  head_conv_channels: 64
  head_conv_layers: 4
  roi_size: 14
  heatmap_size: 56
  coarse_segm_channels: {coarse}
  box_head_dim: 256
  roi_batch_size_per_image: 128
  box_detections_per_img: 20
data:
  num_workers: {workers}
train:
  init: none
  freeze: none
  checkpoint_period: 0
  log_period: 10
  device: cpu
  threads: {threads}
solver:
  batch_size: {batch}
  lr: {lr}
  max_iter: {iters}
  warmup_iters: 50
  clip_gradients: 5.0
test:
  batch_size: 4
"""


def render_set(folder: Path, samples: int, seed: int, extra: str, width: int, height: int, points: int = 100) -> Path:
    """Render `samples` into `folder/run` through farm/render.py unless a complete run is cached."""
    run = folder / "run"
    done = run / "annotations.json"
    if done.is_file() and len(json.loads(done.read_text())["images"]) == samples and (run / "charts.npz").is_file():
        return run
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    config = folder / "render.yaml"
    config.write_text(RENDER.format(width=width, height=height, points=points) + extra)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "farm" / "render.py"), "--out", str(run), "--num-samples", str(samples),
                    "--seed", str(seed), "--config", str(config), "--quiet"], check=True)
    if not (run / "charts.npz").is_file():  # renderers before charts.npz: write it the way farm does
        from densesynth.annotate.chart_surface import write_chart_surface

        write_chart_surface(run / "charts.npz", {"kind": "anny"})
    print(f"rendered {samples} samples (seed {seed}) into {run} in {time.perf_counter() - started:.0f} s", flush=True)
    return run


def coarse_accuracy(model: Any, dataset: Any) -> dict[str, float]:
    """Part accuracy and UV error at the GT points, predicting on the GT boxes (see the docstring)."""
    import numpy as np
    import torch

    from densepose_train.data.dataset import collate
    from densepose_train.data.targets import DP_SIZE
    from densesynth.core.parts import FINE_TO_COARSE

    fine_to_coarse = torch.tensor(np.array(FINE_TO_COARSE), dtype=torch.int64)
    right_coarse = right_fine = total = 0
    uv_error: list[float] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(dataset), 4):
            images, targets = collate([dataset[k] for k in range(start, min(start + 4, len(dataset)))])
            boxes = [{"boxes": t["boxes"]} for t in targets]
            image_list, resized = model.transform(images, boxes)
            features = model.backbone(image_list.tensors)
            out = model.roi_heads.densepose_outputs(features, [r["boxes"] for r in resized])
            size = out.fine_segm.shape[-1]
            k = 0
            for target in targets:
                for dp in target["densepose"]:
                    if dp is None:
                        k += 1
                        continue
                    col = (dp.x / DP_SIZE * size).long().clamp(0, size - 1)
                    row = (dp.y / DP_SIZE * size).long().clamp(0, size - 1)
                    fine = out.fine_segm[k].argmax(0)[row, col]
                    foreground = out.coarse_segm[k].argmax(0)[row, col] > 0
                    fine = torch.where(foreground, fine, torch.zeros_like(fine))
                    right_fine += int((fine == dp.i).sum())
                    right_coarse += int((fine_to_coarse[fine] == fine_to_coarse[dp.i]).sum())
                    total += int(dp.i.numel())
                    hit = fine == dp.i
                    if hit.any():
                        parts = dp.i[hit]
                        u = out.u[k][parts, row[hit], col[hit]]
                        v = out.v[k][parts, row[hit], col[hit]]
                        uv_error += ((u - dp.u[hit]).abs() + (v - dp.v[hit]).abs()).div(2).tolist()
                    k += 1
    return {"coarse_acc": 100.0 * right_coarse / max(total, 1), "fine_acc": 100.0 * right_fine / max(total, 1),
            "uv_err": float(np.mean(uv_error)) if uv_error else float("nan"), "points": total}


def evaluate(model: Any, dataset: Any, charts: Any, out: Path) -> dict[str, dict[str, Any]]:
    from densepose_train.engines.torchvision_engine import run_inference
    from densepose_train.evaluate import evaluate_predictions

    import torch

    predictions = run_inference(model, dataset, 4, torch.device("cpu"))
    return evaluate_predictions(str(dataset.coco.json_path), predictions, charts, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--train-samples", type=int, default=144)
    parser.add_argument("--test-samples", type=int, default=16)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=160)
    parser.add_argument("--points", type=int, default=100, help="DensePose points per person in the renders")
    parser.add_argument("--coarse", type=int, choices=(2, 15), default=2,
                        help="coarse segmentation channels: 2 (s1x) or 15 (14 parts, the seed's)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--workers", type=int, default=0, help="data loader processes")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "densesynth" / "train_learning")
    parser.add_argument("--out", type=Path, help="training folder (default: a fresh one under --cache)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="skip training: compare --out's model_final.pth with an untrained model")
    args = parser.parse_args()

    size = f"{args.width}x{args.height}"
    train_dir = render_set(args.cache / f"train_{args.train_samples}_{size}_p{args.points}", args.train_samples, 0,
                           TRAIN_SET, args.width, args.height, args.points)
    test_dir = render_set(args.cache / f"held_out_{args.test_samples}_{size}_p100", args.test_samples, 1,
                          HELD_OUT_SET, args.width, args.height, 100)

    import torch

    torch.set_num_threads(args.threads)
    from densepose_train.charts import ChartSurface
    from densepose_train.cli import main as cli_main
    from densepose_train.config import load_config
    from densepose_train.data.sources import load_source, parse_data_arg
    from densepose_train.engines.torchvision_engine import model_from_checkpoint, seed_everything
    from densepose_train.evaluate import format_table
    from densepose_train.model.rcnn import build_model

    out = args.out or args.cache / f"run_{int(time.time())}"
    out.mkdir(parents=True, exist_ok=True)
    config = out.parent / f"{out.name}_model.yaml"
    config.write_text(MODEL.format(min_size=min(args.width, args.height), max_size=max(args.width, args.height),
                                   workers=args.workers, threads=args.threads, batch=args.batch, lr=args.lr,
                                   coarse=args.coarse,
                                   iters=args.iters))
    started = time.perf_counter()
    if args.evaluate_only:
        if not (out / "model_final.pth").is_file():
            print(f"train_learning.py: error: --evaluate-only needs {out / 'model_final.pth'}", file=sys.stderr)
            return 2
        code = 0
    else:
        code = cli_main(["train", "--config", str(config), "--data", str(train_dir), "--out", str(out), "--resume"]
                       if (out / "model_final.pth").exists() or list(out.glob("model_0*.pth")) else
                       ["train", "--config", str(config), "--data", str(train_dir), "--out", str(out)])
    if code:
        return code
    train_seconds = time.perf_counter() - started

    cfg = load_config(config)
    seed_everything(cfg["train"]["seed"])
    untrained = build_model(cfg)
    trained, _ = model_from_checkpoint(out / "model_final.pth", cfg, torch.device("cpu"))
    dataset = load_source(parse_data_arg(str(test_dir)), train=False)
    charts = ChartSurface.load(test_dir / "charts.npz")
    rows = {}
    for name, model in (("untrained", untrained), ("trained", trained)):
        accuracy = coarse_accuracy(model, dataset)
        metrics = evaluate(model, dataset, charts, out / f"eval_{name}")
        rows[name] = (accuracy, metrics)
        print(f"\n{name} model, held-out renders ({len(dataset)} images, {accuracy['points']} points):")
        print(format_table(metrics))

    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    if args.evaluate_only:  # the training time of the run that wrote the model
        train_seconds = float(log[-1]["elapsed"])
    print(f"\ntraining: {args.iters} iterations x {args.batch} images from scratch on {args.train_samples} renders "
          f"in {train_seconds:.0f} s ({args.iters * args.batch / train_seconds:.2f} images/s, {args.threads} threads); "
          f"loss {log[0]['losses']['total']:.3f} (iteration {log[0]['iteration']}) -> {log[-1]['losses']['total']:.3f}")
    print(f"held out: {args.test_samples} renders, seed 1, clips run/idle/reach, heavier and more muscular bodies\n")
    print(f"{'metric':36s} {'untrained':>10s} {'trained':>10s}")
    lines = [("coarse-part accuracy % (GT boxes)", "coarse_acc"), ("fine-part accuracy % (GT boxes)", "fine_acc"),
             ("mean |UV| error (right part)", "uv_err")]
    for label, key in lines:
        print(f"{label:36s} {rows['untrained'][0][key]:10.3f} {rows['trained'][0][key]:10.3f}")
    for task in ("bbox", "segm", "gps", "gpsm"):
        for key in ("AP", "AP50"):
            a, b = rows["untrained"][1][task][key], rows["trained"][1][task][key]
            show = lambda v: f"{v:10.2f}" if v is not None else f"{'-':>10s}"  # noqa: E731
            print(f"{task + ' ' + key:36s} {show(a)} {show(b)}")
    summary = {name: {"accuracy": acc, "metrics": met} for name, (acc, met) in rows.items()}
    (out / "learning.json").write_text(json.dumps(summary, indent=1))
    print(f"\nwrote {out / 'learning.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
