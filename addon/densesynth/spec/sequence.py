"""Sequences of frames (`sequence.length: N` > 1): what differs between the frames of a clip.

Samples N*g .. N*g+N-1 are frames 0..N-1 of sequence g. Every frame draws its people, shape,
clothing, lights, backdrop, base camera and look (harmonisation, occluders, lens) from the
sequence's seed (spec/groups.py), so they agree; only two things move:

* the motion: the person's drawn clip position is the sequence's *start*, chosen so that the
  whole sequence fits in the clip, and frame k shows the clip `k * frame_step` clip frames
  later (at the clip's own frame rate). Each motion records its frame's `phase` (built-in
  clips) or `frame` (converted clips) as before, which is all `pose_person` reads, plus the
  sequence's start (`start_phase` / `start_frame`): the split groups a sequence by it;
* the camera: fitted once, on the first frame, then carried along a path drawn per sequence
  (`fixed`, or `moving`: an orbit about the aim point, a pan about the camera and a dolly
  along the line of sight, each linear in the frame number from 0 at frame 0 to the drawn
  total at frame N-1). The path, with its start, is recorded in `spec["sequence"]`.

Each frame stays its own sample with its own spec, renderable alone and in any order: frame
k's spec depends only on (run seed, index), never on another frame having been drawn.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from .draws import DIGITS, Draws
from .seeds import stream

CAMERA_PATHS = ("fixed", "moving")


@dataclass(frozen=True)
class FrameTiming:
    """Frame `position` of a sequence of `length` frames, `step` clip frames apart."""

    position: int
    length: int
    step: int

    @property
    def span(self) -> int:
        """Clip frames from the first frame of the sequence to its last."""
        return (self.length - 1) * self.step


def _clip(motion: dict[str, Any]):
    from ..motion.catalogue import clip_by_spec

    return clip_by_spec(motion.get("source", "builtin"), motion["clip"], motion.get("folder", ""))


def builtin_at_frame(motion: dict[str, Any], frame: FrameTiming) -> dict[str, Any]:
    """A built-in clip's drawn phase u in [0, 1] places the sequence's start in the part of the
    clip that leaves room for the whole sequence; the frame's phase follows (clamped to the
    clip's last frame when the clip is shorter than the sequence)."""
    last = _clip(motion).num_frames - 1
    if last <= 0:
        return {**motion, "phase": 0.0, "start_phase": 0.0}
    start = float(motion["phase"]) * max(last - frame.span, 0)
    here = min(start + frame.position * frame.step, float(last))
    return {**motion, "phase": here / last, "start_phase": start / last}


def sequence_start_frames(clip: Any, frame: FrameTiming) -> tuple[int, ...]:
    """A converted clip's frames that passed the quality filter and leave room for the whole
    sequence (all of them when none does: the sequence then holds on the last frame)."""
    last = _clip({"source": "folder", "clip": clip.name, "folder": clip.folder}).num_frames - 1
    fitting = tuple(f for f in clip.ok_frames if f + frame.span <= last)
    return fitting or tuple(clip.ok_frames)


def folder_at_frame(motion: dict[str, Any], frame: FrameTiming) -> dict[str, Any]:
    last = _clip(motion).num_frames - 1
    start = int(motion["frame"])
    return {**motion, "frame": min(start + frame.position * frame.step, last), "start_frame": start}


def draw_sequence(cfg: dict[str, Any], seed: int, index: int, frame: FrameTiming) -> dict[str, Any]:
    """What `spec["sequence"]` records (the path's `start` is added once the camera is fitted)."""
    d = Draws(stream(seed, "sequence/camera_path"))
    path: dict[str, Any] = {"kind": cfg["camera_path"]}
    if cfg["camera_path"] == "moving":
        path.update(orbit_deg=d.uniform(cfg["orbit_deg"]), pan_deg=d.uniform(cfg["pan_deg"]),
                    dolly_fraction=d.uniform(cfg["dolly_fraction"]))
    return {"id": index // frame.length, "frame": frame.position, "length": frame.length,
            "frame_step": frame.step, "seed": seed, "camera_path": path}


def first_frame_persons(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The persons of the sequence's first frame (what its camera is fitted on)."""
    persons = copy.deepcopy(spec["persons"])
    for person in persons:
        motion = person["motion"]
        if "start_phase" in motion:
            motion["phase"] = motion["start_phase"]
        if "start_frame" in motion:
            motion["frame"] = motion["start_frame"]
    return persons


def _turn(point: np.ndarray, centre: np.ndarray, degrees: float) -> np.ndarray:
    """`point` turned about the vertical axis through `centre` (Z up, counter-clockwise)."""
    a = np.deg2rad(degrees)
    rotation = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return centre + rotation @ (point - centre)


def camera_on_path(path: dict[str, Any], position: int, length: int) -> dict[str, Any]:
    """The fitted camera of frame `position`: the path's start moved by `position / (length - 1)`
    of the drawn orbit, dolly and pan (the start itself for a fixed path and for frame 0)."""
    start = path["start"]
    if path["kind"] == "fixed" or position == 0:
        return copy.deepcopy(start)
    s = position / (length - 1)
    eye, target = np.asarray(start["eye"], dtype=float), np.asarray(start["target"], dtype=float)
    eye = _turn(eye, target, path["orbit_deg"] * s)
    eye = target + (eye - target) * (1.0 + path["dolly_fraction"] * s)
    target = _turn(target, eye, path["pan_deg"] * s)
    forward = target - eye
    fitted = copy.deepcopy(start)
    fitted.update({
        "eye": [round(float(v), DIGITS) for v in eye],
        "target": [round(float(v), DIGITS) for v in target],
        "distance_m": round(float(np.linalg.norm(forward)), DIGITS),
        "elevation_deg": round(float(np.degrees(np.arctan2(-forward[2], np.hypot(forward[0], forward[1])))), DIGITS),
    })
    return fitted
