"""Does a render worker's memory stay flat? `python bench/worker_memory.py [--samples 300] [--persistent-data on|off|both]`.

Renders samples in one process (one worker) and prints its resident memory (RSS) at
checkpoints, its growth from the first checkpoint (after the warm-up samples) to the last, and
seconds per sample. A long-running worker that grows (the classic complaint with Blender batch
scripts: datablocks piling up per frame) shows here. `both` (the default) runs one worker with
`render.persistent_data` on, then one with it off, each in its own process, and prints them
side by side: the same machine and run, so the seconds per sample compare too.

The heap in use (glibc's mallinfo2: allocated and not freed) is printed next to RSS: RSS also
holds memory freed but not given back to the system (fragmentation, which comes and goes),
while a heap in use that climbs is memory something keeps. People are 1 to 3 by default: with
one person no slot is ever hidden and shown again, and persistent data's growth (image
datablocks, render/blender_scene.py `ImagePair`) did not show. Defaults are a small
resolution and few beauty samples: the loop, not Cycles, is under test.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def heap_in_use_mib() -> float | None:
    """Bytes malloc has handed out and not had back (all arenas and mmapped blocks), in MiB;
    None where the C library has no mallinfo2 (not glibc 2.33+)."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20


def checkpoints(samples: int, warmup: int) -> list[int]:
    """The sample counts to read memory at: the warm-up, every hundred, the last."""
    return sorted({warmup, *range(100, samples + 1, 100), samples} - {0})


def run_worker(args: argparse.Namespace, persistent: bool) -> dict:
    """Render `args.samples` samples in this process; memory at each checkpoint and timings."""
    from densesynth.config import config_hash, load_config
    from densesynth.pipeline import SampleRenderer

    low, high = args.people
    config = load_config(None, {"render.resolution": [args.resolution, args.resolution], "render.beauty_samples": 4,
                                "render.denoise": False, "people.count": [low, high],
                                "render.persistent_data": persistent})
    marks = set(checkpoints(args.samples, args.warmup))
    readings = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        renderer = SampleRenderer(config, config_hash(config), 0, Path(out))
        setup = time.perf_counter() - start
        loop_start = time.perf_counter()
        for index in range(args.samples):
            renderer.render(renderer.draw_spec(index))
            if index + 1 in marks:
                rss, _ = rss_mib()
                readings.append({"samples": index + 1, "rss": rss, "heap": heap_in_use_mib(),
                                 "seconds": time.perf_counter() - loop_start})
                print(f"  persistent data {'on' if persistent else 'off'}: {index + 1} samples, RSS {rss:.0f} MiB",
                      file=sys.stderr, flush=True)
    _, peak = rss_mib()
    first, last = readings[0], readings[-1]
    per_sample = (last["seconds"] - first["seconds"]) / max(1, last["samples"] - first["samples"])
    return {"persistent": persistent, "readings": readings, "peak": peak, "setup_s": setup,
            "s_per_sample": per_sample, "growth": (last["rss"] - first["rss"]) / first["rss"]}


def report(results: list[dict], args: argparse.Namespace) -> None:
    low, high = args.people
    print(f"{args.samples} samples at {args.resolution}x{args.resolution} ({low} to {high} people), "
          f"one worker each; growth from sample {args.warmup} on")
    for result in results:
        first, last = result["readings"][0], result["readings"][-1]
        cells = ", ".join(f"{r['samples']}: {r['rss']:.0f}" for r in result["readings"])
        heap = ""
        if first["heap"] is not None:
            heap = (f"; heap in use {first['heap']:.0f} -> {last['heap']:.0f} MiB "
                    f"({(last['heap'] - first['heap']) / max(1, last['samples'] - first['samples']):+.2f} MiB/sample)")
        print(f"persistent data {'on ' if result['persistent'] else 'off'}: RSS MiB at {cells} "
              f"({result['growth']:+.1%}); peak {result['peak']:.0f} MiB{heap}; "
              f"{result['s_per_sample']:.2f} s/sample")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--people", type=int, nargs=2, default=[1, 3], metavar=("LOW", "HIGH"))
    parser.add_argument("--warmup", type=int, default=10, help="samples before the first reading")
    parser.add_argument("--persistent-data", choices=["on", "off", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line (for `both`)")
    args = parser.parse_args()
    if args.samples <= args.warmup:
        parser.error("--samples must be more than --warmup")
    if args.persistent_data != "both":
        result = run_worker(args, args.persistent_data == "on")
        print(json.dumps(result)) if args.json else report([result], args)
        return 0
    results = []
    for mode in ("on", "off"):  # one after the other: two workers at once would share the cores
        command = [sys.executable, __file__, "--samples", str(args.samples), "--resolution", str(args.resolution),
                   "--people", *map(str, args.people), "--warmup", str(args.warmup), "--persistent-data", mode,
                   "--json"]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(f"the worker with persistent data {mode} failed (exit {done.returncode})", file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
