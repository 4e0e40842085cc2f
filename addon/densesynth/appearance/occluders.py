"""2D cut-out occluders pasted in front of the person, with labels removed consistently.

An occluder is a BGRA uint8 image (straight alpha). An embedded procedural set needs no
download (:func:`default_occluders`: smooth blobs, boxes, bags, poles, leafy branches);
more come from a folder of RGBA images (:func:`load_occluders`).

Per sample, :func:`place_occluders` draws JSON-able placements over the person's box (they
belong in the spec), :func:`composite_occluders` pastes them and returns the occlusion
mask, and :func:`apply_occlusion` removes the hidden pixels from the IUV labels.

Hard mask, soft image: the occluder's footprint is its *hard* alpha (warped alpha > 0.5);
that binary mask is what the labels lose (I = 0, U = V = 0, alpha = 0), exactly like the
test rasteriser's ``occlusion_mask``. The image is blended with that hard mask blurred by a
Gaussian of ``feather_px``: an inner band just inside the edge (partly still showing the
person) and an outer band just outside it (partly showing the occluder), as an out-of-focus
or anti-aliased real edge would. The 0.5 contour of the feathered alpha stays on the hard
edge, so image and labels agree at the sub-pixel level on where the occluder ends.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..core.label_maps import IUVMaps
from ..errors import UserError
from .image_files import image_files, read_image

__all__ = [
    "OCCLUDER_KINDS",
    "default_occluders",
    "default_occluder_names",
    "load_occluders",
    "occluder_library",
    "person_bbox",
    "place_occluders",
    "composite_occluders",
    "apply_occlusion",
    "occlude_layers",
    "occluded_fraction",
]

OCCLUDER_KINDS = ("blob", "box", "bag", "pole", "leaves")
IMAGE_SUFFIXES = (".png", ".webp", ".tif", ".tiff")

def _settings(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The ``occluders:`` section: `cfg` over the defaults of ``config/defaults.yaml`` (their only home)."""
    from ..config.loader import section_defaults

    return {**section_defaults("occluders"), **(cfg or {})}


# ------------------------------------------------------------------------------ procedural set


