"""SMPL model files: chumpy pickles without chumpy, .npz, checks, conversion, folder lookup."""
from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

from densesynth.bodies import smpl_files
from densesynth.bodies.smpl_files import (
    convert, find_smpl_file, gender_from_filename, load_smpl,
)
from densesynth.errors import UserError
from smpl_synthetic import make_arrays, write_chumpy_pickle, write_npz

KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f")


@pytest.fixture(scope="module")
def arrays():
    return make_arrays(seed=3)


@pytest.fixture(scope="module")
def files(arrays, tmp_path_factory):
    root = tmp_path_factory.mktemp("smpl")
    pkl = write_chumpy_pickle(root / "basicModel_f_lbs_10_207_0_v1.0.0.pkl", arrays)
    npz = write_npz(root / "SMPL_FEMALE.npz", arrays)
    return {"pkl": pkl, "npz": npz, "root": root}


def _one_line_error(path, gender=None) -> str:
    with pytest.raises(UserError) as info:
        load_smpl(path, gender)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def _check_same(model, arrays):
    np.testing.assert_array_equal(model.v_template, arrays["v_template"])
    np.testing.assert_array_equal(model.shapedirs, arrays["shapedirs"])
    np.testing.assert_array_equal(model.posedirs, arrays["posedirs"])
    np.testing.assert_allclose(model.J_regressor, arrays["J_regressor"], rtol=0, atol=0)
    np.testing.assert_array_equal(model.weights, arrays["weights"])
    np.testing.assert_array_equal(model.faces, arrays["f"].astype(np.int64))
    expected_parents = arrays["kintree_table"][0].astype(np.int64)
    expected_parents[0] = -1
    np.testing.assert_array_equal(model.parents, expected_parents)


def test_chumpy_pickle_loads_without_chumpy(files, arrays):
    assert "chumpy" not in sys.modules
    payload = files["pkl"].read_bytes()
    assert payload[:2] == b"\x80\x02" and b"chumpy.ch" in payload and b"scipy.sparse.csc" in payload
    model = load_smpl(files["pkl"], "female")
    assert "chumpy" not in sys.modules
    assert model.gender == "female" and model.num_betas == 10
    _check_same(model, arrays)
    assert model.parents[0] == -1 and model.faces.dtype == np.int64


def test_npz_loads_and_equals_pickle(files, arrays):
    a = load_smpl(files["npz"], "female")
    b = load_smpl(files["pkl"])
    _check_same(a, arrays)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "faces", "parents"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_convert_writes_clean_npz_atomically(files, arrays, tmp_path):
    out = convert(files["pkl"], tmp_path / "SMPL_FEMALE.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SMPL_FEMALE.npz"]  # no temp file left
    with np.load(out, allow_pickle=False) as data:  # no pickled objects inside
        assert set(KEYS) <= set(data.files) and str(data["gender"]) == "female"
    _check_same(load_smpl(out, "female"), arrays)
    default = convert(files["pkl"])
    assert default == files["pkl"].with_suffix(".npz") and default.is_file()
    with pytest.raises(UserError):
        convert(files["npz"], files["npz"])


def test_gender_from_filename():
    assert gender_from_filename("basicModel_f_lbs_10_207_0_v1.0.0.pkl") == "female"
    assert gender_from_filename("basicModel_m_lbs_10_207_0_v1.0.0.pkl") == "male"
    assert gender_from_filename("basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl") == "neutral"
    assert gender_from_filename("SMPL_FEMALE.pkl") == "female"
    assert gender_from_filename("SMPL_MALE.pkl") == "male"
    assert gender_from_filename("SMPL_NEUTRAL.npz") == "neutral"
    assert gender_from_filename("model.npz") is None


def test_wrong_gender_slot(files, arrays, tmp_path):
    message = _one_line_error(files["pkl"], "male")
    assert "female" in message and "male" in message
    # the 'gender' entry counts too, and must not contradict the name
    npz = write_npz(tmp_path / "model.npz", {**arrays, "gender": np.array("male")})
    assert load_smpl(npz).gender == "male"
    assert "female" in _one_line_error(npz, "female")
    clash = write_npz(tmp_path / "SMPL_FEMALE.npz", {**arrays, "gender": np.array("male")})
    _one_line_error(clash)


