"""The chart-closeness measurement runs on an SMPL file and reports a sane distance."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np

from conftest import REPO


def test_chart_closeness_against_an_smpl_file(tmp_path, anny_archive):
    from smpl_synthetic import make_arrays, write_npz

    write_npz(tmp_path / "SMPL_NEUTRAL.npz", make_arrays(seed=1))
    result = subprocess.run([sys.executable, str(REPO / "bench" / "chart_closeness.py"), "--smpl-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if re.match(r"\s*\d+ ", line)]
    assert len(rows) == 24
    anny = np.array([float(row.split()[-3].rstrip("%")) for row in rows])
    assert abs(anny.sum() - 100.0) < 0.2
    distance = float(result.stdout.strip().splitlines()[-1].split()[-1])
    assert 0.0 < distance < 1.0
