"""Camera effects on the final image: optical blur, sensor noise and JPEG re-encoding.

Each effect is ``f(image, params, rng) -> image`` on a uint8 BGR image (H, W, 3), and is
deterministic for a given ``rng`` seed; :func:`draw_camera_effects` draws the parameters
as a JSON-able dict (with its own noise seed) that belongs in the sample's spec, and
:func:`apply_camera_effects` replays them in a camera's physical order:

    optics (defocus / motion blur) -> sensor (shot + read noise) -> ISP (JPEG)

These effects never touch the labels. None of them moves image content: blur spreads each
point symmetrically about where it is (a centred kernel; the motion blur kernel is centred
too), noise changes values only, JPEG works in fixed 8x8 blocks. The surface point seen at
a pixel's centre is unchanged, so the exact IUV labels, masks and keypoints stay correct;
like a real photo's, the blurred image simply carries less detail at the edges than the
labels. (Lens distortion, which does move pixels, is ``lens.py`` and is applied to both.)

Noise is added in linear light: the sRGB image is decoded, each linear value ``x`` (1 =
white) collects ``x / gain`` photo-electrons, shot noise is Poisson in that count
(variance ``gain * x``: it grows with the signal), read noise is Gaussian with standard
deviation ``read_noise`` (in linear units of white), and the result is re-encoded as sRGB.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

__all__ = [
    "srgb_to_linear",
    "linear_to_srgb",
    "add_sensor_noise",
    "apply_blur",
    "motion_kernel",
    "jpeg_reencode",
    "apply_camera_effects",
    "draw_camera_effects",
]

def _settings(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The ``camera_effects:`` section: `cfg` over the defaults of ``config/defaults.yaml``
    (their only home). Every range is [low, high] drawn uniformly (log-uniformly for the
    gain), every probability is per sample."""
    from ..config.loader import section_defaults

    return {**section_defaults("camera_effects"), **(cfg or {})}


def _rng(rng: np.random.Generator | int | None, params: dict[str, Any]) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        rng = params.get("seed", 0)
    return np.random.default_rng(int(rng))


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {image.dtype} {image.shape}")
    return image


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 (or [0, 1] float) sRGB -> float32 linear light in [0, 1]."""
    x = np.asarray(image, dtype=np.float32)
    if np.asarray(image).dtype == np.uint8:
        x = x / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Float linear light -> uint8 sRGB (clipped, rounded)."""
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    s = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)
    return np.clip(np.round(s * 255.0), 0, 255).astype(np.uint8)


def add_sensor_noise(image: np.ndarray, params: dict[str, Any], rng: np.random.Generator | int | None = None
                     ) -> np.ndarray:
    """Shot (Poisson, ``gain``) plus read (Gaussian, ``read_noise``) noise in linear light.

    ``params``: ``gain`` (linear units per electron; 0 disables shot noise),
    ``read_noise`` (std in linear units; 0 disables it). ``rng``: a Generator, a seed, or
    None for ``params["seed"]``.
    """
    image = _check(image)
    gen = _rng(rng, params)
    gain = float(params.get("gain", 0.0))
    read = float(params.get("read_noise", 0.0))
    linear = srgb_to_linear(image).astype(np.float64)
    if gain > 0:
        linear = gen.poisson(linear / gain) * gain
    if read > 0:
        linear = linear + gen.normal(0.0, read, linear.shape)
    return linear_to_srgb(linear)


def motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """Normalised, centred line kernel of the given length (anti-aliased ends)."""
    length = max(float(length_px), 1.0)
    size = int(np.ceil(length)) // 2 * 2 + 3  # odd, with room for the anti-aliased ends
    kernel = np.zeros((size, size), np.float32)
    c = (size - 1) / 2.0
    a = np.deg2rad(angle_deg)
    # Supersampled segment of the given length through the centre.
    t = np.linspace(-length / 2.0, length / 2.0, int(length * 16) + 1)
    x, y = c + t * np.cos(a), c - t * np.sin(a)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w.astype(np.float32))
    # Symmetrise exactly so the kernel cannot shift the image.
    kernel = 0.5 * (kernel + kernel[::-1, ::-1])
    return kernel / kernel.sum()


