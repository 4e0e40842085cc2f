"""Samples per second with 1 and 2 local workers (one Cycles thread each).

`python bench/throughput.py [--samples 12] [--resolution 256]` renders the same run twice
through the real command line, with `--workers 1` and `--workers 2`, and prints samples/s
and the speed-up. One thread per worker makes the comparison about the farm's scaling, not
about Cycles' own threading. Process start-up (Blender, body, scene) is included, as a user
pays it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed_run(out: Path, config: Path, samples: int, workers: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "farm" / "render.py"), "--out", str(out), "--num-samples", str(samples),
                    "--seed", "0", "--config", str(config), "--workers", str(workers), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--beauty-samples", type=int, default=16)
    parser.add_argument("--no-denoise", action="store_true", help="OpenImageDenoise runs threads of its own")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(f"render:\n  resolution: [{args.resolution}, {args.resolution}]\n  threads: 1\n"
                          f"  beauty_samples: {args.beauty_samples}\n  denoise: {str(not args.no_denoise).lower()}\n")
        rates = {}
        for workers in (1, 2):
            seconds = timed_run(Path(tmp) / f"w{workers}", config, args.samples, workers)
            rates[workers] = args.samples / seconds
            print(f"{workers} worker(s): {args.samples} samples in {seconds:.1f} s = {rates[workers]:.3f} samples/s")
    print(f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x (target >= 1.6x on 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
