"""What the optional ground truth costs: the default passes against every pass, per sample.

`python bench/passes_cost.py [--samples 6] [--resolution 512]` renders each sample (two
people, so that person_index renders too) twice in one process: with the default passes and
with every registered pass, back to back in alternating order, after one warm-up sample
(shader compilation). Prints median seconds per sample and the median per-sample ratio
(issue 10's target: 1.15).
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


def paired_seconds(samples: int, resolution: int) -> tuple[list[float], list[float], list[str]]:
    """Seconds per sample with the default passes and with every pass, for the same specs in
    one process, back to back in alternating order (a busy machine slows both alike)."""
    from densesynth.config import config_hash, load_config
    from densesynth.passes import pass_names, resolve

    from densesynth.pipeline import SampleRenderer

    everything = list(pass_names())
    overrides = {"render.resolution": [resolution, resolution], "people.count": [2, 2], "passes": everything}
    if "flow" in everything:  # flow is between the frames of a sequence; both pass lists render the same specs
        overrides["sequence.length"] = 3
    config = load_config(None, overrides)
    default = resolve(load_config(None)["passes"])
    times: dict[str, list[float]] = {"default": [], "every": []}
    with tempfile.TemporaryDirectory() as out:
        renderer = SampleRenderer(config, config_hash(config), 0, Path(out))
        every = renderer.passes
        renderer.render(renderer.draw_spec(10_000))  # one-off shader compilation, denoiser start-up
        for index in range(samples):
            spec = renderer.draw_spec(index)
            order = ("default", "every") if index % 2 == 0 else ("every", "default")
            for name in order:
                renderer.passes = default if name == "default" else every
                start = time.perf_counter()
                renderer.render(spec)
                times[name].append(time.perf_counter() - start)
    return times["default"], times["every"], everything


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args()
    default, every, names = paired_seconds(args.samples, args.resolution)
    ratios = [e / d for d, e in zip(default, every)]
    print(f"{args.resolution}x{args.resolution}, 2 people, {args.samples} samples, each rendered with both pass lists")
    print(f"  default passes         median {statistics.median(default):.3f} s/sample")
    print(f"  every pass ({', '.join(names)}) median {statistics.median(every):.3f} s/sample")
    print(f"  ratio: median over samples {statistics.median(ratios):.3f} "
          f"(per sample: {', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
