"""The render job's command line, shared by `farm/render.py` and the Blender add-on.

`python farm/render.py --out DIR --num-samples N --seed S [--resolution 512 | 640x480]
[--config FILE] [--debug-geometry] [--workers N] [--shard-size K] [--shards SEL] ...`;
user mistakes end in one line on stderr and exit 2; samples that fail every attempt end
in exit 1 (run the same command again to retry them).

The samples 0..N-1 split into shards of --shard-size; --workers processes render them
(farm/pool.py), finished samples are skipped (farm/shards.py), and the records are merged
into annotations.json plus a train/val split at the end (farm/merge.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import UserError


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_resolution(text: str) -> tuple[int, int]:
    try:
        if "x" in text.lower():
            width, height = (int(v) for v in text.lower().split("x"))
        else:
            width = height = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a resolution: use 512 or 640x480") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"resolution {text} is outside 16..8192 pixels")
    return width, height


def _number_argument(convert, accept, requirement: str):
    """An argparse type: `convert` the text, then `accept` it or say the `requirement`."""
    noun = "a whole number" if convert is int else "a number"

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {noun}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    return parse


positive_int = _number_argument(int, lambda v: v >= 1, "at least 1")
seed_int = _number_argument(int, lambda v: 0 <= v < 2**63, "in 0 .. 2**63 - 1")
non_negative_int = _number_argument(int, lambda v: v >= 0, "0 or more")
positive_float = _number_argument(float, lambda v: v > 0, "more than 0")
non_negative_float = _number_argument(float, lambda v: v >= 0, "0 or more")


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in 0..1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="render.py", description="Render an annotated DensePose dataset.")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; resumed if it holds this run)")
    parser.add_argument("--num-samples", type=positive_int, required=True, help="number of samples")
    parser.add_argument("--seed", type=seed_int, default=0, help="run seed (default 0)")
    parser.add_argument("--resolution", type=parse_resolution, help="512 or WIDTHxHEIGHT (overrides the config)")
    parser.add_argument("--config", type=Path, help="YAML config; embedded defaults when absent")
    parser.add_argument("--debug-geometry", action="store_true", help="also write DIR/geometry/<stem>.npz")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--body", choices=("anny", "smpl"), help="body kind (overrides body.kind)")
    parser.add_argument("--smpl-dir", help="folder with your SMPL model files (overrides body.smpl_dir)")
    parser.add_argument("--gender", choices=("random", "female", "male", "neutral"),
                        help="SMPL gender (overrides body.gender)")
    farm = parser.add_argument_group("farm (sharding, workers, resume)")
    farm.add_argument("--workers", type=non_negative_int, default=1,
                      help="worker processes, each with its own Blender (default 1; 0 = render in this process, "
                           "no crash or hang protection); with more than 1, each renders with one Cycles thread")
    farm.add_argument("--executor", choices=("local", "ray"), default="local",
                      help="local: a pool of worker processes here; ray: one Ray task per shard")
    farm.add_argument("--address", help="Ray cluster address (default: start a Ray instance on this machine)")
    farm.add_argument("--cpus-per-task", type=positive_int, default=1, help="Ray: CPUs (Cycles threads) per shard task")
    farm.add_argument("--gpus-per-task", type=non_negative_float, default=0.0,
                      help="Ray: GPUs per shard task (set render.device: GPU in the config)")
    farm.add_argument("--shard-size", type=positive_int, default=8, help="samples per shard (default 8)")
    farm.add_argument("--shards", help="render only these shards, e.g. 0,3-5 (default all); merge waits for the rest")
    farm.add_argument("--max-samples-per-worker", type=positive_int, default=500,
                      help="restart a worker after this many samples (default 500)")
    farm.add_argument("--sample-timeout", type=positive_float, default=900.0,
                      help="seconds one sample may take before its worker is killed (default 900)")
    farm.add_argument("--retries", type=non_negative_int, default=2,
                      help="retries of a crashed, hung or failing sample before it is recorded as failed (default 2)")
    farm.add_argument("--verify", action="store_true",
                      help="re-hash every finished file before skipping it (default: re-hash changed files only)")
    farm.add_argument("--val-fraction", type=fraction, default=0.1,
                      help="share of split groups in annotations_val.json (default 0.1; see farm/merge.py)")
    return parser


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".densesynth_write_probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror or exc}; choose a writable folder") from None


def claim_run(out: Path, config_id: str, seed: int, plan: dict | None = None) -> None:
    """Tie the folder to one (config, seed): resuming is safe, mixing two runs is refused.

    `plan` ({"num_samples", "shard_size"}) is stored alongside for `status` and `merge`; it
    may change from run to run (more samples, other shards), the identity may not.
    """
    from .io_utils import atomic_write_text

    run_file = out / "run.json"
    wanted = {"config_hash": config_id, "seed": seed}
    existing = None
    if run_file.is_file():
        try:
            existing = json.loads(run_file.read_text())
        except (OSError, ValueError):
            existing = None
        if not isinstance(existing, dict) or {k: existing.get(k) for k in wanted} != wanted:
            raise UserError(
                f"{out} holds a different run ({run_file}: {existing}); use another --out folder "
                "or the same --config and --seed to resume it"
            )
    content = {**(existing or {}), **wanted, **(plan or {})}
    if content != existing:
        atomic_write_text(run_file, json.dumps(content, sort_keys=True) + "\n")


def _import_farm() -> bool:
    """The farm (pool, shards, merge) lives next to the package in the repository; a Blender
    extension install has only the package and renders in-process, as before."""
    import importlib

    try:
        importlib.import_module("farm.pool")
        return True
    except ImportError:
        repo = Path(__file__).resolve().parents[2]
        if not (repo / "farm" / "pool.py").is_file():
            return False
        sys.path.insert(0, str(repo))
        importlib.import_module("farm.pool")
        return True


class Progress:
    """samples/s and ETA on stderr, at most once a second (and at the end)."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet
        self.started = self.last = time.perf_counter()
        self.shown: tuple[int, int] | None = None

    def __call__(self, result, final: bool = False) -> None:
        now = time.perf_counter()
        finished = result.done + len(result.failed)
        if self.quiet or (not final and now - self.last < 1.0) or (final and self.shown == (finished, len(result.failed))):
            return
        self.last, self.shown = now, (finished, len(result.failed))
        rate = result.done / max(now - self.started, 1e-9)
        eta = (self.total - finished) / rate if rate > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "--:--:--"
        failed = f", {len(result.failed)} failed" if result.failed else ""
        print(f"[{finished}/{self.total}] {rate:.2f} samples/s, ETA {eta_text}{failed}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from .config import config_hash, load_config

    overrides = {"render.resolution": list(args.resolution)} if args.resolution else {}
    for option, key in (("body", "body.kind"), ("smpl_dir", "body.smpl_dir"), ("gender", "body.gender")):
        if getattr(args, option, None) is not None:
            overrides[key] = str(Path(args.smpl_dir).expanduser().resolve()) if option == "smpl_dir" else getattr(args, option)
    config = load_config(args.config, overrides)
    check_writable(args.out)
    config_id = config_hash(config)
    if config["motion"]["clip_folders"]:  # the quality report is printed even with --quiet
        from .motion.catalogue import catalogue

        print(f"render.py: {catalogue(tuple(config['motion']['clips']), tuple(config['motion']['clip_folders'])).summary()}",
              file=sys.stderr)
    if not _import_farm():
        claim_run(args.out, config_id, args.seed)
        return _run_plain(args, config, config_id)

    from farm.merge import MergeError, merge
    from farm.pool import FarmError, Job, PoolOptions, run_in_process, run_pool
    from farm.shards import (Identity, check_sample, num_shards, parse_shard_selection, remove_stale_temporaries,
                             shard_range)

    shard_count = num_shards(args.num_samples, args.shard_size)
    if args.shards:
        try:
            selected = parse_shard_selection(args.shards, shard_count)
        except ValueError as exc:
            raise UserError(f"--shards {args.shards}: {exc}") from None
    else:
        selected = list(range(shard_count))
    claim_run(args.out, config_id, args.seed, {"num_samples": args.num_samples, "shard_size": args.shard_size})

    remove_stale_temporaries(args.out)  # half-written files of killed workers
    identity = Identity(config_id, args.seed)
    todo, corrupt = [], 0
    for shard in selected:
        for index in shard_range(shard, args.num_samples, args.shard_size):
            state = check_sample(args.out, identity, index, verify=args.verify)
            if state.status != "done":
                todo.append(index)
                corrupt += state.status == "corrupt"
                if state.status == "corrupt" and not args.quiet:
                    print(f"render.py: redoing {index:08d}: {state.reason}", file=sys.stderr)
    selected_count = sum(len(shard_range(s, args.num_samples, args.shard_size)) for s in selected)
    if not args.quiet:
        print(f"render.py: {selected_count - len(todo)} of {selected_count} samples already done, "
              f"{len(todo)} to render{f' ({corrupt} of them damaged)' if corrupt else ''} with {args.workers or 'no'} worker process{'es' * (args.workers != 1)}",
              file=sys.stderr, flush=True)

    from .bodies.cache import ensure_anny_archive

    if todo and config["body"]["kind"] == "anny":
        ensure_anny_archive()  # export the body once here, not in every worker at the same time
    # One Cycles thread per worker when several share the machine: execution only, so the
    # config hash (the run's identity) is computed before and does not change.
    threads = args.cpus_per_task if args.executor == "ray" else (1 if args.workers > 1 else None)
    worker_config = config if threads is None else {**config, "render": {**config["render"], "threads": threads}}
    job = Job(worker_config, config_id, args.seed, args.out, args.debug_geometry)
    progress = Progress(len(todo), args.quiet)
    try:
        if not todo:
            from farm.pool import PoolResult

            result = PoolResult()
        elif args.executor == "ray":
            try:
                from farm.ray_executor import run_ray
            except ImportError:
                raise UserError("--executor ray needs Ray: pip install 'ray>=2.40'") from None
            result = run_ray(job, todo, args.shard_size, args.address, args.cpus_per_task, args.gpus_per_task,
                             args.retries, progress)
        elif args.workers == 0:
            result = run_in_process(job, todo, args.retries, None, progress)
        else:
            options = PoolOptions(args.workers, args.max_samples_per_worker, args.sample_timeout, args.retries)
            result = run_pool(job, todo, options, progress)
    except FarmError as exc:
        raise UserError(f"{exc}; finished samples are kept, run the same command again to resume") from None
    if todo:
        progress(result, final=True)
        remove_stale_temporaries(args.out)  # also those of workers that were still dying at the start
    if result.failed:
        first = min(result.failed)
        print(f"render.py: {len(result.failed)} sample{'s' * (len(result.failed) != 1)} failed after "
              f"{args.retries + 1} attempt{'s' * (args.retries > 0)} each "
              f"(first: {first:08d}: {result.failed[first]}; see {args.out / 'failed'}); "
              "run the same command again to retry them; not merged", file=sys.stderr)
        return 1
    try:
        merged = merge(args.out, args.num_samples, args.val_fraction)
    except MergeError as exc:
        print(f"rendered {result.done} samples into {args.out}; not merged yet: {exc}")
        return 0
    print(f"wrote {merged.images} samples ({merged.annotations} people) to {args.out}; annotations: "
          f"{merged.paths['all']} (train {merged.split['train']}, val {merged.split['val']})")
    return 0


def _run_plain(args: argparse.Namespace, config: dict, config_id: str) -> int:
    """Without the farm (an installed Blender extension): one process, record = finished."""
    from .pipeline import SampleRenderer, write_annotations

    renderer = SampleRenderer(config, config_id, args.seed, args.out, debug_geometry=args.debug_geometry)
    records = []
    for index in range(args.num_samples):
        spec = renderer.draw_spec(index)
        record_path = args.out / "records" / f"{spec['stem']}.json"
        if record_path.is_file():
            records.append(json.loads(record_path.read_text()))
            continue
        records.append(renderer.render(spec))
        if not args.quiet:
            print(f"[{index + 1}/{args.num_samples}] {spec['stem']}", file=sys.stderr, flush=True)
    path = write_annotations(args.out, records)
    people = sum(len(r["annotations"]) for r in records)
    print(f"wrote {len(records)} samples ({people} people) to {args.out}; annotations: {path}")
    return 0


def main(argv: list[str]) -> int:
    """Run the render job on `argv` (the script's own arguments); returns the exit status."""
    args = build_parser().parse_args(argv)

    try:
        return run(args)
    except UserError as exc:
        print(f"render.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("render.py: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