def apply_blur(image: np.ndarray, params: dict[str, Any], rng: np.random.Generator | int | None = None
               ) -> np.ndarray:
    """Defocus (``kind: gaussian``, ``sigma_px``) or motion (``kind: motion``, ``length_px``,
    ``angle_deg``) blur in linear light; ``kind: none`` (or a missing kind) is the identity.

    Deterministic; ``rng`` is accepted for a uniform signature and unused.
    """
    image = _check(image)
    kind = params.get("kind", "none")
    if kind == "none":
        return image.copy()
    linear = srgb_to_linear(image)
    if kind == "gaussian":
        sigma = float(params["sigma_px"])
        if sigma <= 0:
            return image.copy()
        out = cv2.GaussianBlur(linear, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    elif kind == "motion":
        kernel = motion_kernel(float(params["length_px"]), float(params.get("angle_deg", 0.0)))
        out = cv2.filter2D(linear, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    else:
        raise ValueError(f"unknown blur kind {kind!r} (gaussian, motion or none)")
    return linear_to_srgb(out)


def jpeg_reencode(image: np.ndarray, params: dict[str, Any], rng: np.random.Generator | int | None = None
                  ) -> np.ndarray:
    """Encode as JPEG at ``params["quality"]`` (1..100) and decode again (deterministic).

    ``params["subsampling"]`` is ``"420"`` (half-resolution chroma, what cameras and the web
    mostly use) or ``"444"`` (full chroma); missing, it is 444 at quality >= 90 and 420 below.
    """
    image = _check(image)
    quality = int(np.clip(int(params["quality"]), 1, 100))
    subsampling = str(params.get("subsampling", "444" if quality >= 90 else "420"))
    factors = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}
    if subsampling not in factors:
        raise ValueError(f"JPEG subsampling must be '420' or '444', got {subsampling!r}")
    flags = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factors[subsampling]]
    ok, encoded = cv2.imencode(".jpg", image, flags)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def apply_camera_effects(image: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Replay a :func:`draw_camera_effects` dict: blur, then noise (seeded), then JPEG."""
    out = _check(image)
    if params.get("blur"):
        out = apply_blur(out, params["blur"])
    if params.get("noise"):
        out = add_sensor_noise(out, params["noise"], np.random.default_rng(int(params["seed"])))
    if params.get("jpeg"):
        out = jpeg_reencode(out, params["jpeg"])
    return out


def draw_camera_effects(rng: np.random.Generator, cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """Draw one sample's camera effects; missing ``cfg`` keys take the defaults
    of ``config/defaults.yaml``.

    Returns ``{"blur": {...} | None, "noise": {...} | None, "jpeg": {...} | None, "seed": int}``
    with plain floats and ints (JSON-able). The same number of random draws is made whatever
    the probabilities, so changing one probability does not reshuffle the other effects.
    """
    c = _settings(cfg)
    u = rng.random(5)
    sigma = float(rng.uniform(*c["gaussian_sigma_px"]))
    length = float(rng.uniform(*c["motion_length_px"]))
    angle = float(rng.uniform(0.0, 180.0))
    lo, hi = (float(v) for v in c["gain"])
    gain = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if lo > 0 else float(rng.uniform(lo, hi))
    read = float(rng.uniform(*c["read_noise"]))
    quality = int(rng.integers(int(c["jpeg_quality"][0]), int(c["jpeg_quality"][1]) + 1))
    seed = int(rng.integers(0, 2**31 - 1))

    blur = None
    if u[0] < c["blur_probability"]:
        if u[1] < c["motion_blur_fraction"]:
            blur = {"kind": "motion", "length_px": round(length, 4), "angle_deg": round(angle, 4)}
        else:
            blur = {"kind": "gaussian", "sigma_px": round(sigma, 4)}
    noise = {"gain": gain, "read_noise": round(read, 6)} if u[2] < c["noise_probability"] else None
    jpeg = None
    if u[3] < c["jpeg_probability"]:
        jpeg = {"quality": quality, "subsampling": "444" if quality >= 90 else "420"}
    return {"blur": blur, "noise": noise, "jpeg": jpeg, "seed": seed}
