"""Every randomisation varies across seeds and is fixed by the seed (spec level)."""
from __future__ import annotations

import pytest

from densesynth.config import default_config
from densesynth.spec.sample_spec import draw_spec


def fake_fit(spec):
    return {"eye": [0.0, -3.0, 1.0], "target": [0.0, 0.0, 1.0], "distance_m": 3.0, "elevation_deg": 0.0}


DRAWN = {
    "phenotype": lambda s: tuple(sorted(s["persons"][0]["body"]["phenotype"].items())),
    "clip": lambda s: s["persons"][0]["motion"]["clip"],
    "phase": lambda s: s["persons"][0]["motion"]["phase"],
    "mirror": lambda s: s["persons"][0]["motion"]["mirror"],
    "people": lambda s: len(s["persons"]),
    "placement": lambda s: tuple(tuple(sorted(p["placement"].items())) for p in s["persons"]),
    "focal": lambda s: s["camera"]["focal_length_mm"],
    "azimuth": lambda s: s["camera"]["azimuth_deg"],
    "elevation": lambda s: s["camera"]["elevation_deg"],
    "rig": lambda s: (s["camera"]["rig"] or {}).get("name"),
    "sun": lambda s: tuple(sorted(s["lights"]["sun"].items())),
    "area": lambda s: tuple(sorted(s["lights"]["area"].items())),
    "environment": lambda s: s["lights"]["ambient"]["kind"],
    "skin": lambda s: tuple(s["appearance"][0]["skin"]),
    "garment pattern": lambda s: s["appearance"][0]["top"]["pattern"],
    "garment colour": lambda s: tuple(s["appearance"][0]["bottom"]["colour"]),
    "sleeves": lambda s: s["appearance"][0]["long_sleeves"],
    "backdrop": lambda s: s["backdrop"]["seed"],
    "points": lambda s: s["annotation"]["point_seed"],
}


@pytest.fixture(scope="module")
def specs():
    config = default_config()
    config["people"]["count"] = [1, 3]
    config["camera"]["rig_probability"] = 0.5
    return config, [draw_spec(config, "h", 12, i, fake_fit) for i in range(40)]


@pytest.mark.parametrize("name", sorted(DRAWN))
def test_each_draw_varies_across_samples_and_is_fixed_by_the_seed(specs, name):
    config, drawn = specs
    values = [DRAWN[name](s) for s in drawn]
    assert len(set(values)) > 1, f"{name} never varies"
    again = [DRAWN[name](draw_spec(config, "h", 12, i, fake_fit)) for i in range(5)]
    assert again == values[:5], f"{name} is not fixed by (seed, index)"
