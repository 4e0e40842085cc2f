"""Where a sample's time goes: beauty pass versus everything else.

`python bench/pipeline_bench.py [--samples 6] [--resolution 512] [--views N]` renders a few
samples on the embedded defaults (with `--views N`: `camera.views_per_scene: N`, views of
one posed scene) (the default beauty sample count) and prints the median seconds per
stage and the ratio of everything-but-beauty to the beauty pass. The first sample is
reported apart: it includes one-off costs (shader compilation, denoiser start-up).
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

STAGES = ("spec", "scene_setup", "beauty_pass", "label_pass", "decode_annotate")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--views", type=int, default=1, help="camera.views_per_scene")
    args = parser.parse_args()

    from densesynth.config import config_hash, load_config
    from densesynth.pipeline import SampleRenderer

    config = load_config(None, {"render.resolution": [args.resolution, args.resolution],
                                "camera.views_per_scene": args.views})
    with tempfile.TemporaryDirectory() as out:
        renderer = SampleRenderer(config, config_hash(config), 0, Path(out))
        for index in range(args.samples):
            start = time.perf_counter()
            spec = renderer.draw_spec(index)
            renderer.times.add("spec", time.perf_counter() - start)
            renderer.render(spec)
    times = renderer.times.seconds
    print(f"resolution {args.resolution}x{args.resolution}, beauty samples {config['render']['beauty_samples']}, "
          f"denoise {config['render']['denoise']}, views per scene {args.views}, {args.samples} samples "
          "(first excluded from medians)")
    print(f"process set-up (once): {times['process_setup'][0]:.2f} s (body load, charts, Blender scene)")
    medians = {stage: statistics.median(times[stage][1:] or times[stage]) for stage in STAGES}
    for stage in STAGES:
        print(f"  {stage:16s} median {medians[stage]:.3f} s/sample   first {times[stage][0]:.3f} s")
    overhead = sum(v for k, v in medians.items() if k != "beauty_pass")
    print(f"everything but beauty: {overhead:.3f} s/sample = {overhead / medians['beauty_pass']:.1%} of the beauty pass")
    print(f"label pass + decode/annotate + set-up (spec, scene): "
          f"{(medians['label_pass'] + medians['decode_annotate'] + medians['scene_setup'] + medians['spec']) / medians['beauty_pass']:.1%} of beauty")
    return 0


if __name__ == "__main__":
    sys.exit(main())
