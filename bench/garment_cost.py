"""What garments and hair cost: beauty-pass seconds of the same samples dressed and undressed.

`python bench/garment_cost.py [--pairs 6] [--resolution 512]`

Each pair is one spec drawn with `garments.probability: 1` and the same spec with the garment
draws removed (garment draws come from their own seed stream, so nothing else changes: same
people, pose, camera, lights, texture). The two render back to back in one process, in
alternating order, so a busy machine slows both alike; the figure is the median over pairs of
dressed / undressed beauty seconds (issue 13's limit: at most 1.25), plus the scene set-up
seconds, which hold the garment geometry itself (appearance/garment_geometry.dress).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()


def undressed(spec: dict) -> dict:
    """The same spec with every person's garment draws removed (skin-tight, bald)."""
    bare = copy.deepcopy(spec)
    for appearance in bare["appearance"]:
        appearance.pop("garments", None)
    return bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args()

    from densesynth.config import config_hash, load_config
    from densesynth.pipeline import SampleRenderer

    config = load_config(None, {"render.resolution": [args.resolution, args.resolution], "garments.probability": 1.0})
    seconds: dict[str, dict[str, list[float]]] = {"dressed": {}, "bare": {}}
    ratios = []
    with tempfile.TemporaryDirectory() as out:
        renderer = SampleRenderer(config, config_hash(config), 0, Path(out))
        renderer.render(renderer.draw_spec(10_000))  # warm-up: shader compilation, denoiser start-up
        for index in range(args.pairs):
            spec = renderer.draw_spec(index)
            pair = {"dressed": spec, "bare": undressed(spec)}
            order = ("dressed", "bare") if index % 2 == 0 else ("bare", "dressed")
            for name in order:
                renderer.render(pair[name])
                for stage in ("beauty_pass", "scene_setup"):
                    seconds[name].setdefault(stage, []).append(renderer.times.seconds[stage][-1])
            ratios.append(seconds["dressed"]["beauty_pass"][-1] / seconds["bare"]["beauty_pass"][-1])
    print(f"resolution {args.resolution}x{args.resolution}, beauty samples {config['render']['beauty_samples']}, "
          f"{args.pairs} pairs (same spec dressed / bare), medians")
    for name in ("bare", "dressed"):
        print(f"  {name:8s} beauty {statistics.median(seconds[name]['beauty_pass']):.3f} s   "
              f"scene set-up {statistics.median(seconds[name]['scene_setup']):.3f} s")
    print(f"dressed / bare beauty seconds: median {statistics.median(ratios):.3f} "
          f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}; limit 1.25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
