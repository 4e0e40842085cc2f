"""`python -m farm merge DIR [--val-fraction 0.1] [--allow-partial]`: merge a render folder by hand.

The merge itself (COCO files, the train/val split rule) is the package's
(densesynth/job/merge.py), which the render job runs at its end.
"""
from __future__ import annotations

import sys
from pathlib import Path

from densesynth.cli import OneLineArgumentParser, OutputLock
from densesynth.errors import UserError
from densesynth.job.merge import DEFAULT_VAL_FRACTION, MergeError, merge


def main(argv: list[str]) -> int:
    parser = OneLineArgumentParser(prog="python -m farm merge", description="Merge per-sample records into "
                                   "annotations.json and a train/val split.")
    parser.add_argument("out", type=Path, help="the render folder (--out of the render command)")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                        help=f"share of split groups that go to validation (default {DEFAULT_VAL_FRACTION})")
    parser.add_argument("--allow-partial", action="store_true", help="merge the finished samples even if some are not")
    parser.add_argument("--num-samples", type=int, help="merge samples 0..N-1 (default: the last run's count)")
    parser.add_argument("--allow-shrink", action="store_true",
                        help="allow --num-samples below the run's count (annotations.json then lists fewer samples)")
    parser.add_argument("--wait-lock", action="store_true", help="wait for a render running on the folder to end")
    args = parser.parse_args(argv)
    lock = OutputLock(args.out)
    try:
        if (args.out / "run.json").is_file():
            lock.acquire(wait=args.wait_lock)
        result = merge(args.out, args.num_samples, args.val_fraction, args.allow_partial, args.allow_shrink)
    except (MergeError, UserError) as exc:
        print(f"merge: error: {exc}", file=sys.stderr)
        return 2
    finally:
        lock.release()
    print(f"merged {result.images} images ({result.annotations} people): train {result.split['train']}, "
          f"val {result.split['val']}" + (f", {len(result.missing)} unfinished left out" if result.missing else "")
          + f" -> {result.paths['all']}")
    return 0
