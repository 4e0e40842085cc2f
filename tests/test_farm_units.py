"""The farm without Blender: shards, sample state, status, streaming merge and the split rule."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

from densesynth.job.merge import MergeError, group_key, merge, split_of
from densesynth.job.shards import Identity, check_sample, parse_shard_selection, shard_ranges, write_failure, write_manifest
from densesynth.spec.model import SPEC_VERSION
from farm.status import collect_status, format_status

IDENTITY = Identity("abcdef0123456789", 11)


def test_shards_cover_every_sample_once():
    ranges = shard_ranges(21, 8)
    assert [(r.start, r.stop) for r in ranges] == [(0, 8), (8, 16), (16, 21)]
    assert shard_ranges(8, 8) == [range(0, 8)]
    assert parse_shard_selection("0, 2-3", 4) == [0, 2, 3]
    for bad in ("4", "2-1", "x", "", "-1"):
        with pytest.raises(ValueError):
            parse_shard_selection(bad, 4)


def fake_spec(index: int, clip: str = "walk", phase: float = 0.3) -> dict:
    return {"spec_version": SPEC_VERSION, "stem": f"{index:08d}", "index": index, "persons": [{
        "body": {"phenotype": {"gender": 0.2, "height": 0.5, "weight": 0.5}},
        "motion": {"clip": clip, "phase": phase, "mirror": False}}]}


def fake_sample(out, index: int, people: int = 1, spec: dict | None = None) -> dict:
    """Write the files of one sample as the pipeline would (content is arbitrary) and mark it done."""
    stem = f"{index:08d}"
    for folder, name in (("images", f"{stem}.png"), ("iuv", f"{stem}.exr"), ("labels24", f"{stem}.png"),
                         ("labels14", f"{stem}.png"), ("iuv_png", f"{stem}.png")):
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / folder / name).write_bytes(f"{folder} {index}".encode() * 10)
    (out / "specs").mkdir(exist_ok=True)
    (out / "specs" / f"{stem}.json").write_text(json.dumps(spec or fake_spec(index)))
    annotation = {"area": 10.0 + index, "bbox": [1.0, 2.0, 3.0, 4.5], "category_id": 1, "iscrowd": 0}
    record = {"image": {"file_name": f"{stem}.png", "height": 64, "width": 48, "index": index},
              "annotations": [dict(annotation, area=annotation["area"] + k) for k in range(people)]}
    (out / "records").mkdir(exist_ok=True)
    (out / "records" / f"{stem}.json").write_text(json.dumps(record, sort_keys=True) + "\n")
    write_manifest(out, IDENTITY, index, record)
    return record


def fake_run(out, num_samples: int, shard_size: int = 4) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"config_hash": IDENTITY.config_hash, "seed": IDENTITY.seed,
                                              "num_samples": num_samples, "shard_size": shard_size}))


def test_sample_state_detects_missing_truncated_and_rewritten_files(tmp_path):
    fake_run(tmp_path, 6)
    for index in range(5):
        fake_sample(tmp_path, index)
    assert all(check_sample(tmp_path, IDENTITY, i).status == "done" for i in range(5))
    assert check_sample(tmp_path, IDENTITY, 5).status == "todo"
    # truncated image
    (tmp_path / "images" / "00000000.png").write_bytes(b"short")
    # same size, other bytes (and another mtime): caught by the checksum
    path = tmp_path / "records" / "00000001.json"
    text = path.read_text()
    path.write_text(text.replace("64", "65"))
    # the manifest itself damaged
    (tmp_path / "done" / "00000002.json").write_text("{not json")
    # a file gone
    os.remove(tmp_path / "iuv" / "00000003.exr")
    # same size and mtime restored: only --verify (full re-hash) sees it
    path = tmp_path / "labels24" / "00000004.png"
    stat = path.stat()
    path.write_bytes(b"X" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    states = [check_sample(tmp_path, IDENTITY, i).status for i in range(6)]
    assert states == ["corrupt", "corrupt", "corrupt", "corrupt", "done", "todo"]
    assert check_sample(tmp_path, IDENTITY, 4, verify=True).status == "corrupt"
    assert check_sample(tmp_path, Identity("other", 11), 4).status == "corrupt"
    write_failure(tmp_path, IDENTITY, 5, 3, "worker killed by signal 9")
    status = collect_status(tmp_path, verify=True)
    assert status["total"] == {"done": 0, "failed": 1, "corrupt": 5, "todo": 0}
    assert [s["corrupt"] for s in status["shards"]] == [4, 1]
    text = format_status(status)
    assert "worker killed by signal 9" in text and "00000001 corrupt" in text


def test_streaming_merge_equals_whole_run_writer_and_splits_disjointly(tmp_path):
    from densesynth.pipeline import write_annotations

    fake_run(tmp_path, 40)
    records = [fake_sample(tmp_path, i, people=i % 3, spec=fake_spec(i, ["walk", "run", "wave"][i % 3], (i % 8) / 8))
               for i in range(40)]
    result = merge(tmp_path, val_fraction=0.3)
    reference = write_annotations(tmp_path / "reference", records)
    assert (tmp_path / "annotations.json").read_bytes() == reference.read_bytes()
    full = json.loads((tmp_path / "annotations.json").read_text())
    train = json.loads((tmp_path / "annotations_train.json").read_text())
    val = json.loads((tmp_path / "annotations_val.json").read_text())
    assert result.split == {"train": len(train["images"]), "val": len(val["images"])}
    assert train["images"] and val["images"]
    ids = lambda d, k: [x["id"] for x in d[k]]  # noqa: E731
    assert sorted(ids(train, "images") + ids(val, "images")) == ids(full, "images") == list(range(1, 41))
    assert sorted(ids(train, "annotations") + ids(val, "annotations")) == ids(full, "annotations")
    val_images = set(ids(val, "images"))
    assert all(a["image_id"] in val_images for a in val["annotations"])
    # whole groups on one side: every sample with the same group key is in the same file
    side = {}
    for image in full["images"]:
        spec = json.loads((tmp_path / "specs" / image["file_name"].replace(".png", ".json")).read_text())
        side.setdefault(group_key(spec), set()).add(image["id"] in val_images)
    assert all(len(sides) == 1 for sides in side.values())


def test_split_rule_is_stable_and_groups_near_copies():
    a, b = fake_spec(0, "walk", 0.30), fake_spec(1, "walk", 0.32)
    assert group_key(a) == group_key(b)  # same clip, nearly the same phase and body
    assert group_key(a) != group_key(fake_spec(2, "walk", 0.9))
    assert split_of(a, 0.0) == "train" and split_of(a, 1.0) == "val"
    shares = [split_of(fake_spec(i, c, p / 8 + 0.01), 0.25) for i, c in enumerate(["walk", "run", "wave", "idle"])
              for p in range(8)]
    assert 2 <= shares.count("val") <= 16


def test_merge_refuses_unfinished_samples_unless_partial(tmp_path):
    fake_run(tmp_path, 3)
    fake_sample(tmp_path, 0)
    fake_sample(tmp_path, 2)
    with pytest.raises(MergeError, match="1 of 3 samples are not finished"):
        merge(tmp_path)
    result = merge(tmp_path, allow_partial=True)
    assert result.images == 2 and result.missing == [1]
    data = json.loads((tmp_path / "annotations.json").read_text())
    assert [i["file_name"] for i in data["images"]] == ["00000000.png", "00000002.png"]


def farm_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "farm", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_status_and_merge_commands(tmp_path):
    fake_run(tmp_path, 3, shard_size=2)
    fake_sample(tmp_path, 0)
    result = farm_command("status", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "2 shards of 2" in result.stdout and "total" in result.stdout
    data = json.loads(farm_command("status", str(tmp_path), "--json").stdout)
    assert data["total"] == {"done": 1, "failed": 0, "corrupt": 0, "todo": 2}
    refused = farm_command("merge", str(tmp_path))
    assert refused.returncode == 2 and "2 of 3 samples are not finished" in refused.stderr
    assert farm_command("merge", str(tmp_path), "--allow-partial").returncode == 0
    assert farm_command("status", str(tmp_path / "nothing")).returncode == 2


@pytest.mark.parametrize("args, needle", [
    (("--shards", "7"), "--shards"),
    (("--workers", "-1"), "--workers"),
    (("--sample-timeout", "0"), "--sample-timeout"),
    (("--val-fraction", "1.5"), "--val-fraction"),
])
def test_farm_option_mistakes_are_one_line(tmp_path, args, needle):
    result = subprocess.run([sys.executable, str(REPO / "farm" / "render.py"), "--out", str(tmp_path / "o"),
                             "--num-samples", "4", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from densesynth.job.shards import remove_stale_temporaries

    from densesynth.io_utils import temporary_sibling

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "images").mkdir()
    (tmp_path / "run.json").write_text("{}")
    stale = temporary_sibling(tmp_path / "images" / "00000003.beauty.png", pid=dead.pid)
    live = temporary_sibling(tmp_path / "images" / "00000004.png")
    kept = tmp_path / "images" / "00000003.png"
    for path in (stale, live, kept):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == 1
    assert not stale.exists() and live.exists() and kept.exists()


def test_split_groups_smpl_bodies_and_converted_clips():
    person = {"body": {"kind": "smpl", "gender": "female", "betas": [0.2, -0.1, 1.0]},
              "motion": {"clip": "cmu_01", "source": "folder", "frame": 40, "mirror": True}}
    near = {"body": {"kind": "smpl", "gender": "female", "betas": [0.3, 0.0]},
            "motion": {"clip": "cmu_01", "source": "folder", "frame": 55, "mirror": True}}
    far = {"body": {"kind": "smpl", "gender": "male", "betas": [0.3, 0.0]},
           "motion": {"clip": "cmu_01", "source": "folder", "frame": 55, "mirror": True}}
    key = group_key({"persons": [person]})
    assert key == group_key({"persons": [near]}) != group_key({"persons": [far]})
    assert group_key({"persons": [person, far]}) == group_key({"persons": [far, person]})
