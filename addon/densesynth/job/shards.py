"""Shards, sample identity and the on-disk state of every sample (done, failed, to do).

A sample's identity is (config hash, run seed, index): its files depend on nothing else,
so a sample (and a shard, a contiguous block of `shard_size` indices) can be rendered
anywhere, in any order, any number of times, and gives the same files.

State lives in the output folder alone, so that `status`, `merge` and a resumed run need
nothing but the folder:

  DIR/run.json            {"config_hash", "seed"} (the folder's identity) and the latest plan
                          {"num_samples", "shard_size"}
  DIR/done/<stem>.json    the completion manifest, written after every other file of the
                          sample: identity plus size, SHA-256 and mtime of each file
  DIR/failed/<stem>.json  a sample that failed every attempt, with the reason

A sample is *done* when its manifest parses, names this folder's identity, and every file
it lists still has its recorded size and content. Content is checked cheaply by default:
a file whose size and mtime are unchanged is trusted; any other file is re-hashed (so a
copied folder costs one re-hash, a rewritten or truncated file is caught). `verify=True`
re-hashes every file. A record without a manifest (killed between the two, or written by
an older version) is not done: the sample is rendered again, which gives the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

DONE_DIR = "done"
FAILED_DIR = "failed"
MANIFEST_VERSION = 1
DEFAULT_SHARD_SIZE = 8
MAX_SAMPLES = 10**8  # sample stems stay 8 digits (sorted by name = sorted by index)


def sample_stem(index: int) -> str:
    """The zero-padded file stem of sample `index` (the same rule as the spec's `stem`)."""
    return f"{index:08d}"


# --- shards -------------------------------------------------------------------------------
def num_shards(num_samples: int, shard_size: int) -> int:
    return (num_samples + shard_size - 1) // shard_size


def shard_range(shard: int, num_samples: int, shard_size: int) -> range:
    """Indices of shard `shard`: [shard * shard_size, min(N, (shard + 1) * shard_size))."""
    return range(shard * shard_size, min(num_samples, (shard + 1) * shard_size))


def shard_ranges(num_samples: int, shard_size: int) -> list[range]:
    return [shard_range(s, num_samples, shard_size) for s in range(num_shards(num_samples, shard_size))]


def parse_shard_selection(text: str, count: int) -> list[int]:
    """'0,3-5' -> [0, 3, 4, 5]; ValueError naming the problem when a shard is outside 0..count-1."""
    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                low, high = (int(v) for v in part.split("-", 1))
            else:
                low = high = int(part)
        except ValueError:
            raise ValueError(f"'{part}' is not a shard number or range like 3-5") from None
        if low > high or low < 0 or high >= count:
            raise ValueError(f"shard '{part}' is outside 0..{count - 1} ({count} shards)")
        chosen.update(range(low, high + 1))
    if not chosen:
        raise ValueError("no shard selected")
    return sorted(chosen)


# --- run.json -----------------------------------------------------------------------------
def read_run(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(out) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RunFileError(ValueError):
    """DIR/run.json is missing or does not describe a run (one line for the user)."""


def read_run_checked(out: Path, need_plan: bool = True) -> dict[str, Any]:
    """run.json with its fields checked: config_hash (text), seed (whole number) and, with
    `need_plan`, num_samples and shard_size (whole numbers >= 1); RunFileError otherwise."""
    path = Path(out) / "run.json"
    run = read_run(out)
    if run is None:
        raise RunFileError(f"{out} holds no render run (no readable {path}): render into it first")
    problems = []
    if not isinstance(run.get("config_hash"), str) or not run.get("config_hash"):
        problems.append("config_hash")
    if not isinstance(run.get("seed"), int) or isinstance(run.get("seed"), bool):
        problems.append("seed")
    plan = {"num_samples": run.get("num_samples"), "shard_size": run.get("shard_size", DEFAULT_SHARD_SIZE)}
    if need_plan:
        problems += [k for k, v in plan.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if problems:
        raise RunFileError(f"{path} has no valid {', '.join(problems)}: it was not written by this renderer or "
                           "is damaged; run the render command on the folder again (same --config and --seed)")
    return run


@dataclass(frozen=True)
class Identity:
    config_hash: str
    seed: int

    def of(self, index: int) -> dict[str, Any]:
        return {"config_hash": self.config_hash, "seed": self.seed, "index": index}


# --- per-sample state ---------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(out: Path, stem: str) -> Path:
    return Path(out) / DONE_DIR / f"{stem}.json"


def failed_path(out: Path, stem: str) -> Path:
    return Path(out) / FAILED_DIR / f"{stem}.json"


def sample_files(out: Path, stem: str, record: dict[str, Any]) -> list[str]:
    """The files one finished sample owns, relative to DIR, records/<stem>.json last: the
    image the record names, and every `<folder>/<stem><ext>` a registered pass (or the
    pipeline: specs/, records/, geometry/) may write and that is there. Used when the renderer
    gave no list; probes names, never lists a folder, so the cost per sample does not grow
    with the run."""
    from densesynth.passes import sample_file_candidates

    out = Path(out)
    names = {f"images/{record['image']['file_name']}"}
    for folder, extension in sample_file_candidates():
        if folder != "images" and (out / folder / f"{stem}{extension}").is_file():
            names.add(f"{folder}/{stem}{extension}")
    record_name = f"records/{stem}.json"
    names.discard(record_name)
    return sorted(names) + [record_name]


def write_manifest(out: Path, identity: Identity, index: int, record: dict[str, Any],
                   files: list[str] | None = None) -> Path:
    """Mark sample `index` done: called after the pipeline wrote every file (record last).
    `files`: what the renderer says it wrote (SampleRenderer.files, from its passes); without
    it, what `sample_files` finds."""
    from densesynth.io_utils import atomic_write_text

    out = Path(out)
    stem = sample_stem(index)
    record_name = f"records/{stem}.json"
    names = sample_files(out, stem, record) if files is None else sorted(set(files) - {record_name}) + [record_name]
    manifest_files = {}
    for name in names:
        stat = (out / name).stat()
        manifest_files[name] = {"size": stat.st_size, "sha256": _sha256(out / name), "mtime_ns": stat.st_mtime_ns}
    manifest = {"version": MANIFEST_VERSION, "stem": stem, **identity.of(index), "files": manifest_files}
    path = manifest_path(out, stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(manifest, sort_keys=True, indent=1) + "\n")
    failed = failed_path(out, stem)
    if failed.exists():
        failed.unlink()
    return path


@dataclass(frozen=True)
class SampleState:
    status: str  # "done" | "failed" | "todo" | "corrupt"
    reason: str = ""


def check_sample(out: Path, identity: Identity | None, index: int, verify: bool = False) -> SampleState:
    """What sample `index` of the folder needs: nothing (done), a retry (failed), a render
    (todo), or a re-render because a file changed since it was finished (corrupt)."""
    out = Path(out)
    stem = sample_stem(index)
    path = manifest_path(out, stem)
    try:
        text = path.read_text()
    except FileNotFoundError:
        if failed_path(out, stem).is_file():
            return SampleState("failed", _failed_reason(out, stem))
        return SampleState("todo")
    except OSError as exc:
        return SampleState("corrupt", f"{path.name}: {exc}")
    try:
        manifest = json.loads(text)
    except ValueError:
        manifest = None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (not isinstance(files, dict) or not files or manifest.get("index") != index
            or not all(isinstance(want, dict) for want in files.values())):
        return SampleState("corrupt", f"done/{stem}.json is not a valid manifest")
    if identity is not None and (manifest.get("config_hash"), manifest.get("seed")) != (identity.config_hash, identity.seed):
        return SampleState("corrupt", f"done/{stem}.json belongs to another run")
    for name, want in files.items():
        if not isinstance(name, str) or os.path.isabs(name) or ".." in Path(name).parts:
            return SampleState("corrupt", f"done/{stem}.json names a file outside the folder")
        file = out / name
        try:
            stat = file.stat()
        except OSError:
            return SampleState("corrupt", f"{name} is missing")
        if stat.st_size != want.get("size"):
            return SampleState("corrupt", f"{name} has {stat.st_size} bytes, {want.get('size')} expected")
        if verify or stat.st_mtime_ns != want.get("mtime_ns"):
            if _sha256(file) != want.get("sha256"):
                return SampleState("corrupt", f"{name} changed since it was written (checksum)")
    return SampleState("done")


def _failed_reason(out: Path, stem: str) -> str:
    try:
        return str(json.loads(failed_path(out, stem).read_text()).get("reason", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def forget_sample(out: Path, index: int) -> None:
    """Drop a sample's completion mark (before rendering it again)."""
    path = manifest_path(out, sample_stem(index))
    if path.exists():
        path.unlink()


def write_failure(out: Path, identity: Identity, index: int, attempts: int, reason: str) -> Path:
    from densesynth.io_utils import atomic_write_text

    stem = sample_stem(index)
    path = failed_path(out, stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"stem": stem, **identity.of(index), "attempts": attempts, "reason": reason}
    atomic_write_text(path, json.dumps(body, sort_keys=True, indent=1) + "\n")
    return path


def states(out: Path, identity: Identity | None, indices: Iterable[int], verify: bool = False) -> dict[int, SampleState]:
    return {i: check_sample(out, identity, i, verify) for i in indices}


# Another machine's (or PID namespace's) temporaries cannot be judged by pid: they are left
# alone for this long after their last write, then taken for the leftovers of a dead writer.
FOREIGN_TEMPORARY_TIMEOUT_S = 24 * 3600.0


def remove_stale_temporaries(out: Path, foreign_timeout_s: float = FOREIGN_TEMPORARY_TIMEOUT_S) -> int:
    """Delete our temporary files (io_utils.temporary_sibling: prefix, owner, pid) left by
    killed writers, in the run's own folders only (DIR itself, the folders the registered passes
    and the pipeline write into, and the farm's):
    one of this owner (host and PID namespace) whose pid no longer runs, or one of another
    owner untouched for `foreign_timeout_s`. Nothing else is ever deleted. Returns how many."""
    from densesynth.io_utils import parse_temporary, temporary_owner
    from densesynth.passes import run_folders

    removed = 0
    out = Path(out)
    if not (out / "run.json").is_file():
        return 0  # not (yet) a folder of ours
    me = temporary_owner()
    now = time.time()
    for folder in [out, *(out / name for name in [*run_folders(), DONE_DIR, FAILED_DIR, "logs"])]:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            parsed = parse_temporary(entry.name)
            if parsed is None or not entry.is_file(follow_symlinks=False):
                continue
            owner, pid = parsed
            if owner == me:
                if _pid_alive(pid):
                    continue  # still running (ours or a concurrent run): leave it
            else:
                try:
                    if now - entry.stat(follow_symlinks=False).st_mtime < foreign_timeout_s:
                        continue
                except OSError:
                    continue
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, killed but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True
