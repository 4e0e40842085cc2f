"""The render job's command line, shared by `farm/render.py` and the Blender add-on.

`python farm/render.py --out DIR --num-samples N --seed S [--resolution 512 | 640x480]
[--config FILE] [--debug-geometry] [--workers N] [--shard-size K] [--shards SEL] ...`;
user mistakes end in one line on stderr and exit 2; samples that fail every attempt end
in exit 1 (run the same command again to retry them).

The samples 0..N-1 split into shards of --shard-size; --workers processes render them
(farm/pool.py, or Ray: farm/ray_executor.py, or this process: job/in_process.py), finished
samples are skipped (job/shards.py), and the records are merged into annotations.json plus
a train/val split at the end (job/merge.py). The Blender extension runs this same job in
one process.

--out is resolved against the working folder; `/`, an empty value and a non-empty folder
without our run.json are refused; one run at a time holds DIR/.densesynth.lock (a second
refuses in one line, or waits with --wait-lock); a smaller --num-samples than the folder's
run needs --allow-shrink.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .annotate.chart_surface import CHARTS_FILE, write_chart_surface
from .job.shards import MAX_SAMPLES


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


MIN_SAMPLE_TIMEOUT_S = 5.0  # below this no sample (Blender scene set-up included) can finish

positive_int = _number_argument(int, lambda v: v >= 1, "at least 1")
num_samples_int = _number_argument(int, lambda v: 1 <= v <= MAX_SAMPLES, f"in 1 .. {MAX_SAMPLES:,}")
shard_size_int = _number_argument(int, lambda v: 1 <= v <= 10**6, "in 1 .. 1,000,000")
samples_per_worker_int = _number_argument(int, lambda v: 1 <= v <= 10**9, "in 1 .. 1,000,000,000")
cpus_int = _number_argument(int, lambda v: 1 <= v <= 4096, "in 1 .. 4096")
workers_int = _number_argument(int, lambda v: 0 <= v <= 1024, "in 0 .. 1024")
retries_int = _number_argument(int, lambda v: 0 <= v <= 100, "in 0 .. 100")
seed_int = _number_argument(int, lambda v: 0 <= v < 2**63, "in 0 .. 2**63 - 1")
non_negative_int = _number_argument(int, lambda v: v >= 0, "0 or more")
positive_float = _number_argument(float, lambda v: math.isfinite(v) and v > 0, "a finite number more than 0")
non_negative_float = _number_argument(float, lambda v: math.isfinite(v) and 0 <= v <= 1024, "in 0 .. 1024")
timeout_float = _number_argument(float, lambda v: math.isfinite(v) and MIN_SAMPLE_TIMEOUT_S <= v <= 10**7,
                                 f"at least {MIN_SAMPLE_TIMEOUT_S:g} seconds (a sample needs that to start) and finite")


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
    parser.add_argument("--out", required=True,
                        help="output folder: new, empty, or one of this run (resumed); relative to the working folder")
    parser.add_argument("--num-samples", type=num_samples_int, required=True, help="number of samples")
    parser.add_argument("--seed", type=seed_int, default=0, help="run seed (default 0)")
    parser.add_argument("--resolution", type=parse_resolution, help="512 or WIDTHxHEIGHT (overrides the config)")
    parser.add_argument("--config", type=Path, help="YAML config; embedded defaults when absent")
    parser.add_argument("--debug-geometry", action="store_true", help="also write DIR/geometry/<stem>.npz")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    from .bodies.kinds import body_kind_names

    parser.add_argument("--body", choices=body_kind_names(), help="body kind (overrides body.kind)")
    parser.add_argument("--smpl-dir", help="folder with your SMPL model files (overrides body.smpl_dir)")
    parser.add_argument("--gender", choices=("random", "female", "male", "neutral"),
                        help="SMPL gender (overrides body.gender)")
    farm = parser.add_argument_group("farm (sharding, workers, resume)")
    farm.add_argument("--workers", type=workers_int, default=1,
                      help="worker processes, each with its own Blender (default 1; 0 = render in this process, "
                           "no crash or hang protection); with more than 1, each renders with one Cycles thread")
    farm.add_argument("--executor", choices=("local", "ray"), default="local",
                      help="local: a pool of worker processes here; ray: one Ray task per shard")
    farm.add_argument("--address", help="Ray cluster address (default: start a Ray instance on this machine)")
    farm.add_argument("--cpus-per-task", type=cpus_int, default=1, help="Ray: CPUs (Cycles threads) per shard task")
    farm.add_argument("--gpus-per-task", type=non_negative_float, default=0.0,
                      help="Ray: GPUs per shard task (set render.device: GPU in the config)")
    farm.add_argument("--shard-size", type=shard_size_int, default=8, help="samples per shard (default 8)")
    farm.add_argument("--shards", help="render only these shards, e.g. 0,3-5 (default all); merge waits for the rest")
    farm.add_argument("--max-samples-per-worker", type=samples_per_worker_int, default=500,
                      help="restart a worker after this many samples (default 500)")
    farm.add_argument("--sample-timeout", type=timeout_float, default=900.0,
                      help="seconds one sample may take before its worker is killed (default 900)")
    farm.add_argument("--retries", type=retries_int, default=2,
                      help="retries of a crashed, hung or failing sample before it is recorded as failed (default 2)")
    farm.add_argument("--verify", action="store_true",
                      help="re-hash every finished file before skipping it (default: re-hash changed files only)")
    farm.add_argument("--val-fraction", type=fraction, default=0.1,
                      help="share of split groups in annotations_val.json (default 0.1; see densesynth/job/merge.py)")
    farm.add_argument("--wait-lock", action="store_true",
                      help="if another run is using --out, wait for it to end (default: refuse)")
    farm.add_argument("--allow-shrink", action="store_true",
                      help="allow a --num-samples below the folder's run (annotations.json then lists fewer)")
    return parser


def resolve_out(text: str) -> Path:
    """--out as an absolute path: relative means the user's working folder (workers run
    elsewhere); the empty string and the filesystem root are refused."""
    if not text or not text.strip():
        raise UserError("--out is empty: give the output folder, e.g. --out ./run1")
    out = Path(os.path.abspath(os.path.join(os.getcwd(), os.path.expanduser(text))))
    if out == Path(out.anchor):
        raise UserError(f"--out {text} is the filesystem root: give a folder of its own, e.g. --out ./run1")
    return out


# Files that may sit in --out before run.json exists (our lock, the writability probe).
LOCK_NAME = ".densesynth.lock"
_OUR_EARLY_FILES = {LOCK_NAME, ".densesynth_write_probe"}


def check_out_folder(out: Path) -> None:
    """Refuse a folder that holds files but no run of ours: nothing there may be overwritten."""
    if not out.is_dir() or (out / "run.json").is_file():
        return
    try:
        foreign = [name for name in os.listdir(out) if name not in _OUR_EARLY_FILES]
    except OSError as exc:
        raise UserError(f"cannot read --out {out}: {exc.strerror or exc}; choose a readable folder") from None
    if foreign:
        raise UserError(f"--out {out} is not empty and holds no DenseSynth run (no run.json; it has "
                        f"{len(foreign)} entr{'ies' if len(foreign) != 1 else 'y'}, e.g. {sorted(foreign)[0]}): "
                        "choose a new or empty folder")


class OutputLock:
    """An exclusive lock on an output folder (fcntl.flock on DIR/.densesynth.lock), held for a
    whole render or merge: a second run on the same folder refuses in one line, or waits."""

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK_NAME
        self.handle = None

    def acquire(self, wait: bool = False) -> None:
        import fcntl
        import socket

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as exc:
            raise UserError(f"cannot write to --out {self.path.parent}: {exc.strerror or exc}; "
                            "choose a writable folder") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{self.path.parent} is in use by another run ({holder}): wait for it to finish, "
                            "or pass --wait-lock to wait for it") from None
        except OSError as exc:
            handle.close()
            raise UserError(f"cannot lock --out {self.path.parent} ({exc.strerror or exc}): use a local folder or "
                            "one on a filesystem with locks") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            import fcntl

            try:
                self.handle.seek(0)
                self.handle.truncate()
                fcntl.flock(self.handle, fcntl.LOCK_UN)
            finally:
                self.handle.close()
                self.handle = None


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".densesynth_write_probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror or exc}; choose a writable folder") from None


def lock_out_folder(out: Path, wait: bool = False) -> OutputLock:
    """Check `out` (refused folders, writable), take its lock, and check it again: now that no
    other run can be creating it. The lock is held until released (or the process ends)."""
    check_out_folder(out)
    check_writable(out)
    lock = OutputLock(out)
    lock.acquire(wait=wait)
    try:
        check_out_folder(out)
    except BaseException:
        lock.release()
        raise
    return lock


def claim_run(out: Path, config_id: str, seed: int, plan: dict | None = None, allow_shrink: bool = False) -> None:
    """Tie the folder to one (config, seed): resuming is safe, mixing two runs is refused.

    `plan` ({"num_samples", "shard_size"}) is stored alongside for `status` and `merge`; it
    may change from run to run (more samples, other shards), the identity may not, and the
    sample count may only fall with `allow_shrink` (annotations.json would list fewer).
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
    before = (existing or {}).get("num_samples")
    wanted_count = (plan or {}).get("num_samples")
    if isinstance(before, int) and isinstance(wanted_count, int) and wanted_count < before and not allow_shrink:
        raise UserError(f"--num-samples {wanted_count} is fewer than the {before} samples of the run in {out}: "
                        f"annotations.json would shrink; pass --num-samples {before} (or more) to resume it, or "
                        "--allow-shrink to keep only the first ones")
    content = {**(existing or {}), **wanted, **(plan or {})}
    if content != existing:
        atomic_write_text(run_file, json.dumps(content, sort_keys=True) + "\n")


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


