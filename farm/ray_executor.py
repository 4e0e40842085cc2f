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


def _render_shard(job_json: dict[str, Any], indices: list[int]) -> list[tuple[int, bool, Any]]:
    """Runs in a Ray worker: one renderer for the shard, then its samples in order."""
    for path in (str(REPO), str(REPO / "addon")):
        if path not in sys.path:
            sys.path.insert(0, path)
    from densesynth.errors import UserError
    from densesynth.pipeline import SampleRenderer
    from farm.pool import Job, render_sample

    job = Job(job_json["config"], job_json["config_id"], job_json["seed"], Path(job_json["out"]),
              job_json["debug_geometry"])
    renderer = SampleRenderer(job.config, job.config_id, job.seed, job.out, debug_geometry=job.debug_geometry)
    outcome = []
    for index in indices:
        try:
            record = render_sample(renderer, job, index)
            outcome.append((index, True, len(record["annotations"])))
        except UserError as exc:
            outcome.append((index, False, f"user: {exc}"))
        except Exception as exc:  # a sample's failure is recorded; the shard goes on
            outcome.append((index, False, f"{type(exc).__name__}: {exc}"))
    return outcome


def _thread_limits(threads: int) -> dict[str, str]:
    """Keep each task's math libraries and denoiser to its own CPUs (see farm/pool.py)."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                            "OIDN_NUM_THREADS")}


def run_ray(job, indices: list[int], shard_size: int, address: str | None, cpus_per_task: int,
            gpus_per_task: float, retries: int, on_progress: Callable | None = None):
    """Render `indices` as one Ray task per shard; returns the pool's kind of result."""
    import ray

    from densesynth.errors import UserError
    from farm.pool import PoolResult
    from farm.shards import write_failure

    python_path = os.pathsep.join([str(REPO), str(REPO / "addon"), os.environ.get("PYTHONPATH", "")])
    ray.init(address=address or None, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": python_path, **_thread_limits(cpus_per_task)}})
    render_shard = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=retries,
                              max_calls=1)(_render_shard)
    shards: dict[int, list[int]] = defaultdict(list)
    for index in indices:
        shards[index // shard_size].append(index)
    pending = {render_shard.remote(job.to_json(), shard): shard for shard in shards.values()}
    result = PoolResult()
    user_error = None
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            shard = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the task's worker died every time it was tried
                reason = f"Ray task failed: {str(exc).splitlines()[0]}"
                outcome = [(index, False, reason) for index in shard]
            for index, ok, detail in outcome:
                if ok:
                    result.done += 1
                    result.people += detail
                elif str(detail).startswith("user: "):
                    user_error = str(detail)[len("user: "):]
                else:
                    write_failure(job.out, job.identity, index, retries + 1, detail)
                    result.failed[index] = detail
        if on_progress:
            on_progress(result)
    if user_error:
        raise UserError(user_error)
    return result
