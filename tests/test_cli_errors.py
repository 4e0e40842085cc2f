"""User mistakes on the command line: one line on stderr, non-zero exit, no traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, assert_one_line_error


def render_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "farm" / "render.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_unknown_option(tmp_path):
    assert_one_line_error(render_cli("--out", str(tmp_path), "--num-samples", "1", "--frobnicate"), "--frobnicate")


@pytest.mark.parametrize("count", ["0", "-3", "many"])
def test_non_positive_or_non_numeric_sample_count(tmp_path, count):
    assert_one_line_error(render_cli("--out", str(tmp_path), "--num-samples", count), "--num-samples")


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert_one_line_error(render_cli("--out", str(blocker / "sub"), "--num-samples", "1"), str(blocker / "sub"))
    assert blocker.read_text() == "not a folder"


def test_config_with_wrong_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("camera:\n  focal_lenght_mm: [30, 50]\n")
    result = render_cli("--out", str(tmp_path / "out"), "--num-samples", "1", "--config", str(config))
    assert_one_line_error(result, str(config), "camera.focal_lenght_mm", "focal_length_mm")
    assert not (tmp_path / "out" / "annotations.json").exists()


@pytest.mark.parametrize("text, needle", [
    ("render:\n  beauty_samples: lots\n", "render.beauty_samples"),
    ("render: [1, 2\n", "not valid YAML"),
    ("body:\n  phenotype:\n    age: [0.9, 0.2]\n", "body.phenotype.age"),
    ("motion:\n  clips: [moonwalk]\n", "moonwalk"),
    ("render:\n  device: TPU\n", "render.device"),
])
def test_config_with_bad_values(tmp_path, text, needle):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert_one_line_error(render_cli("--out", str(tmp_path / "o"), "--num-samples", "1", "--config", str(config)), needle)


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_one_line_error(render_cli("--out", str(tmp_path / "o"), "--num-samples", "1", "--config", str(missing)),
                          str(missing))


def test_bad_resolution(tmp_path):
    assert_one_line_error(render_cli("--out", str(tmp_path), "--num-samples", "1", "--resolution", "12x9000"), "resolution")