def test_smplx_and_smplh_are_recognised(arrays, tmp_path):
    smplx_like = {**make_arrays(seed=1, num_vertices=10475, num_joints=55, faces=np.zeros((20908, 3), int))}
    path = write_npz(tmp_path / "SMPLX_FEMALE.npz", smplx_like)
    assert "SMPL-X" in _one_line_error(path, "female")
    smplh_like = make_arrays(seed=1, num_joints=52, faces=arrays["f"])
    path = write_chumpy_pickle(tmp_path / "SMPLH_female.pkl", smplh_like)
    assert "SMPL-H" in _one_line_error(path, "female")


def test_truncated_and_corrupt_files(files, tmp_path):
    for source in (files["pkl"], files["npz"]):
        cut = tmp_path / f"cut_{source.name}"
        payload = source.read_bytes()
        cut.write_bytes(payload[: len(payload) // 2])
        assert "corrupt" in _one_line_error(cut)
    junk = tmp_path / "SMPL_MALE.pkl"
    junk.write_text("this is not a model\n")
    _one_line_error(junk)
    empty = tmp_path / "SMPL_NEUTRAL.npz"
    empty.write_bytes(b"")
    _one_line_error(empty)
    _one_line_error(tmp_path / "absent.pkl")


def test_missing_keys_and_wrong_shapes(arrays, tmp_path):
    partial = {k: v for k, v in arrays.items() if k not in ("posedirs", "weights")}
    message = _one_line_error(write_chumpy_pickle(tmp_path / "SMPL_MALE.pkl", partial))
    assert "posedirs" in message and "weights" in message
    bad = {**arrays, "posedirs": arrays["posedirs"][:, :, :200]}
    assert "posedirs" in _one_line_error(write_npz(tmp_path / "SMPL_FEMALE.npz", bad))
    nan = {**arrays, "v_template": np.full_like(arrays["v_template"], np.nan)}
    assert "NaN" in _one_line_error(write_npz(tmp_path / "SMPL_NEUTRAL.npz", nan))


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch SHOULD_NOT_EXIST",))


def test_pickle_with_foreign_objects_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "SMPL_MALE.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil()}, protocol=2))
    _one_line_error(path)
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()
    listing = tmp_path / "SMPL_FEMALE.pkl"
    listing.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    _one_line_error(listing)


def test_find_smpl_file(files, arrays, tmp_path):
    models = tmp_path / "smpl" / "models"
    models.mkdir(parents=True)
    write_chumpy_pickle(models / "basicModel_m_lbs_10_207_0_v1.0.0.pkl", arrays)
    write_chumpy_pickle(models / "basicModel_f_lbs_10_207_0_v1.0.0.pkl", arrays)
    assert find_smpl_file(tmp_path, "male").name == "basicModel_m_lbs_10_207_0_v1.0.0.pkl"
    converted = convert(models / "basicModel_f_lbs_10_207_0_v1.0.0.pkl")
    assert find_smpl_file(tmp_path, "female") == converted  # the converted .npz first
    write_npz(tmp_path / "SMPL_MALE.npz", arrays)
    assert find_smpl_file(tmp_path, "male") == tmp_path / "SMPL_MALE.npz"  # top folder first
    with pytest.raises(UserError) as info:
        find_smpl_file(tmp_path, "neutral")
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError):
        find_smpl_file(tmp_path / "nowhere", "male")
    # a resolved file in the wrong slot is still caught by the loader
    wrong = tmp_path / "other"
    wrong.mkdir()
    (wrong / "SMPL_FEMALE.pkl").write_bytes(files["pkl"].read_bytes())
    assert load_smpl(find_smpl_file(wrong, "female"), "female").gender == "female"


def test_cli_convert(files, tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert smpl_files._main(["convert", str(files["pkl"]), "--out", str(out)]) == 0
    assert out.is_file()
    assert smpl_files._main(["check", str(files["pkl"]), "--gender", "male"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "female" in err


def test_npz_with_pickled_objects(arrays, tmp_path):
    import scipy.sparse as sp

    extra = write_npz(tmp_path / "SMPL_MALE.npz", {**arrays, "bs_style": np.array({"a": 1}, dtype=object)})
    assert load_smpl(extra, "male").num_betas == 10  # unneeded object entries are skipped
    sparse = write_npz(tmp_path / "SMPL_FEMALE.npz",
                       {**arrays, "J_regressor": np.array(sp.csc_matrix(arrays["J_regressor"]), dtype=object)})
    assert "J_regressor" in _one_line_error(sparse, "female")
