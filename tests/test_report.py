"""The dataset report: an HTML page whose figures exist and whose counts match the folder."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, assert_one_line_error


@pytest.mark.blender
def test_report_page_links_existing_figures_and_counts_the_run(rendered, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(rendered, run)
    result = subprocess.run([sys.executable, str(REPO / "farm" / "report.py"), str(run)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    page = (run / "report" / "index.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page) + re.findall(r"src='([^']+)'", page)
    assert len(sources) >= 10 and all((run / "report" / s).is_file() for s in sources)
    assert "<td>samples finished</td><td>3</td>" in page
    points = sum(len(a["dp_I"]) for r in [__import__("json").loads(p.read_text()) for p in (run / "records").glob("*.json")]
                 for a in r["annotations"])
    assert f"<td>DensePose points</td><td>{points}</td>" in page


def test_report_on_an_empty_folder_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "farm" / "report.py"), str(tmp_path)], capture_output=True,
                            text=True)
    assert_one_line_error(result, str(tmp_path))
