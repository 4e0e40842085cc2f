"""Colour harmonisation: the person moves towards the backdrop by the strength, nothing else moves."""
from __future__ import annotations

import numpy as np
import pytest

from densesynth.appearance import harmonise as hm
from densesynth.appearance.harmonise import (
    Harmoniser, get_harmoniser, harmonise, harmoniser_names, person_and_backdrop_lab_means, register_harmoniser,
    reinhard_transfer,
)
from densesynth.errors import UserError


def _scene(h=120, w=160, seed=0):
    """Bluish textured backdrop, a reddish textured 'person' with a soft rim."""
    rng = np.random.default_rng(seed)
    back = np.clip(np.array([160, 125, 100]) + rng.normal(0, 9, (h, w, 3)), 0, 255)
    person = np.clip(np.array([90, 110, 150]) + rng.normal(0, 7, (h, w, 3)), 0, 255)
    alpha = np.zeros((h, w), np.float32)
    alpha[25:100, 50:110] = 1.0
    alpha[24, 50:110] = alpha[100, 50:110] = alpha[25:100, 49] = alpha[25:100, 110] = 0.5  # soft rim
    image = np.round(person * alpha[..., None] + back * (1 - alpha[..., None])).astype(np.uint8)
    return image, alpha


@pytest.mark.parametrize("strength", [0.25, 0.5, 1.0])
def test_person_mean_moves_towards_backdrop_by_strength(strength):
    image, alpha = _scene()
    mu_p, mu_b = person_and_backdrop_lab_means(image, alpha)
    assert np.linalg.norm(mu_b - mu_p) > 20  # clearly different colours
    out = harmonise(image, alpha, strength)
    new_p, new_b = person_and_backdrop_lab_means(out, alpha)
    np.testing.assert_allclose(new_p, mu_p + strength * (mu_b - mu_p), atol=0.6)
    np.testing.assert_allclose(new_b, mu_b, atol=1e-9)


def test_background_unchanged_and_strength_zero_is_identity():
    image, alpha = _scene(seed=1)
    out = harmonise(image, alpha, 0.7)
    np.testing.assert_array_equal(out[alpha == 0], image[alpha == 0])
    assert np.abs(out[alpha == 1].astype(int) - image[alpha == 1]).mean() > 5
    # The soft rim moves about half as far as the interior.
    rim = alpha == 0.5
    full = reinhard_transfer(image, np.where(alpha > 0, 1.0, 0.0), 0.7)
    rim_move = np.abs(out[rim].astype(float) - image[rim]).mean()
    full_move = np.abs(full[rim].astype(float) - image[rim]).mean()
    assert 0.35 * full_move < rim_move < 0.65 * full_move
    np.testing.assert_array_equal(harmonise(image, alpha, 0.0), image)
    np.testing.assert_array_equal(harmonise(image, np.zeros_like(alpha), 1.0), image)  # nobody to harmonise


def test_spread_is_matched_within_limits():
    image, alpha = _scene(seed=2)
    out = reinhard_transfer(image, alpha, 1.0)
    lab_in = hm._to_lab(image)
    lab_out = hm._to_lab(out)
    person, back = alpha == 1, alpha == 0
    ratio = lab_out[person].std(0) / lab_in[person].std(0)
    wanted = np.clip(lab_in[back].std(0) / lab_in[person].std(0), 0.5, 2.0)
    np.testing.assert_allclose(ratio, wanted, rtol=0.1)
    means_only = reinhard_transfer(image, alpha, 1.0, match_spread=False)
    np.testing.assert_allclose(hm._to_lab(means_only)[person].std(0), lab_in[person].std(0), rtol=0.1)


def test_registry_plugs_a_harmoniser_by_name():
    image, alpha = _scene(seed=3)
    calls = []

    def invert(img, mask):
        calls.append(mask.dtype)
        return 255 - img

    assert isinstance(invert, Harmoniser)
    register_harmoniser("test-invert", invert, overwrite=True)
    assert "test-invert" in harmoniser_names() and "reinhard" in harmoniser_names()
    assert get_harmoniser("test-invert") is invert
    out = harmonise(image, alpha, 1.0, method="test-invert")
    inside = alpha == 1
    np.testing.assert_array_equal(out[inside], 255 - image[inside])
    np.testing.assert_array_equal(out[alpha == 0], image[alpha == 0])
    half = harmonise(image, alpha, 0.5, method="test-invert")
    np.testing.assert_allclose(half[inside].astype(float), 127.5, atol=0.51)
    np.testing.assert_array_equal(harmonise(image, alpha, 0.0, method="test-invert"), image)
    assert calls and calls[0] == np.float32
    with pytest.raises(ValueError, match="already registered"):
        register_harmoniser("test-invert", invert)
    # Import paths are never imported (a config must not run code; see test_hostile_inputs).
    with pytest.raises(UserError, match="unknown harmoniser"):
        get_harmoniser("densesynth.appearance.harmonise:reinhard_transfer")
    np.testing.assert_array_equal(harmonise(image, alpha, 1.0, method="none"), image)


def test_unknown_harmoniser_is_a_one_line_user_error():
    with pytest.raises(UserError, match="unknown harmoniser 'nope'.*reinhard") as info:
        harmonise(*_scene(), 0.5, method="nope")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="unknown harmoniser"):
        get_harmoniser("no_such_module_xyz:fn")
