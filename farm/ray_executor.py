"""Shards as Ray tasks: the same samples, the same files, on a Ray cluster or a local instance.

No home-made scheduler: Ray places each shard task on a node with the CPUs (and GPUs) it
asks for, re-runs tasks whose worker process died (`max_retries`), and starts every task in
a fresh worker process (`max_calls=1`), so Blender's memory never accumulates across
shards. Tasks write straight into the output folder, which must therefore be a path every
node sees (a shared filesystem); finished samples carry the same `done/` markers as with the
local pool, so `status`, resume and `merge` work unchanged.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]


LOCK_NAME = ".densesynth.lock"  # densesynth.cli.OutputLock's file in --out


def _lock_line(out: Path) -> str | None:
    """What --out's lock file says (the holder's "pid N on HOST" line; empty once released),
    or None when there is none to read."""
    try:
        return (Path(out) / LOCK_NAME).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _taken_over(out: Path, holder: str | None) -> bool:
    """True when --out's lock no longer names `holder` (another run holds it, or nobody).
    Checked on the driver's own machine only (holder ends in "on HOST"): a node that sees
    --out over a network filesystem may read a stale lock file, and there Ray itself ends
    the tasks of a driver that died."""
    import socket

    if not holder or not holder.endswith(f" on {socket.gethostname()}"):
        return False
    return _lock_line(out) not in (holder, None)


def _render_shard(job_json: dict[str, Any], indices: list[int], retries: int = 0,
                  holder: str | None = None) -> list[tuple[int, bool, Any, int]]:
    """Runs in a Ray worker: one renderer for the shard, then its samples in order, each
    tried up to `retries` more times when it raises (as the local pool does); returns
    (index, ok, people or reason, attempts) per sample.

    holder: the driver's line in --out's lock file. Ray's workers sit in process groups of
    their own, so a SIGKILL of the driver's group leaves them rendering (for the rest of
    their shard); before each sample the task checks that the folder's lock still names its
    driver, and once another run holds it (a resumed run) or nobody does, it stops instead
    of racing with that run (see `_taken_over`). The remaining samples come back as not
    rendered."""
    for path in (str(REPO), str(REPO / "addon")):
        if path not in sys.path:
            sys.path.insert(0, path)
    if _taken_over(Path(job_json["out"]), holder):
        return [(index, False, "not rendered: --out is no longer held by this run", 0) for index in indices]
    from densesynth.errors import UserError
    from densesynth.pipeline import SampleRenderer
    from densesynth.job.in_process import Job, inject_fault, render_sample

    job = Job(job_json["config"], job_json["config_id"], job_json["seed"], Path(job_json["out"]),
              job_json["debug_geometry"])
    renderer = SampleRenderer(job.config, job.config_id, job.seed, job.out, debug_geometry=job.debug_geometry)
    outcome = []
    for position, index in enumerate(indices):
        if position and _taken_over(job.out, holder):
            outcome += [(i, False, "not rendered: --out is no longer held by this run", 0) for i in indices[position:]]
            return outcome
        for attempt in range(1, retries + 2):
            try:
                inject_fault(index, attempt)
                record = render_sample(renderer, job, index)
                outcome.append((index, True, len(record["annotations"]), attempt))
                break
            except UserError as exc:
                outcome.append((index, False, f"user: {exc}", attempt))
                return outcome
            except Exception as exc:  # retried, then recorded; the shard goes on
                if attempt > retries:
                    outcome.append((index, False, f"{type(exc).__name__}: {exc}", attempt))
    return outcome


RAY_CONNECT_TIMEOUT_S = 10.0


def check_address(address: str) -> None:
    """Fail fast, in one line, on a Ray address that is malformed or does not answer
    (Ray itself retries for minutes); 'auto' and 'local' are left to Ray."""
    import socket

    from densesynth.errors import UserError

    text = address.strip()
    if text in ("auto", "local"):
        return
    hostport = text.split("://", 1)[1] if "://" in text else text
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address {address} is not a Ray address: use HOST:PORT (e.g. 10.0.0.5:6379), "
                        "ray://HOST:10001, or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise UserError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start it with "
                        "'ray start --head' or fix the address") from None


def _thread_limits(threads: int) -> dict[str, str]:
    """Keep each task's math libraries and denoiser to its own CPUs (see farm/pool.py)."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                            "OIDN_NUM_THREADS")}


def run_ray(job, indices: list[int], shard_size: int, address: str | None, cpus_per_task: int,
            gpus_per_task: float, retries: int, on_progress: Callable | None = None):
    """Render `indices` as one Ray task per shard; returns the pool's kind of result."""
    import ray

    from densesynth.errors import UserError
    from densesynth.job.in_process import JobResult
    from densesynth.job.shards import write_failure

    if address:
        check_address(address)
    python_path = os.pathsep.join([str(REPO), str(REPO / "addon"), os.environ.get("PYTHONPATH", "")])
    ray.init(address=address or None, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": python_path, **_thread_limits(cpus_per_task)}})
    # Ray re-runs a task whose worker process died (max_retries); a sample that raised is
    # retried inside the task, so both count against --retries as with the local pool.
    render_shard = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=retries,
                              max_calls=1)(_render_shard)
    shards: dict[int, list[int]] = defaultdict(list)
    for index in indices:
        shards[index // shard_size].append(index)
    holder = _lock_line(job.out) or None  # this run's lock line (None: the caller holds no lock)
    pending = {render_shard.remote(job.to_json(), shard, retries, holder): shard for shard in shards.values()}
    result = JobResult()
    user_error = None
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            shard = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the task's worker died every time it was tried
                reason = f"Ray task failed: {str(exc).splitlines()[0]}"
                outcome = [(index, False, reason, retries + 1) for index in shard]
            for index, ok, detail, attempts in outcome:
                if ok:
                    result.done += 1
                    result.people += detail
                elif str(detail).startswith("user: "):
                    user_error = str(detail)[len("user: "):]
                else:
                    write_failure(job.out, job.identity, index, attempts, detail)
                    result.failed[index] = detail
        if on_progress:
            on_progress(result)
    if user_error:
        raise UserError(user_error)
    return result
