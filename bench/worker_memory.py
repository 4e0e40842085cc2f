"""Does a render worker's memory stay flat? `python bench/worker_memory.py [--samples 300]`.

Renders samples in one process (one worker) and prints its resident memory after the first
samples and at the end, and the peak. A long-running worker that grows (the classic
complaint with Blender batch scripts: datablocks piling up per frame) shows here. Defaults
are a small resolution and few beauty samples: the loop, not Cycles, is under test.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB, from /proc."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=10, help="samples before the start reading")
    args = parser.parse_args()

    from densesynth.config import config_hash, load_config
    from densesynth.pipeline import SampleRenderer

    config = load_config(None, {"render.resolution": [args.resolution, args.resolution], "render.beauty_samples": 4,
                                "render.denoise": False, "people.count": [1, 3]})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        renderer = SampleRenderer(config, config_hash(config), 0, Path(out))
        for index in range(args.samples):
            renderer.render(renderer.draw_spec(index))
            if index + 1 == args.warmup:
                first, _ = rss_mib()
        last, peak = rss_mib()
    growth = (last - first) / first
    print(f"{args.samples} samples at {args.resolution}x{args.resolution} (1 to 3 people) in one worker, "
          f"{time.perf_counter() - start:.0f} s")
    print(f"RSS after {args.warmup} samples: {first:.0f} MiB; after {args.samples}: {last:.0f} MiB "
          f"({growth:+.1%}); peak {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
