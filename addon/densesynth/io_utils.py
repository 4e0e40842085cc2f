"""Atomic file writes: a file either holds its complete new content or its old one.

A killed worker must never leave a half-written image or annotation file behind that a
later run would take for finished work.

Every temporary file is named ``.densesynth-tmp.<owner>.<pid>.<final name>``: a fixed
prefix no other program uses, the writer's *owner* (host name plus PID namespace, so two
machines or containers sharing an output folder never mistake each other's processes) and
its process id. Only the owner may judge whether the writer still runs; see
``densesynth.job.shards.remove_stale_temporaries`` for who deletes what, and when.
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path

TEMPORARY_PREFIX = ".densesynth-tmp."
_TEMPORARY = re.compile(r"^" + re.escape(TEMPORARY_PREFIX) + r"(?P<owner>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.")
_OWNER: str | None = None


def temporary_owner() -> str:
    """This process's owner token: host name and PID namespace, e.g. 'node7-4026531836'."""
    global _OWNER
    if _OWNER is None:
        host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-")[:48] or "host"
        try:
            namespace = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            namespace = "0"
        _OWNER = f"{host}-{namespace}"
    return _OWNER


def temporary_sibling(path: Path, pid: int | None = None, host: str | None = None) -> Path:
    """A temporary name next to `path` (same filesystem, so the final rename is atomic), ending
    in `path`'s own name so that writers choosing the format by extension still do."""
    path = Path(path)
    owner = temporary_owner() if host is None else re.sub(r"[^A-Za-z0-9-]+", "-", host)
    return path.with_name(f"{TEMPORARY_PREFIX}{owner}.{os.getpid() if pid is None else pid}.{path.name}")


def parse_temporary(name: str) -> tuple[str, int] | None:
    """(owner, pid) of one of our temporary names, None for any other name."""
    match = _TEMPORARY.match(name)
    return (match.group("owner"), int(match.group("pid"))) if match else None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial temporary behind
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_npz(path: Path, arrays: dict) -> None:
    """`np.savez_compressed` of `arrays` (no pickled objects) into `path`, atomically."""
    import numpy as np

    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
