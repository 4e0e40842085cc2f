"""Seeds: every random draw of a sample comes from (run seed, sample index, stream name).

Each part of the scene (body, motion, camera, ...) draws from its own named stream, so
adding a draw to one part never shifts the values of another, and a sample can be
regenerated alone, in any order, on any machine.
"""
from __future__ import annotations

import zlib

import numpy as np


def sample_seed(run_seed: int, index: int) -> int:
    """A 63-bit seed for sample `index` of a run, independent of every other sample's."""
    return seed_of([int(run_seed) & 0xFFFFFFFF, int(run_seed) >> 32, int(index)])


def seed_of(entropy: list[int]) -> int:
    """A 63-bit seed from a list of 32-bit words (np.random.SeedSequence's entropy)."""
    state = np.random.SeedSequence(entropy)
    return int(state.generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array([1, 2**32], dtype=np.uint64)) >> 1


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator for one named part of a sample."""
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, key]))


def child_seed(seed: int, name: str) -> int:
    """A recorded integer seed for procedural content (textures, backdrops, point sampling)."""
    return int(stream(seed, name).integers(0, 2**31 - 1))
