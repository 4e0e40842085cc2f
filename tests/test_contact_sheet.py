"""The contact sheet: one PNG of N samples with IUV overlays."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, assert_one_line_error


@pytest.mark.blender
def test_contact_sheet_tiles_every_sample_with_an_overlay(rendered, tmp_path):
    target = tmp_path / "sheet.png"
    result = subprocess.run([sys.executable, str(REPO / "farm" / "contact_sheet.py"), str(rendered), "--num", "3",
                             "--columns", "2", "--tile", "100", "--out", str(target)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    sheet = cv2.imread(str(target))
    assert sheet.shape == (200, 400, 3)  # 2 rows of 2 tiles, each tile image + overlay side by side
    left, right = sheet[:100, :100].astype(int), sheet[:100, 100:200].astype(int)
    assert np.abs(left - right).mean() > 1.0  # the overlay half differs from the plain image


def test_contact_sheet_of_an_empty_folder_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "farm" / "contact_sheet.py"), str(tmp_path)],
                            capture_output=True, text=True)
    assert_one_line_error(result, str(tmp_path))


def test_iuv_overlay_draws_iso_lines_only_inside_one_part():
    sys.path.insert(0, str(REPO))
    from farm.contact_sheet import iuv_overlay

    I = np.zeros((20, 20), np.int64)
    I[:, :10], I[:, 10:] = 1, 2
    U = np.tile(np.linspace(0, 0.99, 20), (20, 1))
    V = np.zeros((20, 20))
    out = iuv_overlay(np.full((20, 20, 3), 100, np.uint8), I, U, V)
    white = np.all(out == 255, axis=-1)
    assert white[:, :10].any() and white[:, 10:].any()  # U crosses 0.1 steps inside each part
    assert not white[:, 10].any()  # no line drawn across the boundary between parts
