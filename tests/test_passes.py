"""Passes as plug-ins: the registry, the config's `passes:` list, the farm's view of a
sample's files, and the image effects resampling each layer by its declared rule."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "addon"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from densesynth.appearance.lens import distort_labels, distort_layers, distortion_maps  # noqa: E402
from densesynth.appearance.occluders import apply_occlusion, occlude_layers  # noqa: E402
from densesynth.config import ConfigError, config_hash, load_config  # noqa: E402
from densesynth.core.label_maps import IUVMaps  # noqa: E402
from densesynth.passes import (RESAMPLING, get_pass, output_folders, pass_names, resolve, run_folders,  # noqa: E402
                               sample_file_candidates)

SPEC = {"stem": "00000000", "render": {"beauty_samples": 4, "denoise": True, "cycles_seed": 7, "shadow_catcher": True,
                                       "image_format": "png", "adaptive_threshold": 0.01, "max_bounces": 4,
                                       "light_tree": True, "denoise_quality": "high", "denoise_prefilter": "accurate"}}


def test_built_in_passes_are_registered_in_render_order():
    assert pass_names()[:3] == ("beauty", "iuv", "person_index")
    layers = [layer.name for name in pass_names() for layer in get_pass(name).layers]
    assert len(layers) == len(set(layers))  # a layer name belongs to one pass
    for name in pass_names():
        p = get_pass(name)
        assert all(layer.resample in RESAMPLING for layer in p.layers) and p.outputs
        if not p.renders:  # computed from the posed meshes (body3d): no Blender render
            continue
        setup = p.blender_setup(SPEC)
        formats = [value for dotted, value in setup.settings if dotted.endswith("file_format")]
        assert formats == ["PNG" if name == "beauty" else "OPEN_EXR"]
        assert (setup.emit is None) == (name == "beauty")


def test_resolve_orders_and_checks_names():
    assert [p.name for p in resolve(["person_index", "beauty", "iuv"])] == ["beauty", "iuv", "person_index"]
    with pytest.raises(ValueError, match="unknown passes"):
        resolve(["beauty", "depht"])
    with pytest.raises(ValueError, match="more than once"):
        resolve(["beauty", "iuv", "iuv"])
    with pytest.raises(ValueError, match="needs passes"):
        resolve(["beauty", "person_index"])


def test_config_lists_the_passes_and_the_loader_checks_them(tmp_path):
    config = load_config()
    assert config["passes"] == ["beauty", "iuv", "person_index"]
    path = tmp_path / "c.yaml"
    path.write_text("passes: [person_index, iuv, beauty]\n")
    assert load_config(path)["passes"] == config["passes"]
    # the default passes leave the hash as it was before `passes` existed (run folders resume)
    added = ("passes", "body3d", "garments", "sequence", "depth_bins")  # keys added since
    without = {k: v for k, v in config.items() if k not in added}
    without["camera"] = {k: v for k, v in without["camera"].items() if k not in ("views_per_scene", "photo_placement")}
    without["lights"] = {k: v for k, v in without["lights"].items() if not k.startswith("photo_environment")}
    without["render"] = {k: v for k, v in without["render"].items() if k not in (
        "persistent_data", "adaptive_threshold", "max_bounces", "light_tree", "denoise_quality", "denoise_prefilter")}
    import hashlib
    import json

    from densesynth.spec.model import SPEC_VERSION

    without["spec_version"] = SPEC_VERSION  # a new spec layout, and only that, makes a new identity
    old = hashlib.sha256(json.dumps(without, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert config_hash(config) == old
    path.write_text("passes: [beauty, iuv]\n")  # one person per image (the default): no person index needed
    single = load_config(path)
    assert single["passes"] == ["beauty", "iuv"] and config_hash(single) != old
    for text, needle in (("passes: [beauty, iuv, normal]\n", "unknown passes"),
                         ("passes: [beauty]\n", "must include iuv"),
                         ("passes: [beauty, iuv]\npeople:\n  count: [1, 2]\n", "must include person_index"),
                         ("passes: beauty\n", "must be a list")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=needle):
            load_config(path)


def test_the_farm_derives_a_samples_files_from_the_passes():
    folders = output_folders(resolve(["beauty", "iuv", "person_index"]))
    assert folders == ["images", "iuv", "labels24", "labels14", "iuv_png", "specs", "records"]
    assert {"iuv_raw", "persons", "geometry"} <= set(run_folders())
    assert ("persons", ".png") in sample_file_candidates() and ("iuv", ".exr") in sample_file_candidates()


def labels(h=12, w=16, seed=0):
    rng = np.random.default_rng(seed)
    I = rng.integers(0, 25, (h, w)).astype(np.uint8)
    body = I > 0
    U = np.where(body, rng.random((h, w)), 0).astype(np.float32)
    V = np.where(body, rng.random((h, w)), 0).astype(np.float32)
    person = np.where(body, rng.integers(1, 3, (h, w)), 0)
    return IUVMaps(I, U, V, body.astype(np.float32), person)


def as_layers(maps):
    return {"I": maps.I, "U": maps.U, "V": maps.V, "coverage": maps.alpha, "person_index": maps.person_index}


def test_layer_rules_drive_the_lens_and_the_occluders():
    maps = labels()
    rules = {layer.name: layer for p in resolve(["beauty", "iuv", "person_index"]) for layer in p.layers}
    K = np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])
    warp = distortion_maps(K, [-0.2, 0.05, 0, 0, 0], 16, 12)
    image = np.random.default_rng(1).integers(0, 256, (12, 16, 3)).astype(np.uint8)
    layers = {**as_layers(maps), "image": image}
    warped = distort_layers(layers, {n: rules[n].resample for n in layers}, warp)
    expected = distort_labels(maps, warp)
    for field in ("I", "U", "V", "alpha", "person_index"):
        assert np.array_equal(getattr(IUVMaps.from_layers(warped), field), getattr(expected, field)), field
    assert warped["image"].shape == image.shape and warped["image"].dtype == np.uint8
    with pytest.raises(NotImplementedError):
        distort_layers({"flow": np.zeros((12, 16, 2), np.float32)}, {"flow": "vector"}, warp)
    mask = np.zeros((12, 16), bool)
    mask[3:7, 4:9] = True
    occludable = [n for n in layers if rules[n].occludable]
    cleared = occlude_layers(layers, occludable, mask)
    reference = apply_occlusion(maps, mask)
    for name, field in (("I", "I"), ("U", "U"), ("V", "V"), ("coverage", "alpha"), ("person_index", "person_index")):
        assert np.array_equal(cleared[name], getattr(reference, field))
    assert cleared["image"] is image  # the photograph gets the occluder composited, not cleared


@pytest.mark.blender
def test_a_new_pass_is_one_module_and_its_registration(tmp_path, anny_archive):
    """What a newcomer writes for a new pass (here: a body mask), and nothing else: the
    config names it, the renderer renders, decodes and writes it, the farm lists its file."""
    pytest.importorskip("bpy")
    import cv2

    from conftest import TEST_CONFIG
    from densesynth.config import config_hash
    from densesynth.decode.iuv_exr import read_exr_channel
    from densesynth.decode.label_maps import write_png
    from densesynth.passes import (NEAREST, BlenderSetup, Emission, Layer, Output, Pass, exact_exr_settings,
                                   register, unregister)
    from densesynth.pipeline import SampleRenderer

    @register
    class BodyMaskPass(Pass):
        name = "body_mask_example"
        layers = (Layer("body_mask", NEAREST),)
        outputs = (Output("masks", (".png",)),)
        raw = ("masks", ".exr")

        def blender_setup(self, spec):
            return BlenderSetup(exact_exr_settings(spec), emit=Emission("example_mask", "ShaderNodeObjectInfo",
                                                                         "Object Index"))

        def decode(self, raw, sample, layers):
            return {"body_mask": (read_exr_channel(raw, "R") > 0).astype(np.uint8)}

        def write(self, raw, sample, layers):
            write_png(sample.out / "masks" / f"{sample.stem}.png", layers["body_mask"] * 255)
            return [f"masks/{sample.stem}.png"]

    try:
        path = tmp_path / "config.yaml"
        path.write_text(TEST_CONFIG + "passes: [beauty, iuv, body_mask_example]\n")
        config = load_config(path)
        renderer = SampleRenderer(config, config_hash(config), 0, tmp_path / "run")
        renderer.render(renderer.draw_spec(0))
        assert "masks/00000000.png" in renderer.files and renderer.files[-1] == "records/00000000.json"
        mask = cv2.imread(str(tmp_path / "run" / "masks" / "00000000.png"), cv2.IMREAD_UNCHANGED) > 0
        body = cv2.imread(str(tmp_path / "run" / "labels24" / "00000000.png"), cv2.IMREAD_UNCHANGED) > 0
        assert body.any() and not (body & ~mask).any() and (mask & ~body).sum() <= 0.01 * body.sum()
    finally:
        unregister("body_mask_example")
