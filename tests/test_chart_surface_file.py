"""Every output folder carries `charts.npz`, the surface its (I, U, V) labels live on.

The trainer (geodesic point similarity, flip tables) reads only this file; it must hold
exactly the charts the label pass rendered, and load without pickle.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from conftest import REPO, assert_one_line_error


def test_rendered_folder_has_the_charts_of_its_label_pass(rendered):
    charts = np.load(rendered / "charts.npz", allow_pickle=False)
    assert str(charts["body_kind"]) == "anny"
    faces, corner_iuv, vertices = charts["faces"], charts["corner_iuv"], charts["vertices"]
    assert vertices.dtype == np.float32 and faces.dtype == np.int32 and corner_iuv.dtype == np.float32
    geometry = np.load(sorted((rendered / "geometry").glob("*.npz"))[0])
    # The debug geometry is the mesh the label pass drew: its first person uses the same faces and
    # the same per-corner (I, U, V) as the charts file.
    num_faces = len(faces)
    assert np.array_equal(geometry["faces"][:num_faces], faces)
    assert np.array_equal(geometry["corner_iuv"][:num_faces], corner_iuv)
    # Rest mesh in metres, about a person's height, left-right along x and centred on it.
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    assert 1.4 < extent.max() < 2.1 and abs(float(vertices[:, 0].mean())) < 0.05
    assert set(np.unique(corner_iuv[..., 0]).astype(int)) == set(range(1, 25))


def test_charts_command_writes_the_default_body_and_refuses_missing_smpl(tmp_path, anny_archive):
    out = tmp_path / "anny.npz"
    result = subprocess.run([sys.executable, "-m", "farm", "charts", "--out", str(out)], cwd=tmp_path,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert np.load(out, allow_pickle=False)["corner_iuv"].shape[1:] == (3, 3)
    missing = tmp_path / "no_smpl_here"
    missing.mkdir()
    result = subprocess.run([sys.executable, "-m", "farm", "charts", "--out", str(tmp_path / "smpl.npz"), "--body",
                             "smpl", "--smpl-dir", str(missing)], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert_one_line_error(result, str(missing))
    assert not (tmp_path / "smpl.npz").exists()
