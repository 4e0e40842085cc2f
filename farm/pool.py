"""A local pool of render worker processes, each with its own Blender (`bpy`) and renderer.

The parent never imports `bpy`. It hands out one sample at a time over a pipe (JSON lines),
so a slow sample never holds back others, and it watches every worker:

* a worker that exits, crashes (segfault, out of memory) or answers with an error is
  replaced, and its sample is retried (up to `retries` more attempts), then recorded in
  DIR/failed/<stem>.json with the reason and the tail of the worker's log;
* a sample that runs past `sample_timeout` seconds gets its worker killed (same path);
* a worker is retired and replaced after `max_samples_per_worker` samples, so memory that
  Blender or Python keep stays bounded.

Workers write their stderr (and Blender's stdout) to DIR/logs/worker-<slot>.log. Each
worker is `python -m farm.pool --worker` (or, inside a real Blender, that Blender binary
with `-b -P farm/pool.py -- --worker`) and dies with its parent (PR_SET_PDEATHSIG).

The Job, one sample's render and the in-process executor live in the package
(densesynth/job/in_process.py, with the DENSESYNTH_FARM_FAULT test hook), shared by every
executor.
"""
from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script (inside Blender: -P farm/pool.py)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farm.bootstrap import add_paths  # noqa: E402

add_paths()  # inside a real Blender the package is not on sys.path yet
from densesynth.job.in_process import FarmError, Job, JobResult, inject_fault, render_sample  # noqa: E402
from densesynth.job.shards import sample_stem, write_failure  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 900.0  # the first start may export the body (about a minute) or compile kernels
MAX_STARTUP_FAILURES = 3


