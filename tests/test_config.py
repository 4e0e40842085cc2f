"""Configuration: the embedded defaults are valid and the schema rejects what it should."""
from __future__ import annotations

import pytest

from densesynth.config import ConfigError, config_hash, default_config, load_config


def test_defaults_load_and_validate():
    config = load_config()
    assert config == default_config()
    assert config["render"]["resolution"] == [512, 512]


def test_user_file_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("camera:\n  elevation_deg: [0, 10]\n")
    config = load_config(path)
    assert config["camera"]["elevation_deg"] == [0, 10]
    assert config["camera"]["azimuth_deg"] == default_config()["camera"]["azimuth_deg"]


def test_hash_changes_with_any_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lights:\n  sun_strength: [1.0, 2.0]\n")
    assert config_hash(load_config(path)) != config_hash(load_config())
    assert config_hash(load_config()) == config_hash(load_config())


def test_override_from_command_line_is_checked():
    assert load_config(None, {"render.resolution": [640, 480]})["render"]["resolution"] == [640, 480]
    with pytest.raises(ConfigError):
        load_config(None, {"render.resolution": [640, 4]})


@pytest.mark.parametrize("text", [
    "render: 3\n",
    "renderr:\n  device: CPU\n",
    "render:\n  denoise: 1\n",
    "motion:\n  mirror_probability: 1.5\n",
    "camera:\n  focal_length_mm: [30]\n",
    "- a list\n",
])
def test_bad_files_are_rejected(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_camera_rigs_are_the_users_own_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("camera:\n  rig_probability: 1.0\n  rigs:\n    dolly: [1.2, 3.0, 15.0, 40.0]\n")
    assert load_config(path)["camera"]["rigs"] == {"dolly": [1.2, 3.0, 15.0, 40.0]}
    path.write_text("camera:\n  rigs:\n    dolly: [1.2, 3.0]\n")
    with pytest.raises(ConfigError, match="camera.rigs.dolly"):
        load_config(path)


def test_shipped_configs_load():
    from conftest import REPO

    for path in sorted((REPO / "configs").glob("*.yaml")):
        config = load_config(path)
        assert config_hash(config) != config_hash(default_config()), path
