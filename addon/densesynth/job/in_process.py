"""The Job every executor runs, one sample rendered and marked done, and the in-process executor.

The farm's pool and Ray executors (farm/) render the same samples through `render_sample`
in their workers; `run_in_process` renders them in the calling process (`--workers 0`, and
the Blender extension, which has no farm). Whatever renders a sample, the folder ends the
same: its files, then its `done/` marker.

Test hook: DENSESYNTH_FARM_FAULT="crash@3,hang@5#1,error@7" makes the renderer crash, hang or
raise at sample 3, 5, 7 (`#K`: only on the first K attempts).
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .shards import Identity, forget_sample, write_failure, write_manifest


class FarmError(Exception):
    """The run cannot go on (workers do not start, every sample fails): one line for the user."""


@dataclass
class Job:
    """What every worker needs to build its renderer; sent as the first line to a worker."""

    config: dict[str, Any]
    config_id: str
    seed: int
    out: Path
    debug_geometry: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "config_id": self.config_id, "seed": self.seed,
                "out": str(self.out), "debug_geometry": self.debug_geometry}

    @property
    def identity(self) -> Identity:
        return Identity(self.config_id, self.seed)


@dataclass
class JobResult:
    """What an executor did: samples done, samples failed (index -> reason), people, restarts."""

    done: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    people: int = 0
    restarts: int = 0


def render_sample(renderer: Any, job: Job, index: int) -> dict[str, Any]:
    """Render sample `index` and mark it done; returns the pipeline's record."""
    forget_sample(job.out, index)
    record = renderer.render(renderer.draw_spec(index))
    write_manifest(job.out, job.identity, index, record, renderer.files)
    return record


def inject_fault(index: int, attempt: int) -> None:
    """The DENSESYNTH_FARM_FAULT test hook (see the module docstring)."""
    for item in filter(None, os.environ.get("DENSESYNTH_FARM_FAULT", "").split(",")):
        kind, _, where = item.partition("@")
        target, _, limit = where.partition("#")
        if int(target) != index or (limit and attempt > int(limit)):
            continue
        if kind == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "hang":
            time.sleep(10**6)
        elif kind == "error":
            raise RuntimeError(f"injected error at sample {index}")


def run_in_process(job: Job, indices: list[int], retries: int, threads: int | None,
                   on_progress: Callable[[JobResult], None] | None = None) -> JobResult:
    """Render `indices` here, in this process (no isolation against crashes or hangs)."""
    from ..errors import UserError
    from ..pipeline import SampleRenderer

    result = JobResult()
    config = job.config if threads is None else {**job.config, "render": {**job.config["render"], "threads": threads}}
    renderer = SampleRenderer(config, job.config_id, job.seed, job.out, debug_geometry=job.debug_geometry)
    for index in indices:
        for attempt in range(1, retries + 2):
            try:
                inject_fault(index, attempt)
                record = render_sample(renderer, job, index)
            except UserError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if attempt > retries:
                    write_failure(job.out, job.identity, index, attempt, reason)
                    result.failed[index] = reason
                continue
            result.done += 1
            result.people += len(record["annotations"])
            break
        if on_progress:
            on_progress(result)
    return result