def check_options(args: argparse.Namespace, config: dict) -> None:
    """Options that contradict each other or the config: refused, never silently ignored."""
    if args.executor != "ray":
        for option, value in (("--address", args.address), ("--cpus-per-task", args.cpus_per_task != 1 or None),
                              ("--gpus-per-task", args.gpus_per_task != 0.0 or None)):
            if value is not None:
                raise UserError(f"{option} is for --executor ray; the local executor ignores it: add --executor ray "
                                f"or drop {option}")
    from .bodies.kinds import body_kind, body_kind_names

    kind = config["body"]["kind"]
    for other in body_kind_names():
        for dest in body_kind(other).options:
            if dest not in body_kind(kind).options and getattr(args, dest, None) is not None:
                option = "--" + dest.replace("_", "-")
                owner = body_kind(other).label or other
                raise UserError(f"{option} applies to {owner} bodies, but the body is {kind}: "
                                f"add --body {other} (or set body.kind: {other}) or drop {option}")
    if args.shards is not None and not args.shards.strip():
        raise UserError("--shards is empty: give shard numbers like 0,3-5, or leave --shards out for all")


@dataclass(frozen=True)
class Executors:
    """What renders the samples beyond this process. The package knows none of the farm's
    executors (it never imports `farm`): farm/render.py hands them in. Each executor is
    `(job, indices, args, progress) -> JobResult`. Without a pool, `--workers 1` renders in
    this process (the extension's case)."""

    pool: Callable[..., Any] | None = None
    ray: Callable[..., Any] | None = None
    check_ray_address: Callable[[str], None] | None = None


