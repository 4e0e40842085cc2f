"""Camera effects: seeded, physically ordered, and each does what its name says."""
from __future__ import annotations

import json

import numpy as np
import pytest

from densesynth.appearance.camera_effects import (
    add_sensor_noise, apply_blur, apply_camera_effects, draw_camera_effects,
    jpeg_reencode, linear_to_srgb, motion_kernel, srgb_to_linear,
)
from densesynth.config import default_config


def _textured(seed=0, h=96, w=128):
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(30, 220, (h // 8, w // 8, 3)), np.ones((8, 8, 1)))
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _high_frequency_energy(image):
    g = image.astype(np.float64).mean(axis=2)
    spectrum = np.abs(np.fft.fft2(g - g.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(g.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(g.shape[1]))[None, :]
    return spectrum[np.maximum(fx, fy) > 0.25].sum()


def test_srgb_round_trip_is_exact():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(linear_to_srgb(srgb_to_linear(values)), values)


def test_effects_are_deterministic_per_seed():
    image = _textured()
    params = {"gain": 1e-3, "read_noise": 0.003}
    a = add_sensor_noise(image, params, np.random.default_rng(4))
    np.testing.assert_array_equal(a, add_sensor_noise(image, params, np.random.default_rng(4)))
    assert not np.array_equal(a, add_sensor_noise(image, params, np.random.default_rng(5)))
    for seed in range(5):
        drawn = draw_camera_effects(np.random.default_rng(seed))
        assert drawn == draw_camera_effects(np.random.default_rng(seed))
        assert json.loads(json.dumps(drawn)) == drawn
        first = apply_camera_effects(image, drawn)
        np.testing.assert_array_equal(first, apply_camera_effects(image, drawn))
        assert first.dtype == np.uint8 and first.shape == image.shape


def test_draws_cover_every_effect_and_respect_probabilities():
    draws = [draw_camera_effects(np.random.default_rng(s)) for s in range(300)]
    kinds = {d["blur"]["kind"] for d in draws if d["blur"]}
    assert kinds == {"gaussian", "motion"}
    assert 0.5 < np.mean([d["noise"] is not None for d in draws]) < 0.9
    q = [d["jpeg"]["quality"] for d in draws if d["jpeg"]]
    low, high = default_config()["camera_effects"]["jpeg_quality"]
    assert min(q) >= low and max(q) <= high
    off = {"blur_probability": 0, "noise_probability": 0, "jpeg_probability": 0}
    none = draw_camera_effects(np.random.default_rng(0), off)
    assert none["blur"] is None and none["noise"] is None and none["jpeg"] is None
    image = _textured()
    np.testing.assert_array_equal(apply_camera_effects(image, none), image)
    # Turning one effect off leaves the others' parameters as they were.
    only_blur_off = draw_camera_effects(np.random.default_rng(3), {"blur_probability": 0})
    full = draw_camera_effects(np.random.default_rng(3), {"blur_probability": 1})
    assert only_blur_off["noise"] == full["noise"] and only_blur_off["seed"] == full["seed"]


def test_noise_variance_grows_with_signal():
    # Flat grey patches of increasing brightness; read noise alone would give equal variance.
    levels = [40, 100, 160, 220]
    image = np.concatenate([np.full((64, 64, 3), v, np.uint8) for v in levels], axis=1)
    noisy = add_sensor_noise(image, {"gain": 2e-3, "read_noise": 0.0}, np.random.default_rng(1))
    linear = srgb_to_linear(noisy).astype(np.float64)
    var = [linear[:, 64 * i:64 * (i + 1)].var() for i in range(4)]
    assert all(b > a * 1.3 for a, b in zip(var, var[1:])), var
    # Shot-noise variance is gain * signal in linear light.
    signal = srgb_to_linear(np.array(levels, np.uint8)).astype(np.float64)
    np.testing.assert_allclose(var, 2e-3 * signal, rtol=0.25)
    # Mean is preserved (noise is zero-mean).
    means = [linear[:, 64 * i:64 * (i + 1)].mean() for i in range(4)]
    np.testing.assert_allclose(means, signal, rtol=0.03, atol=2e-3)
    # Read noise alone is signal-independent.
    read = srgb_to_linear(add_sensor_noise(image, {"gain": 0, "read_noise": 0.01}, np.random.default_rng(2)))
    rv = [read[:, 64 * i:64 * (i + 1)].astype(np.float64).var() for i in range(1, 4)]
    assert max(rv) / min(rv) < 1.5


@pytest.mark.parametrize("params", [{"kind": "gaussian", "sigma_px": 1.2},
                                    {"kind": "motion", "length_px": 7.0, "angle_deg": 30.0}])
def test_blur_reduces_high_frequency_energy(params):
    image = _textured(1)
    blurred = apply_blur(image, params)
    assert _high_frequency_energy(blurred) < 0.5 * _high_frequency_energy(image)
    # Blur averages light (linear values), so the linear mean is kept.
    assert abs(srgb_to_linear(blurred).mean() - srgb_to_linear(image).mean()) < 0.01
    np.testing.assert_array_equal(apply_blur(image, {"kind": "none"}), image)


def test_blur_does_not_move_content():
    # A single bright dot stays centred where it was (labels stay valid).
    image = np.zeros((41, 41, 3), np.uint8)
    image[20, 20] = 255
    for params in ({"kind": "gaussian", "sigma_px": 1.5}, {"kind": "motion", "length_px": 9.0, "angle_deg": 37.0}):
        w = srgb_to_linear(apply_blur(image, params))[..., 0].astype(np.float64)
        rows, cols = np.mgrid[0:41, 0:41]
        assert abs((w * rows).sum() / w.sum() - 20) < 0.05 and abs((w * cols).sum() / w.sum() - 20) < 0.05
    k = motion_kernel(6.5, 20.0)
    assert np.isclose(k.sum(), 1.0) and k.shape[0] % 2 == 1
    np.testing.assert_allclose(k, k[::-1, ::-1])


def test_jpeg_quality():
    image = _textured(2)
    low = jpeg_reencode(image, {"quality": 10})
    high = jpeg_reencode(image, {"quality": 100})
    err_low = np.abs(low.astype(float) - image).mean()
    err_high = np.abs(high.astype(float) - image).mean()
    assert err_low > 4.0 and err_high < 1.5 and err_high < err_low / 4
    np.testing.assert_array_equal(low, jpeg_reencode(image, {"quality": 10}))
    # Half-resolution chroma loses per-pixel colour detail even at quality 100.
    sub = jpeg_reencode(image, {"quality": 100, "subsampling": "420"})
    assert np.abs(sub.astype(float) - image).mean() > err_high


def test_rejects_non_bgr_images():
    with pytest.raises(ValueError):
        jpeg_reencode(np.zeros((8, 8), np.uint8), {"quality": 90})
