"""The whole data path through real Blender: files, exact IUV, format, determinism."""
from __future__ import annotations

import json

import numpy as np
import pytest
from densepose_rules import check_coco_densepose
from iuv_compare import compare_iuv, read_exr_rgba
from rasteriser import rasterise_iuv

from conftest import assert_one_line_error, run_render

pytestmark = pytest.mark.blender
STEMS = [f"{i:08d}" for i in range(3)]


def test_every_output_file_is_written(rendered):
    for stem in STEMS:
        for relative in (f"images/{stem}.png", f"iuv/{stem}.exr", f"labels24/{stem}.png", f"labels14/{stem}.png",
                         f"iuv_png/{stem}.png", f"specs/{stem}.json", f"geometry/{stem}.npz"):
            assert (rendered / relative).is_file(), relative
    assert (rendered / "annotations.json").is_file()
    leftovers = [p.name for p in rendered.rglob(".*tmp*")]
    assert leftovers == []


@pytest.mark.parametrize("stem", STEMS)
def test_iuv_exr_agrees_with_independent_rasteriser(rendered, stem):
    geometry = dict(np.load(rendered / "geometry" / f"{stem}.npz"))
    reference = rasterise_iuv(geometry)
    rgba = read_exr_rgba(rendered / "iuv" / f"{stem}.exr")
    assert rgba.dtype == np.float32
    assert set(np.unique(rgba[..., 3])) <= {0.0, 1.0}, "label pass alpha must be exactly 0 or 1"
    exr_I = np.where(rgba[..., 3] > 0.5, np.round(rgba[..., 0]), 0).astype(int)
    stats = compare_iuv(exr_I, rgba[..., 1], rgba[..., 2], reference)
    assert reference["mask"].sum() > 300, "the person must be visible"
    assert stats["agreement"] >= 0.995, stats
    assert stats["median_uv_error"] < 1e-3, stats


def test_annotations_follow_every_densepose_rule(rendered):
    check_coco_densepose(rendered / "annotations.json", rendered / "images", rendered / "iuv")
    data = json.loads((rendered / "annotations.json").read_text())
    assert len(data["images"]) == 3 and len(data["annotations"]) == 3
    for annotation in data["annotations"]:
        assert 40 <= len(annotation["dp_I"]) <= 80


def test_same_seed_same_bytes_and_other_seed_other_scene(rendered, test_config, tmp_path):
    again = tmp_path / "again"
    assert run_render(again, 3, 7, test_config, "--debug-geometry").returncode == 0
    assert (again / "annotations.json").read_bytes() == (rendered / "annotations.json").read_bytes()
    for stem in STEMS:
        for relative in (f"specs/{stem}.json", f"iuv/{stem}.exr", f"images/{stem}.png", f"labels24/{stem}.png"):
            assert (again / relative).read_bytes() == (rendered / relative).read_bytes(), relative
    other = tmp_path / "other"
    assert run_render(other, 1, 8, test_config).returncode == 0
    a = json.loads((rendered / "specs" / f"{STEMS[0]}.json").read_text())
    b = json.loads((other / "specs" / f"{STEMS[0]}.json").read_text())
    assert a["persons"] != b["persons"] and a["camera"] != b["camera"] and a["lights"] != b["lights"]
    assert (other / "annotations.json").read_bytes() != (rendered / "annotations.json").read_bytes()


def test_rerun_resumes_and_other_config_is_refused(rendered, test_config, tmp_path):
    before = (rendered / "images" / f"{STEMS[0]}.png").stat().st_mtime_ns
    result = run_render(rendered, 3, 7, test_config)
    assert result.returncode == 0, result.stderr
    assert (rendered / "images" / f"{STEMS[0]}.png").stat().st_mtime_ns == before
    assert_one_line_error(run_render(rendered, 3, 99, test_config), str(rendered))


def test_blender_style_arguments_after_double_dash(test_config, tmp_path):
    """`blender -b -P farm/render.py -- ARGS`: the script reads only what follows `--`."""
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "blender_style"
    code = ("import runpy, sys; sys.argv = ['blender', '-b', '-P', 'farm/render.py', '--', '--out', sys.argv[1], "
            "'--num-samples', '1', '--resolution', '64', '--config', sys.argv[2], '--quiet']; "
            "runpy.run_path('farm/render.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, str(out), str(test_config)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((out / "annotations.json").read_text())
    assert data["images"][0]["width"] == 64