# --- worker side ----------------------------------------------------------------------------
def worker_main() -> int:
    """Worker loop: first line = Job, then one {"index", "attempt"} per line; EOF = exit."""
    # Blender and Cycles print to fd 1; keep the protocol on a private copy of it.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:  # die with the parent, even when it is SIGKILLed
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    job_data = json.loads(sys.stdin.readline())
    job = Job(job_data["config"], job_data["config_id"], job_data["seed"], Path(job_data["out"]),
              job_data["debug_geometry"])
    from densesynth.errors import UserError
    from densesynth.pipeline import SampleRenderer

    try:
        renderer = SampleRenderer(job.config, job.config_id, job.seed, job.out, debug_geometry=job.debug_geometry)
    except UserError as exc:
        protocol.write(json.dumps({"user_error": str(exc)}) + "\n")
        return 1
    protocol.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        task = json.loads(line)
        index, attempt = task["index"], task["attempt"]
        started = time.perf_counter()
        try:
            inject_fault(index, attempt)
            record = render_sample(renderer, job, index)
        except UserError as exc:  # a user mistake (e.g. an unreadable asset): stops the run, no retry
            protocol.write(json.dumps({"index": index, "ok": False, "user_error": str(exc)}) + "\n")
            return 1
        except Exception as exc:  # reported, then this worker is replaced
            traceback.print_exc()
            protocol.write(json.dumps({"index": index, "ok": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
            return 1
        protocol.write(json.dumps({"index": index, "ok": True, "seconds": time.perf_counter() - started,
                                   "people": len(record["annotations"])}) + "\n")
    return 0


def worker_command() -> list[str]:
    from farm.bootstrap import running_inside_blender

    if running_inside_blender():
        import bpy

        return [bpy.app.binary_path, "-b", "--factory-startup", "-P", str(Path(__file__).resolve()), "--", "--worker"]
    return [sys.executable, "-m", "farm.pool", "--worker"]


# --- parent side ----------------------------------------------------------------------------
@dataclass
class PoolOptions:
    workers: int = 2
    max_samples_per_worker: int = 500
    sample_timeout: float = 900.0
    retries: int = 2


class _Worker:
    def __init__(self, slot: int, job: Job, log_dir: Path):
        self.slot = slot
        self.log_path = log_dir / f"worker-{slot}.log"
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        paths = [str(REPO_ROOT), str(REPO_ROOT / "addon")]
        env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        threads = job.config["render"].get("threads") or 0
        if threads:
            # Workers share the machine: NumPy's BLAS, OpenMP and the denoiser (OpenImageDenoise)
            # would otherwise start a thread per core in every worker and spin against each
            # other (measured: 1.36x with 2 workers instead of 1.71x).
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OIDN_NUM_THREADS"):
                env.setdefault(name, str(threads))
        self.proc = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     env=env, cwd=str(REPO_ROOT))
        log.close()
        self.buffer = b""
        self.ready = False
        self.task: tuple[int, int] | None = None  # (index, attempt)
        self.deadline = time.monotonic() + STARTUP_TIMEOUT_S
        self.samples = 0
        self.send(job.to_json())

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died; EOF on its stdout reports that

    def messages(self) -> list[dict[str, Any]] | None:
        """Read what is there; None at EOF (the worker is gone)."""
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            return None
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        messages = []
        for line in lines:  # a Blender binary prints its banner before the worker owns fd 1
            try:
                message = json.loads(line) if line.startswith(b"{") else None
            except ValueError:
                message = None
            if isinstance(message, dict):
                messages.append(message)
        return messages

    def log_tail(self, lines: int = 3) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self.log_offset)
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail)

    def stop(self, kill: bool) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def exit_reason(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "worker stopped answering"
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        tail = self.log_tail()
        return f"worker {how}" + (f": {tail}" if tail else "")


def run_pool(job: Job, indices: list[int], options: PoolOptions,
             on_progress: Callable[[JobResult], None] | None = None) -> JobResult:
    """Render `indices` with `options.workers` worker processes; returns counts and failures."""
    result = JobResult()
    log_dir = job.out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    pending: collections.deque[tuple[int, int]] = collections.deque((i, 1) for i in indices)
    workers: dict[int, _Worker] = {}
    selector = selectors.DefaultSelector()
    startup_failures = 0

    def retire(worker: _Worker, kill: bool) -> None:
        selector.unregister(worker.proc.stdout)
        del workers[worker.slot]
        worker.stop(kill)

    def attempt_failed(index: int, attempt: int, reason: str) -> None:
        reason = " ".join(reason.split())
        if attempt <= options.retries:
            pending.appendleft((index, attempt + 1))
            return
        write_failure(job.out, job.identity, index, attempt, reason)
        result.failed[index] = reason
        if on_progress:
            on_progress(result)
        if result.done == 0 and len(result.failed) >= 3:
            raise FarmError(f"the first {len(result.failed)} samples all failed, stopping; last reason: {reason}")

    try:
        while pending or any(w.task for w in workers.values()):
            busy = sum(1 for w in workers.values() if w.task)
            wanted = min(options.workers, busy + len(pending))
            for slot in range(options.workers):
                if len(workers) >= wanted:
                    break
                if slot not in workers:
                    worker = _Worker(slot, job, log_dir)
                    workers[slot] = worker
                    selector.register(worker.proc.stdout, selectors.EVENT_READ, worker)
            for worker in workers.values():
                if worker.ready and worker.task is None and pending:
                    worker.task = pending.popleft()
                    worker.deadline = time.monotonic() + options.sample_timeout
                    worker.send({"index": worker.task[0], "attempt": worker.task[1]})
            timeout = max(0.0, min([w.deadline for w in workers.values()] or [time.monotonic() + 1]) - time.monotonic())
            for key, _ in selector.select(timeout=min(timeout, 1.0)):
                worker = key.data
                if worker.slot not in workers:
                    continue
                messages = worker.messages()
                if messages is None:  # the worker is gone
                    worker.proc.wait()
                    reason = worker.exit_reason()
                    task = worker.task
                    retire(worker, kill=True)
                    result.restarts += 1
                    if task is not None:
                        attempt_failed(*task, reason)
                    elif not worker.ready:
                        startup_failures += 1
                        if startup_failures >= MAX_STARTUP_FAILURES:
                            raise FarmError(f"render workers fail to start ({reason}); see {worker.log_path}")
                    continue
                for message in messages:
                    if "user_error" in message:
                        from densesynth.errors import UserError

                        raise UserError(message["user_error"])
                    if "ready" in message:
                        worker.ready, startup_failures = True, 0
                        continue
                    index, attempt = worker.task
                    worker.task = None
                    if message.get("ok"):
                        result.done += 1
                        result.people += message.get("people", 0)
                        worker.samples += 1
                        if on_progress:
                            on_progress(result)
                        if worker.samples >= options.max_samples_per_worker:
                            retire(worker, kill=False)
                            break
                    else:
                        tail = worker.log_tail()
                        retire(worker, kill=True)
                        result.restarts += 1
                        attempt_failed(index, attempt, message.get("error", "error") + (f" ({tail})" if tail else ""))
                        break
            now = time.monotonic()
            for worker in [w for w in workers.values() if w.deadline < now and (w.task or not w.ready)]:
                task = worker.task
                retire(worker, kill=True)
                result.restarts += 1
                if task is not None:
                    attempt_failed(*task, f"sample {sample_stem(task[0])} ran past --sample-timeout "
                                          f"{options.sample_timeout:g} s; worker killed")
                else:
                    startup_failures += 1
                    if startup_failures >= MAX_STARTUP_FAILURES:
                        raise FarmError(f"render workers do not start within {STARTUP_TIMEOUT_S:g} s; "
                                        f"see {worker.log_path}")
    finally:
        for worker in list(workers.values()):
            worker.stop(kill=True)
        selector.close()
    return result


if __name__ == "__main__":
    if "--worker" in sys.argv:
        sys.exit(worker_main())
    print("farm/pool.py is started by the render command (--workers N); it is not a command", file=sys.stderr)
    sys.exit(2)
