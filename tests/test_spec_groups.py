"""Index grouping and group seeds for sequences and views (spec/groups.py).

Expectations are arithmetic (floor division / remainder) and the plain per-sample seed rule.
"""
from __future__ import annotations

import pytest

from densesynth.spec.seeds import sample_seed
from densesynth.spec.groups import group_position, group_seed


def test_positions_are_floor_division_and_remainder() -> None:
    for length in (1, 2, 5):
        for index in range(23):
            pos = group_position(index, length)
            assert pos.group * length + pos.position == index
            assert 0 <= pos.position < length


def test_length_one_is_the_plain_sample_seed() -> None:
    for index in range(10):
        assert group_seed(7, index, 1, "sequence") == sample_seed(7, index)


def test_group_members_share_a_seed_and_groups_differ() -> None:
    seeds = [group_seed(7, index, 4, "sequence") for index in range(12)]
    assert len(set(seeds[0:4])) == 1 and len(set(seeds[4:8])) == 1
    assert len(set(seeds[::4])) == 3
    assert group_seed(7, 0, 4, "sequence") != group_seed(7, 0, 4, "scene")
    assert group_seed(7, 0, 4, "sequence") not in {sample_seed(7, i) for i in range(12)}
