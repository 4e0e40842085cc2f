"""The farm's executors, handed to the package's render job (`densesynth.cli.main`).

The package never imports `farm`; the farm's command lines (farm/render.py, `python -m farm
render`) give the job its local pool and Ray executors through `farm_executors()`.
"""
from __future__ import annotations

import argparse
import importlib.util
from typing import Callable

from densesynth.cli import Executors
from densesynth.errors import UserError
from densesynth.job.in_process import Job, JobResult


def _pool(job: Job, indices: list[int], args: argparse.Namespace, progress: Callable[[JobResult], None]) -> JobResult:
    from farm.pool import PoolOptions, run_pool

    options = PoolOptions(args.workers, args.max_samples_per_worker, args.sample_timeout, args.retries)
    return run_pool(job, indices, options, progress)


def _ray(job: Job, indices: list[int], args: argparse.Namespace, progress: Callable[[JobResult], None]) -> JobResult:
    _need_ray()
    from farm.ray_executor import run_ray

    return run_ray(job, indices, args.shard_size, args.address, args.cpus_per_task, args.gpus_per_task,
                   args.retries, progress)


def _check_ray_address(address: str) -> None:
    from farm.ray_executor import check_address

    check_address(address)


def _need_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        raise UserError("--executor ray needs Ray: pip install 'ray>=2.40'")


def farm_executors() -> Executors:
    return Executors(pool=_pool, ray=_ray, check_ray_address=_check_ray_address)

