"""Specs: deterministic per (seed, index), independent streams, JSON round trip."""
from __future__ import annotations

import json

import pytest

from densesynth.config import default_config
from densesynth.spec.sample_spec import draw_spec, dumps_spec
from densesynth.spec.seeds import sample_seed


def fake_fit(spec):
    return {"eye": [0.0, -3.0, 1.0], "target": [0.0, 0.0, 1.0], "distance_m": 3.0}


def test_same_seed_and_index_give_the_same_spec_in_any_order():
    config = default_config()
    forward = [dumps_spec(draw_spec(config, "h", 5, i, fake_fit)) for i in range(4)]
    backward = [dumps_spec(draw_spec(config, "h", 5, i, fake_fit)) for i in reversed(range(4))][::-1]
    assert forward == backward
    assert len(set(forward)) == 4


def test_different_run_seeds_differ_and_seeds_do_not_collide():
    seeds = {sample_seed(run, index) for run in range(20) for index in range(50)}
    assert len(seeds) == 1000
    config = default_config()
    assert draw_spec(config, "h", 1, 0, fake_fit)["persons"] != draw_spec(config, "h", 2, 0, fake_fit)["persons"]


def test_changing_one_section_leaves_other_streams_untouched():
    config = default_config()
    base = draw_spec(config, "h", 3, 9, fake_fit)
    config["camera"]["focal_length_mm"] = [50.0, 50.0]
    changed = draw_spec(config, "h", 3, 9, fake_fit)
    assert changed["camera"]["focal_length_mm"] == 50.0
    assert changed["persons"] == base["persons"] and changed["lights"] == base["lights"]
    assert changed["appearance"] == base["appearance"]


def test_draws_respect_ranges_and_spec_round_trips_through_json():
    config = default_config()
    for index in range(30):
        spec = draw_spec(config, "h", 0, index, fake_fit)
        assert json.loads(dumps_spec(spec)) == spec
        for name, (low, high) in config["body"]["phenotype"].items():
            assert low <= spec["persons"][0]["body"]["phenotype"][name] <= high
        assert spec["persons"][0]["motion"]["clip"] in config["motion"]["clips"]
        low, high = config["camera"]["focal_length_mm"]
        assert low <= spec["camera"]["focal_length_mm"] <= high


def test_named_rigs_are_drawn_when_configured():
    config = default_config()
    assert len(config["camera"]["rigs"]) == 9
    config["camera"]["rig_probability"] = 1.0
    names = {draw_spec(config, "h", 0, i, fake_fit)["camera"]["rig"]["name"] for i in range(60)}
    assert names == set(config["camera"]["rigs"])
    config["camera"]["rig_probability"] = 0.0
    assert all(draw_spec(config, "h", 0, i, fake_fit)["camera"]["rig"] is None for i in range(10))


def test_people_count_and_placements_keep_their_distance():
    import numpy as np

    config = default_config()
    config["people"]["count"] = [2, 5]
    counts = set()
    for index in range(40):
        persons = draw_spec(config, "h", 1, index, fake_fit)["persons"]
        counts.add(len(persons))
        spots = np.array([[p["placement"]["x_m"], p["placement"]["y_m"]] for p in persons])
        gaps = np.linalg.norm(spots[:, None] - spots[None], axis=-1) + np.eye(len(spots)) * 99
        assert gaps.min() >= config["people"]["min_gap_m"] - 1e-6
    assert counts == {2, 3, 4, 5}
    single = default_config()
    two = default_config()
    two["people"]["count"] = [2, 2]
    # Adding people never changes the first person.
    assert draw_spec(single, "h", 4, 0, fake_fit)["persons"][0]["body"] == draw_spec(two, "h", 4, 0, fake_fit)["persons"][0]["body"]


def test_a_spec_is_read_and_written_in_one_place_and_its_version_is_checked(tmp_path):
    from densesynth.errors import UserError
    from densesynth.spec.model import SPEC_VERSION, SpecError, read_spec, write_spec

    spec = draw_spec(default_config(), "h", 3, 0, fake_fit)
    path = tmp_path / "00000000.json"
    write_spec(path, spec)
    assert read_spec(path) == spec and path.read_text() == dumps_spec(spec)
    for text, needle in ((dumps_spec({**spec, "spec_version": SPEC_VERSION + 1}), f"spec_version {SPEC_VERSION + 1}"),
                         (dumps_spec({k: v for k, v in spec.items() if k != "spec_version"}), "spec_version None"),
                         ("[1, 2]", "not a sample spec"), ("[1, 2", "not valid JSON")):
        path.write_text(text)
        with pytest.raises(SpecError) as caught:
            read_spec(path)
        assert isinstance(caught.value, UserError) and needle in str(caught.value)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
