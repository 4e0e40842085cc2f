"""`python -m densepose_train train | evaluate | predict`.

Options map onto config keys (`--max-iter` -> `solver.max_iter`, ...) and override the
`--config` file, which overrides `train_defaults.yaml`. A user mistake is one stderr line and
exit status 2; anything else is a bug and keeps its traceback. This module imports only the
standard library and `densepose_train.errors` at import time, so `--help` is instant and the
package never pulls in the renderer.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import TrainUserError

PROG = "densepose_train"

# Command-line option (argparse dest) -> dotted config key, per command.
TRAIN_OVERRIDES = {
    "max_iter": "solver.max_iter",
    "batch_size": "solver.batch_size",
    "lr": "solver.lr",
    "device": "train.device",
    "seed": "train.seed",
    "checkpoint_period": "train.checkpoint_period",
    "num_workers": "data.num_workers",
    "init": "train.init",
    "freeze": "train.freeze",
    "data": "data.sources",
}
EVAL_OVERRIDES = {
    "batch_size": "test.batch_size",
    "device": "train.device",
    "num_workers": "data.num_workers",
    "data": "data.test",
    "score_thresh": "model.score_thresh",
    "dp_convention": "test.dp_convention",
}
PREDICT_OVERRIDES = {"device": "train.device", "score_thresh": "model.score_thresh"}


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line like every other user error here."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train, evaluate and run DensePose R-CNN on DenseSynth renders "
                     "and DensePose-COCO.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--engine", choices=("torchvision", "detectron2"), default="torchvision",
                         help="torchvision (default, PyPI only) or detectron2 (needs detectron2 + DensePose installed)")
        sub.add_argument("--config", type=Path, help="YAML file over train_defaults.yaml (same keys)")
        sub.add_argument("--device", help="auto (CUDA when present) | cpu | cuda | cuda:N")
        sub.add_argument("--out", type=Path, required=True, help="output folder")
        sub.add_argument("--quiet", action="store_true", help="no progress bar")

    train = commands.add_parser("train", help="train (or fine-tune) a model; writes OUT/model_final.pth")
    common(train)
    train.add_argument("--data", nargs="+", metavar="SOURCE",
                       help="dataset folders or COCO-DensePose json files, each optionally ':weight' (A/:1 B.json:3)")
    train.add_argument("--init", help="none | imagenet | PATH (detectron2 .pkl or our .pth checkpoint)")
    train.add_argument("--freeze", help="none | stem | backbone | all_but_densepose_head (seed recipe) | "
                       "all_but_densepose_predictor")
    train.add_argument("--max-iter", type=int)
    train.add_argument("--batch-size", type=int, help="images per iteration")
    train.add_argument("--lr", type=float, help="learning rate (default: solver.base_lr scaled by batch size)")
    train.add_argument("--seed", type=int)
    train.add_argument("--checkpoint-period", type=int, help="write OUT/model_XXXXXXX.pth every N iterations")
    train.add_argument("--num-workers", type=int, help="data loader processes")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT")

    evaluate = commands.add_parser("evaluate", help="bbox, segm, GPS, GPSm AP on a dataset; writes OUT/metrics.json")
    common(evaluate)
    evaluate.add_argument("--model", type=Path, required=True, help="checkpoint (.pth) written by train")
    evaluate.add_argument("--data", nargs="+", metavar="SOURCE", help="dataset folder or COCO-DensePose json")
    evaluate.add_argument("--charts", type=Path, help="charts.npz (default: the dataset folder's charts.npz)")
    evaluate.add_argument("--batch-size", type=int, help="images per inference batch")
    evaluate.add_argument("--num-workers", type=int)
    evaluate.add_argument("--score-thresh", type=float, help="drop detections below this score")
    evaluate.add_argument("--dp-convention", choices=("exact", "densepose"),
                          help="how GT points map to pixels: exact (DenseSynth) or densepose (DensePose-COCO numbers)")

    predict = commands.add_parser("predict", help="IUV overlays of a model's predictions as PNGs")
    common(predict)
    predict.add_argument("--model", type=Path, required=True, help="checkpoint (.pth) written by train")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--score-thresh", type=float, help="draw detections at or above this score (default 0.5)")
    return parser


def overrides_for(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config keys set on the command line."""
    table = {"train": TRAIN_OVERRIDES, "evaluate": EVAL_OVERRIDES, "predict": PREDICT_OVERRIDES}[args.command]
    result = {}
    for dest, dotted in table.items():
        value = getattr(args, dest, None)
        if value is None or (dest == "score_thresh" and args.command == "predict"):
            continue
        result[dotted] = [str(v) for v in value] if dest == "data" else value
    return result


def run(argv: Sequence[str] | None = None) -> int:
    """Parse, resolve the config and hand the command to its engine; TrainUserError propagates."""
    args = build_parser().parse_args(argv)
    from .config import load_config
    from .engines import get_engine

    cfg = load_config(args.config, overrides_for(args))
    engine = get_engine(args.engine)
    return int(engine.run(args.command, args, cfg) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except TrainUserError as error:
        message = " ".join(str(error).split())  # one line, whatever the message held
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
