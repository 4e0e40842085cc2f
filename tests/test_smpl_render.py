"""`body.kind: smpl` end to end with a synthetic SMPL file: exact DensePose charts in the EXR."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
from iuv_compare import compare_iuv, read_exr_rgba
from rasteriser import rasterise_iuv

from conftest import TEST_CONFIG, render_with_config

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def smpl_run(tmp_path_factory):
    from smpl_synthetic import make_arrays, write_npz

    folder = tmp_path_factory.mktemp("smpl")
    arrays = make_arrays(seed=5)
    # A body-sized, smooth template: the synthetic one squeezed into a 1.7 m tall column.
    v = arrays["v_template"]
    arrays["v_template"] = v * np.array([0.5, 2.5, 0.3])
    (folder / "models").mkdir()
    write_npz(folder / "models" / "SMPL_FEMALE.npz", arrays)
    smpl_config = TEST_CONFIG + f"body:\n  kind: smpl\n  smpl_dir: {folder / 'models'}\n  gender: female\n"
    return render_with_config(folder, smpl_config, 2, 4, "--debug-geometry")


@pytest.mark.parametrize("stem", ["00000000", "00000001"])
def test_smpl_render_agrees_with_the_rasteriser(smpl_run, stem):
    geometry = dict(np.load(smpl_run / "geometry" / f"{stem}.npz"))
    reference = rasterise_iuv(geometry)
    rgba = read_exr_rgba(smpl_run / "iuv" / f"{stem}.exr")
    exr_I = np.where(rgba[..., 3] > 0.5, np.round(rgba[..., 0]), 0).astype(int)
    stats = compare_iuv(exr_I, rgba[..., 1], rgba[..., 2], reference)
    assert reference["mask"].sum() > 300
    assert stats["agreement"] >= 0.995 and stats["median_uv_error"] < 1e-3, stats
    spec = json.loads((smpl_run / "specs" / f"{stem}.json").read_text())
    assert spec["persons"][0]["body"]["kind"] == "smpl" and len(spec["persons"][0]["body"]["betas"]) == 10


def test_every_face_carries_uv_processed_corner_values(smpl_run):
    from densesynth.bodies.smpl_charts import default_uv_processed_path

    geometry = dict(np.load(smpl_run / "geometry" / "00000000.npz"))
    mat = scipy.io.loadmat(default_uv_processed_path())
    chart_faces = mat["All_Faces"] - 1
    smpl_vertex = mat["All_vertices"][0] - 1
    u, v, part = mat["All_U_norm"][:, 0], mat["All_V_norm"][:, 0], mat["All_FaceIndices"][:, 0]
    lookup = {}
    for face, corners in enumerate(chart_faces):
        key = tuple(sorted(smpl_vertex[corners]))
        lookup[key] = {smpl_vertex[c]: (part[face], u[c], v[c]) for c in corners}
    faces, corner_iuv = geometry["faces"], geometry["corner_iuv"]
    matched = 0
    for face, corners in enumerate(faces):
        expected = lookup.get(tuple(sorted(corners)))
        if expected is None:
            assert corner_iuv[face, :, 0].min() >= 1  # the two uncharted toe faces still carry a chart
            continue
        for k, vertex in enumerate(corners):
            np.testing.assert_allclose(corner_iuv[face, k], expected[vertex], atol=1e-6)
        matched += 1
    assert matched == 13774
