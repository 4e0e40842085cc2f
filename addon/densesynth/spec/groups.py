"""Grouping of sample indices into sequences (frames) and posed scenes (views).

`camera.views_per_scene` uses the scene groups, `sequence.length` the sequence groups
(spec/sample_spec.py, spec/sequence.py).

Why a separate seed per group: every frame of a sequence (every view of a scene) must draw
people, shape, texture, lights and backdrop from the *group's* streams, so they agree, while
each sample still gets its own spec and can be rendered alone, in any order. Group seeds are
derived from a different key than sample_seed, so a grouped run never reuses a plain sample's
draws by accident, and off (length 1) maps back to the plain per-sample seed exactly, so the
default run stays byte-identical.
"""
from __future__ import annotations

from dataclasses import dataclass

from .seeds import sample_seed, seed_of

# Distinct keys so sequence groups and scene groups never share a seed with each other.
_GROUP_KEYS = {"sequence": 0x5E0, "scene": 0x5CE}


@dataclass(frozen=True)
class GroupPosition:
    """Where sample `index` sits: group id and its position (frame or view) inside it."""

    group: int
    position: int
    length: int


def group_position(index: int, length: int) -> GroupPosition:
    """Group `index // length`, position `index % length`; length 1 means ungrouped."""
    if length < 1:
        raise ValueError(f"group length must be >= 1, got {length}")
    if index < 0:
        raise ValueError(f"sample index must be >= 0, got {index}")
    return GroupPosition(group=index // length, position=index % length, length=length)


def group_seed(run_seed: int, index: int, length: int, kind: str) -> int:
    """The seed shared by the whole group of `index`; equals sample_seed when length is 1."""
    if length == 1:
        return sample_seed(run_seed, index)
    group = group_position(index, length).group
    key = _GROUP_KEYS[kind]
    return seed_of([int(run_seed) & 0xFFFFFFFF, int(run_seed) >> 32, key, group])