def _shade(rng: np.random.Generator, h: int, w: int, colour: np.ndarray, grain: float = 0.06) -> np.ndarray:
    """A colour with a soft lighting gradient and fine grain, (h, w, 3) float32 BGR in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1))
    light = 0.8 + 0.35 * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    low = cv2.resize(rng.random((6, 6)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, grain, (h, w)).astype(np.float32)
    return np.clip(colour[None, None, :] * (light * (0.9 + 0.2 * low) + noise)[..., None], 0, 1)


def _rgba(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = np.dstack([np.round(colour * 255), np.round(np.clip(alpha, 0, 1) * 255)])
    return np.clip(out, 0, 255).astype(np.uint8)


def _blob(rng: np.random.Generator, size: int) -> np.ndarray:
    n = 360
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 6):
        r += rng.uniform(0, 0.25 / k * 2) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.6, 1.0)
    r = r / r.max() * 0.46 * size
    pts = np.column_stack([size / 2 + r * np.cos(t) * aspect, size / 2 + r * np.sin(t)])
    alpha = np.zeros((size, size), np.uint8)
    cv2.fillPoly(alpha, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    colour = _shade(rng, size, size, rng.uniform(0.1, 0.8, 3))
    return _rgba(colour, alpha / 255.0)


def _box(rng: np.random.Generator, size: int) -> np.ndarray:
    w = int(size * rng.uniform(0.6, 0.95))
    h = size
    c = np.array([0.25, 0.45, 0.62]) * rng.uniform(0.7, 1.1) if rng.random() < 0.6 else rng.uniform(0.15, 0.8, 3)
    colour = _shade(rng, h, w, c, grain=0.03)
    # A tape strip and a darker lid line.
    y = int(h * rng.uniform(0.15, 0.3))
    colour[y:y + max(2, h // 40)] *= 0.7
    x = int(w * rng.uniform(0.4, 0.6))
    half = max(2, w // 30)
    colour[:, x - half:x + half] = np.clip(colour[:, x - half:x + half] * 1.25, 0, 1)
    alpha = np.ones((h, w), np.float32)
    pad = 2
    alpha[:pad], alpha[-pad:], alpha[:, :pad], alpha[:, -pad:] = 0, 0, 0, 0
    return _rgba(colour, alpha)


def _bag(rng: np.random.Generator, size: int) -> np.ndarray:
    h, w = size, int(size * rng.uniform(0.7, 0.9))
    alpha = np.zeros((h, w), np.uint8)
    body_top = int(h * 0.35)
    radius = int(w * 0.08)
    cv2.rectangle(alpha, (4 + radius, body_top), (w - 5 - radius, h - 5), 255, -1)
    cv2.rectangle(alpha, (4, body_top + radius), (w - 5, h - 5 - radius), 255, -1)
    for cx, cy in ((4 + radius, body_top + radius), (w - 5 - radius, body_top + radius),
                   (4 + radius, h - 5 - radius), (w - 5 - radius, h - 5 - radius)):
        cv2.circle(alpha, (cx, cy), radius, 255, -1, cv2.LINE_AA)
    # Handle: a thick arc, with the hole inside it see-through.
    cv2.ellipse(alpha, (w // 2, body_top), (int(w * 0.28), int(h * 0.28)), 0, 180, 360, 255,
                max(4, size // 22), cv2.LINE_AA)
    colour = _shade(rng, h, w, rng.uniform(0.05, 0.85, 3), grain=0.04)
    return _rgba(colour, alpha / 255.0)


def _pole(rng: np.random.Generator, size: int) -> np.ndarray:
    h = size
    w = max(6, int(size * rng.uniform(0.04, 0.09)))
    base = rng.uniform(0.2, 0.7) * np.ones(3) + rng.uniform(-0.05, 0.05, 3)
    xx = np.linspace(-1, 1, w, dtype=np.float32)
    cylinder = 0.55 + 0.6 * np.sqrt(np.clip(1 - xx**2, 0, 1)) - 0.15 * xx  # round, lit from the left
    colour = np.clip(base[None, None, :] * cylinder[None, :, None] * np.ones((h, 1, 1), np.float32), 0, 1)
    colour = np.clip(colour + rng.normal(0, 0.015, colour.shape), 0, 1).astype(np.float32)
    if rng.random() < 0.5:  # a painted band
        y = int(h * rng.uniform(0.2, 0.7))
        colour[y:y + h // 12] = np.clip(colour[y:y + h // 12] * rng.uniform(0.4, 1.6, 3), 0, 1)
    alpha = np.ones((h, w), np.float32)
    alpha[:, 0] = alpha[:, -1] = 0
    return _rgba(colour, alpha)


def _leaves(rng: np.random.Generator, size: int) -> np.ndarray:
    alpha = np.zeros((size, size), np.uint8)
    colour = np.zeros((size, size, 3), np.float32)
    base = np.array([0.15, 0.5, 0.25]) * rng.uniform(0.6, 1.2, 3)  # BGR greens
    stem_angle = rng.uniform(-0.4, 0.4)
    for i in range(int(rng.integers(14, 26))):
        t = rng.uniform(0.05, 0.95)
        cx = size / 2 + np.sin(stem_angle) * (t - 0.5) * size + rng.normal(0, size * 0.12)
        cy = size * (1 - t)
        axes = (int(size * rng.uniform(0.06, 0.13)), int(size * rng.uniform(0.025, 0.05)))
        angle = rng.uniform(0, 180)
        leaf = np.zeros((size, size), np.uint8)
        cv2.ellipse(leaf, (int(cx), int(cy)), axes, angle, 0, 360, 255, -1, cv2.LINE_AA)
        shade = np.clip(base * rng.uniform(0.7, 1.3), 0, 1)
        a = leaf[..., None] / 255.0
        colour = colour * (1 - a) + shade * a
        alpha = np.maximum(alpha, leaf)
    # The twig.
    cv2.line(alpha, (int(size / 2 - np.sin(stem_angle) * size / 2), size - 1), (size // 2, size // 8), 255,
             max(2, size // 60), cv2.LINE_AA)
    twig = alpha > 0
    colour[twig & (colour.sum(-1) == 0)] = (0.1, 0.2, 0.3)
    colour = np.clip(colour * (0.9 + 0.2 * rng.random((size, size, 1))), 0, 1)
    return _rgba(colour, alpha / 255.0)


_MAKERS = {"blob": _blob, "box": _box, "bag": _bag, "pole": _pole, "leaves": _leaves}


def default_occluder_names(per_kind: int = 4) -> list[str]:
    """Names of the procedural set (without generating it)."""
    return [f"default/{kind}_{i}" for kind in OCCLUDER_KINDS for i in range(per_kind)]


@functools.lru_cache(maxsize=4)
def _default_set(per_kind: int, size: int, seed: int) -> tuple[tuple[str, np.ndarray], ...]:
    out = []
    for k, kind in enumerate(OCCLUDER_KINDS):
        for i in range(per_kind):
            image = _MAKERS[kind](np.random.default_rng([seed, k, i]), size)
            image.setflags(write=False)
            out.append((f"default/{kind}_{i}", image))
    return tuple(out)


def default_occluders(per_kind: int = 4, size: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """The embedded procedural set: ``{"default/<kind>_<i>": BGRA uint8}``, deterministic.

    Generated once per process (cached); the arrays are read-only.
    """
    return dict(_default_set(int(per_kind), int(size), int(seed)))


# ------------------------------------------------------------------------------ folder


def load_occluders(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every RGBA image in ``folder`` (PNG, WebP, TIFF) as ``{"folder/<file name>": BGRA uint8}``.

    Raises :class:`UserError` (one line, naming the folder or file) when the folder is
    missing, holds no such image, or an image is unreadable, has no alpha channel or is
    fully transparent. Read once per process and folder state (the folder's modification
    time): specs draw from the library for every sample.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UserError(f"occluder folder not found: {str(path)!r} (set occluders.folder to a folder of RGBA PNGs)")
    return dict(_read_folder(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _read_folder(folder: str, mtime_ns: int) -> tuple[tuple[str, np.ndarray], ...]:
    path = Path(folder)
    files = image_files(path, IMAGE_SUFFIXES, recursive=False)
    if not files:
        raise UserError(f"occluder folder {str(path)!r} holds no RGBA images ({', '.join(IMAGE_SUFFIXES)})")
    out = []
    for file in files:
        image = read_image(file, cv2.IMREAD_UNCHANGED, "occluder image")
        if image.ndim != 3 or image.shape[2] != 4:
            raise UserError(f"occluder image {str(file)!r} has no alpha channel: save it as RGBA")
        if image.dtype == np.uint16:
            image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
        elif image.dtype != np.uint8:
            raise UserError(f"occluder image {str(file)!r} is {image.dtype}: use 8- or 16-bit RGBA")
        if not np.any(image[..., 3] > 127):
            raise UserError(f"occluder image {str(file)!r} is fully transparent")
        image = np.ascontiguousarray(image)
        image.setflags(write=False)
        out.append((f"folder/{file.name}", image))
    return tuple(out)


def occluder_library(cfg: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The occluders the config asks for: the procedural set and/or a folder's images."""
    c = _settings(cfg)
    library: dict[str, np.ndarray] = {}
    if c["use_default_set"]:
        library.update(default_occluders(int(c["default_set_size"])))
    if c.get("folder"):
        library.update(load_occluders(c["folder"]))
    if not library:
        raise UserError("no occluders: set occluders.use_default_set to true or occluders.folder to a folder")
    return library


