"""What the optional ground truth costs: the default passes against every pass, per sample.

`python bench/passes_cost.py [--samples 5] [--resolution 512]` renders the same samples
(two people each, so that person_index renders too) twice in one process each way: with the
default passes, and with every registered pass; the first sample of each is left out (one-off
shader compilation). Prints median seconds per sample and the ratio (issue 10's target: 1.15).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()


def seconds_per_sample(passes: list[str] | None, samples: int, resolution: int) -> float:
    from densesynth.config import config_hash, load_config
    from densesynth.pipeline import SampleRenderer

    overrides = {"render.resolution": [resolution, resolution], "people.count": [2, 2]}
    if passes is not None:
        overrides["passes"] = passes
    config = load_config(None, overrides)
    with tempfile.TemporaryDirectory() as out:
        renderer = SampleRenderer(config, config_hash(config), 0, Path(out))
        times = []
        for index in range(samples + 1):
            start = time.perf_counter()
            renderer.render(renderer.draw_spec(index))
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args()
    from densesynth.passes import pass_names

    everything = list(pass_names())
    default = seconds_per_sample(None, args.samples, args.resolution)
    full = seconds_per_sample(everything, args.samples, args.resolution)
    print(f"{args.resolution}x{args.resolution}, 2 people, median of {args.samples} samples (first left out)")
    print(f"  default passes         {default:.3f} s/sample")
    print(f"  every pass ({', '.join(everything)}) {full:.3f} s/sample")
    print(f"  ratio {full / default:.3f} (target <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
