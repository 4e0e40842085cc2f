"""The merge stays linear: seconds per sample at 1k, 5k and 50k synthetic samples.

`python bench/merge_bench.py [--sizes 1000 5000 50000]` writes synthetic finished samples
(a record with one realistic-size person annotation, a spec, a done/ manifest) into a
temporary run folder and times `densesynth.job.merge.merge` on it, printing milliseconds per sample
for each size; it exits 1 when the largest size costs more than 20% more per sample than
the smallest (a writer that rewrote its whole file per image would grow without bound).
No rendering: the records are synthetic, the merge is the real one.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "addon")]


def _annotation(index: int) -> dict:
    points = 100
    return {"bbox": [10.0, 20.0, 100.0, 300.0], "area": 21000.0, "iscrowd": 0, "category_id": 1,
            "segmentation": {"size": [512, 512], "counts": "a" * 600},
            "keypoints": [float(index % 500), 100.0, 2] * 17, "num_keypoints": 17,
            "dp_x": [float(i) for i in range(points)], "dp_y": [float(i) for i in range(points)],
            "dp_I": [float(1 + i % 24) for i in range(points)], "dp_U": [0.5] * points, "dp_V": [0.25] * points,
            "dp_masks": [{"size": [256, 256], "counts": "b" * 120} for _ in range(14)]}


def write_samples(out: Path, count: int) -> None:
    from densesynth.io_utils import atomic_write_text
    from densesynth.job.shards import Identity, sample_stem
    from densesynth.spec.model import SPEC_VERSION

    identity = Identity("benchmark", 0)
    for folder in ("records", "specs", "done", "images"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.json", json.dumps({**identity.of(0), "num_samples": count, "shard_size": 8}))
    for index in range(count):
        stem = sample_stem(index)
        record = {"image": {"file_name": f"{stem}.png", "height": 512, "width": 512, "index": index},
                  "annotations": [_annotation(index)]}
        spec = {"spec_version": SPEC_VERSION, "persons": [{"motion": {"clip": "walk", "phase": (index % 97) / 97, "mirror": index % 2 == 0},
                             "body": {"kind": "anny", "phenotype": {"gender": (index % 7) / 7, "height": 0.5,
                                                                     "weight": 0.5}}}]}
        files = {}
        for name, content in ((f"specs/{stem}.json", spec), (f"records/{stem}.json", record)):
            data = (json.dumps(content) + "\n").encode()
            (out / name).write_bytes(data)
            stat = (out / name).stat()
            files[name] = {"size": stat.st_size, "sha256": hashlib.sha256(data).hexdigest(), "mtime_ns": stat.st_mtime_ns}
        manifest = {"version": 1, "stem": stem, **identity.of(index), "files": files}
        (out / "done" / f"{stem}.json").write_text(json.dumps(manifest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 50000])
    args = parser.parse_args()
    from densesynth.job.merge import merge

    per_sample = {}
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="densesynth-merge-bench-") as folder:
            out = Path(folder) / "run"
            write_samples(out, size)
            started = time.perf_counter()
            result = merge(out)
            seconds = time.perf_counter() - started
            assert result.images == size, result
            per_sample[size] = seconds / size
            print(f"{size:>7} samples: merge {seconds:7.2f} s, {1000 * per_sample[size]:.3f} ms per sample "
                  f"({(out / 'annotations.json').stat().st_size / 2**20:.0f} MiB annotations.json)", flush=True)
    smallest, largest = per_sample[min(per_sample)], per_sample[max(per_sample)]
    ratio = largest / smallest
    print(f"per-sample time, largest over smallest: {ratio:.2f} ({'flat' if ratio <= 1.2 else 'NOT flat'} within 20%)")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