# ------------------------------------------------------------------------------ placement


def person_bbox(mask: np.ndarray) -> list[float] | None:
    """``[x0, y0, x1, y1]`` (inclusive pixel extent) of a boolean mask, or None when empty."""
    rows, cols = np.nonzero(np.asarray(mask))
    if rows.size == 0:
        return None
    return [float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())]


def place_occluders(rng: np.random.Generator, person_bbox: Sequence[float], image_size: tuple[int, int],
                    cfg: dict[str, Any] | None = None, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Draw occluder placements over the person's box ``[x0, y0, x1, y1]``.

    ``image_size`` is (W, H); ``names`` the library's keys (default: the procedural set's).
    Always draws ``count`` placements (``probability`` is the caller's: draw it first, or
    use ``cfg["count"] = [0, n]``). Each placement is JSON-able::

        {"occluder": name, "scale": occluder height / box height,
         "centre_in_box": [fx, fy] in [0, 1] (0 = box's left/top edge),
         "centre_px": [x, y], "height_px": h, "rotation_deg": r, "flip": bool,
         "feather_px": sigma}

    The centre lies inside the person's box (clipped to the image), so the occluder
    overlaps the person.
    """
    c = _settings(cfg)
    if names is None:
        names = default_occluder_names(int(c["default_set_size"]))
    names = sorted(names)
    if not names:
        raise ValueError("no occluder names to place")
    x0, y0, x1, y1 = (float(v) for v in person_bbox)
    bw, bh = max(x1 - x0 + 1.0, 1.0), max(y1 - y0 + 1.0, 1.0)
    width, height = int(image_size[0]), int(image_size[1])
    low, high = (int(v) for v in c["count"])
    count = int(rng.integers(low, high + 1))
    placements = []
    for _ in range(count):
        name = names[int(rng.integers(len(names)))]
        pole = "pole" in Path(name).stem.lower()
        scale = float(rng.uniform(*(c["pole_scale"] if pole else c["scale"])))
        fx, fy = (float(v) for v in rng.uniform(0.0, 1.0, 2))
        max_rot = float(c["rotation_deg"]) * (0.25 if pole else 1.0)
        rotation = float(rng.uniform(-max_rot, max_rot))
        flip = bool(rng.random() < 0.5)
        feather = float(rng.uniform(*c["feather_px"]))
        cx = min(max(x0 + fx * (bw - 1.0), 0.0), width - 1.0)
        cy = min(max(y0 + fy * (bh - 1.0), 0.0), height - 1.0)
        placements.append({
            "occluder": name,
            "scale": round(scale, 6),
            "centre_in_box": [round(fx, 6), round(fy, 6)],
            "centre_px": [round(cx, 4), round(cy, 4)],
            "height_px": round(scale * bh, 4),
            "rotation_deg": round(rotation, 4),
            "flip": flip,
            "feather_px": round(feather, 4),
        })
    return placements


# ------------------------------------------------------------------------------ compositing


def _warp_occluder(rgba: np.ndarray, placement: dict[str, Any], width: int, height: int):
    """Warp one occluder into the image: (premultiplied BGR float32, alpha float32)."""
    rgba = np.asarray(rgba)
    if placement.get("flip"):
        rgba = rgba[:, ::-1]
    src_h, src_w = rgba.shape[:2]
    zoom = float(placement["height_px"]) / src_h
    colour = rgba[..., :3].astype(np.float32) / 255.0
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    premult = np.dstack([colour * alpha[..., None], alpha])
    if zoom < 0.5:  # area pre-shrink against aliasing, then a near-1 zoom in the warp
        new_w, new_h = max(1, round(src_w * zoom)), max(1, round(src_h * zoom))
        premult = cv2.resize(premult, (new_w, new_h), interpolation=cv2.INTER_AREA)
        zoom *= src_h / new_h
        src_h, src_w = new_h, new_w
    centre_src = ((src_w - 1) / 2.0, (src_h - 1) / 2.0)
    M = cv2.getRotationMatrix2D(centre_src, float(placement["rotation_deg"]), zoom)
    M[:, 2] += np.asarray(placement["centre_px"], np.float64) - np.asarray(centre_src)
    warped = cv2.warpAffine(premult, M, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(0, 0, 0, 0))
    return warped[..., :3], warped[..., 3]


def composite_occluders(image: np.ndarray, placements: Sequence[dict[str, Any]],
                        occluder_images: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Paste the placements (in list order, back to front) over a uint8 BGR image.

    Returns ``(image uint8, occlusion_mask (H, W) bool)``: the mask is True wherever any
    occluder's hard alpha (warped alpha > 0.5) is; the image uses the feathered alpha (see
    the module doc). A placement naming an occluder not in ``occluder_images`` raises
    :class:`UserError`.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    out = image.astype(np.float32) / 255.0
    mask = np.zeros((height, width), bool)
    for placement in placements:
        name = placement["occluder"]
        if name not in occluder_images:
            raise UserError(f"occluder {name!r} is not in the occluder library (check occluders.folder)")
        premult, alpha = _warp_occluder(occluder_images[name], placement, width, height)
        hard = alpha > 0.5
        if not hard.any():
            continue
        mask |= hard
        colour = premult / np.maximum(alpha, 1e-6)[..., None]
        sigma = float(placement.get("feather_px", 0.0))
        hard_f = hard.astype(np.float32)
        if sigma > 0:
            soft = cv2.GaussianBlur(hard_f, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
            # Extend the occluder's colour outwards over the outer band (normalised convolution).
            reach = 2.0 * sigma + 1.0
            num = cv2.GaussianBlur(colour * hard_f[..., None], (0, 0), reach, borderType=cv2.BORDER_REPLICATE)
            den = cv2.GaussianBlur(hard_f, (0, 0), reach, borderType=cv2.BORDER_REPLICATE)
            extended = num / np.maximum(den, 1e-6)[..., None]
            colour = np.where(hard[..., None], colour, extended)
        else:
            soft = hard_f
        colour = np.clip(colour, 0.0, 1.0)
        out = out * (1.0 - soft[..., None]) + colour * soft[..., None]
    result = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
    return result, mask


def occlude_layers(layers: Mapping[str, np.ndarray], names: Sequence[str], occlusion_mask: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """The layers with every occluded pixel made background (0) in each layer of `names`
    (the occludable ones, ``passes.base.Layer.occludable``); other layers are kept as they are."""
    occ = np.asarray(occlusion_mask, dtype=bool)
    out = dict(layers)
    for name in names:
        a = np.asarray(layers[name])
        if a.shape[:2] != occ.shape:
            raise ValueError(f"occlusion mask {occ.shape} does not match the layer {name!r} {a.shape[:2]}")
        mask = occ.reshape(occ.shape + (1,) * (a.ndim - 2))
        out[name] = np.where(mask, np.zeros((), a.dtype), a)
    return out


def apply_occlusion(maps: IUVMaps, occlusion_mask: np.ndarray) -> IUVMaps:
    """The labels with every occluded pixel made background (I = 0, U = V = 0, alpha = 0,
    person index 0): what the test rasteriser's ``occlusion_mask`` produces."""
    occ = np.asarray(occlusion_mask, dtype=bool)
    if occ.shape != maps.shape:
        raise ValueError(f"occlusion mask {occ.shape} does not match the labels {maps.shape}")
    layers = {"I": maps.I, "U": maps.U, "V": maps.V, "alpha": maps.alpha}
    if maps.person_index is not None:
        layers["person_index"] = maps.person_index
    cleared = occlude_layers(layers, list(layers), occ)
    return dataclasses.replace(maps, I=cleared["I"], U=cleared["U"], V=cleared["V"], alpha=cleared["alpha"],
                               person_index=cleared.get("person_index"))


def occluded_fraction(person_mask: np.ndarray, occlusion_mask: np.ndarray) -> float:
    """Share of the person's visible pixels that the occluders hide (0 when no person)."""
    person = np.asarray(person_mask, dtype=bool)
    total = int(person.sum())
    return 0.0 if total == 0 else float((person & np.asarray(occlusion_mask, bool)).sum() / total)
