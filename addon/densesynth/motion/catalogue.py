"""The motion a run draws from: built-in clips plus folders of converted clips.

Folders hold canonical `.npz` clips (`python -m farm.motion convert ...`). Each clip is
checked once per process with `motion_quality`, and samples draw their frame only among
frames that pass it: a sample never shows a frame where the retarget failed or the feet
sink into the floor. The skipped frames are counted and reported.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import UserError
from .builtin_clips import builtin_clip
from .clip import MotionClip, MotionFileError, load_clip
from .convert import motion_quality


@dataclass(frozen=True)
class FolderClip:
    folder: str
    name: str  # path relative to the folder
    ok_frames: tuple[int, ...]


@dataclass(frozen=True)
class Catalogue:
    builtin: tuple[str, ...]
    folder_clips: tuple[FolderClip, ...]
    frames: int
    skipped: dict

    def summary(self) -> str:
        detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.skipped.items() if k != "total")
        return (f"motion: {len(self.builtin)} built-in clips, {len(self.folder_clips)} clips from folders "
                f"({self.frames} frames; {self.skipped['total']} skipped by the quality filter: {detail})")


@lru_cache(maxsize=4)
def catalogue(builtin: tuple[str, ...], folders: tuple[str, ...]) -> Catalogue:
    clips: list[FolderClip] = []
    frames, skipped = 0, {"total": 0, "non_finite": 0, "too_fast": 0, "below_floor": 0, "calibration": 0}
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise UserError(f"motion clip folder '{folder}' does not exist: set motion.clip_folders to folders of "
                            "clips converted with `python -m farm.motion convert`")
        paths = sorted(root.rglob("*.npz"))
        if not paths:
            raise UserError(f"motion clip folder {root} holds no .npz clips: convert BVH/C3D files into it with "
                            "`python -m farm.motion convert IN --out {root}/NAME.npz`")
        for path in paths:
            quality = motion_quality(clip_by_spec("folder", str(path.relative_to(root)), folder))
            ok = tuple(int(i) for i in np.nonzero(quality["ok"])[0])
            frames += quality["frames"]
            skipped["total"] += quality["bad"]
            for key in ("non_finite", "too_fast", "below_floor", "calibration"):
                skipped[key] += quality[key]
            if ok:
                clips.append(FolderClip(folder, str(path.relative_to(root)), ok))
    if not builtin and not clips:
        raise UserError("no motion to draw from: list built-in clips in motion.clips or usable clips in "
                        "motion.clip_folders")
    return Catalogue(tuple(builtin), tuple(clips), frames, skipped)


@lru_cache(maxsize=64)
def clip_by_spec(source: str, name: str, folder: str = "") -> MotionClip:
    """The clip a spec names (cached per process)."""
    if source == "builtin":
        return builtin_clip(name)
    return load_clip(Path(folder).expanduser() / name)


def describe_clip(motion: dict) -> str:
    """'motion clip FILE at frame N' for a spec's motion entry (the file, not just its name)."""
    if motion.get("source", "builtin") == "builtin":
        where = f"built-in motion clip {motion.get('clip')!r}"
    else:
        where = f"motion clip {Path(motion.get('folder', '')).expanduser() / str(motion.get('clip'))}"
    if "frame" in motion:
        return f"{where} at frame {motion['frame']}"
    if "phase" in motion:
        try:
            clip = clip_by_spec(motion.get("source", "builtin"), motion["clip"], motion.get("folder", ""))
            frame = float(motion["phase"]) * (clip.num_frames - 1)
            return f"{where} at frame {frame:.1f} (phase {float(motion['phase']):.4f})"
        except Exception:  # noqa: BLE001 - the description must not fail
            return f"{where} at phase {motion['phase']}"
    return where


class ClipRenderError(MotionFileError):
    """An error while posing a person from a clip; the message names the clip file and frame."""


@contextmanager
def clip_errors(motion: dict) -> Iterator[None]:
    """Re-raise any error from posing a person with `motion` naming the clip file and frame."""
    try:
        yield
    except ClipRenderError:
        raise
    except Exception as exc:  # noqa: BLE001 - every error from a clip gets its name
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise ClipRenderError(f"{describe_clip(motion)}: {type(exc).__name__}: {message}") from exc
