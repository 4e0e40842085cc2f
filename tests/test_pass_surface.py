"""The surface pass against the independent NumPy rasteriser (issue 10, acceptance 2).

The rasteriser's hit triangle and perspective-correct barycentrics on the debug geometry
give each pixel's nearest vertex independently; on body pixels away from silhouettes and
part edges (3x3 neighbourhood of one part in the reference) at least 99.5% must agree.
"""
from __future__ import annotations

import numpy as np
import pytest
from iuv_compare import one_part
from rasteriser import rasterise_iuv

from conftest import TEST_CONFIG, run_render

pytestmark = pytest.mark.blender


def test_nearest_vertex_ids_agree_with_the_rasteriser(tmp_path, anny_archive):
    config = tmp_path / "surface.yaml"
    config.write_text(TEST_CONFIG + "passes: [beauty, iuv, person_index, surface]\npeople:\n  count: [2, 2]\n")
    out = tmp_path / "run"
    result = run_render(out, 2, 13, config, "--debug-geometry", "--workers", "0", "--resolution", "320x256")
    assert result.returncode == 0, result.stderr[-3000:]
    for index in range(2):
        stem = f"{index:08d}"
        geometry = dict(np.load(out / "geometry" / f"{stem}.npz"))
        reference = rasterise_iuv(geometry)
        faces, owner = geometry["faces"], geometry["person_of_face"]
        offsets = {p: int(faces[owner == p].min()) for p in np.unique(owner)}
        surface = np.load(out / "surface" / f"{stem}.npz")
        vertex, person, bary = surface["vertex"], surface["person"], surface["bary"]
        assert vertex.dtype == np.int32 and np.all((vertex >= 0) == (person > 0))
        assert np.allclose(bary[person > 0].sum(axis=-1), 1.0, atol=1e-5) and bary.min() > -1e-4
        scored = one_part(reference["I"]) & (person > 0)
        assert scored.sum() > 300, scored.sum()
        hit = reference["face"][scored]
        want = faces[hit, np.argmax(reference["bary"][scored], axis=-1)]
        got = vertex[scored] + np.array([offsets[p - 1] for p in person[scored]])
        agreement = float(np.mean(got == want))
        assert agreement >= 0.995, (stem, agreement, scored.sum())  # measured 99.89% and 99.96%
        assert np.mean(person[scored] - 1 == owner[hit]) >= 0.995