def check_executor(args: argparse.Namespace, executors: Executors) -> None:
    """Options that need an executor this install lacks: refused in one line."""
    if args.executor == "ray" and executors.ray is None:
        raise UserError("--executor ray needs the farm (farm/render.py in the repository) and Ray: run "
                        "farm/render.py --executor ray, with pip install 'ray>=2.40'")
    if args.workers > 1 and executors.pool is None:
        raise UserError(f"--workers {args.workers} needs the farm's worker pool (farm/render.py in the repository); "
                        "this install renders in one process: drop --workers or run farm/render.py")


_LOCK: OutputLock | None = None


def run(args: argparse.Namespace, executors: "Executors") -> int:
    from .config import config_hash, load_config

    global _LOCK
    args.out = resolve_out(args.out) if isinstance(args.out, str) else Path(os.path.abspath(args.out))
    overrides = {"render.resolution": list(args.resolution)} if args.resolution else {}
    for option, key in (("body", "body.kind"), ("smpl_dir", "body.smpl_dir"), ("gender", "body.gender")):
        if getattr(args, option, None) is not None:
            overrides[key] = str(Path(args.smpl_dir).expanduser().resolve()) if option == "smpl_dir" else getattr(args, option)
    config = load_config(args.config, overrides)
    check_options(args, config)
    check_executor(args, executors)
    if args.executor == "ray" and args.address:
        executors.check_ray_address(args.address)  # before anything is written, and without Ray's minutes of retries
    _LOCK = lock_out_folder(args.out, wait=getattr(args, "wait_lock", False))
    config_id = config_hash(config)
    if config["motion"]["clip_folders"]:  # the quality report is printed even with --quiet
        from .motion.catalogue import catalogue

        print(f"render.py: {catalogue(tuple(config['motion']['clips']), tuple(config['motion']['clip_folders'])).summary()}",
              file=sys.stderr)
    from .job.in_process import FarmError, Job, JobResult, run_in_process
    from .job.merge import MergeError, merge
    from .job.shards import (Identity, check_sample, num_shards, parse_shard_selection, remove_stale_temporaries,
                             shard_range)

    shard_count = num_shards(args.num_samples, args.shard_size)
    if args.shards is not None:
        try:
            selected = parse_shard_selection(args.shards, shard_count)
        except ValueError as exc:
            raise UserError(f"--shards {args.shards}: {exc}") from None
    else:
        selected = list(range(shard_count))
    claim_run(args.out, config_id, args.seed, {"num_samples": args.num_samples, "shard_size": args.shard_size},
              getattr(args, "allow_shrink", False))

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

    from .bodies.kinds import body_kind

    if todo:
        body_kind(config["body"]["kind"]).prepare()  # assets once here, not in every worker at the same time
    if todo or not (args.out / CHARTS_FILE).is_file():
        write_chart_surface(args.out / CHARTS_FILE, config["body"])  # what the trainer's (I, U, V) mean
    # One Cycles thread per worker when several share the machine: execution only, so the
    # config hash (the run's identity) is computed before and does not change.
    threads = args.cpus_per_task if args.executor == "ray" else (1 if args.workers > 1 else None)
    worker_config = config if threads is None else {**config, "render": {**config["render"], "threads": threads}}
    job = Job(worker_config, config_id, args.seed, args.out, args.debug_geometry)
    progress = Progress(len(todo), args.quiet)
    try:
        if not todo:
            result = JobResult()
        elif args.executor == "ray":
            result = executors.ray(job, todo, args, progress)
        elif args.workers == 0 or executors.pool is None:
            result = run_in_process(job, todo, args.retries, None, progress)
        else:
            result = executors.pool(job, todo, args, progress)
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
        merged = merge(args.out, args.num_samples, args.val_fraction, allow_shrink=getattr(args, "allow_shrink", False))
    except MergeError as exc:
        print(f"rendered {result.done} samples into {args.out}; not merged yet: {exc}")
        return 0
    print(f"wrote {merged.images} samples ({merged.annotations} people) to {args.out}; annotations: "
          f"{merged.paths['all']} (train {merged.split['train']}, val {merged.split['val']})")
    return 0


def main(argv: list[str], executors: Executors | None = None) -> int:
    """Run the render job on `argv` (the script's own arguments); returns the exit status.
    `executors`: the farm's (farm/render.py passes its pool and Ray); without them the
    samples render in this process, through the same job (the Blender extension)."""
    args = build_parser().parse_args(argv)

    global _LOCK
    try:
        return run(args, executors or Executors())
    except UserError as exc:
        print(f"render.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("render.py: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a folder removed under the run: the machine, not the code
        if exc.errno not in (28, 122, 30, 13, 5):  # ENOSPC, EDQUOT, EROFS, EACCES, EIO
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"render.py: error: {exc.strerror or exc}{where}: free some space or fix the folder, then run the "
              "same command again to resume", file=sys.stderr)
        return 2
    finally:
        if _LOCK is not None:
            _LOCK.release()
            _LOCK = None
