"""Colour harmonisation of the rendered person to the backdrop they were pasted on.

A rendered person lit by the spec's lights rarely has the colour cast of a photograph or
procedural backdrop, which makes composites easy to spot. The classical fix is Reinhard et
al.'s colour transfer ("Color Transfer between Images", 2001): shift and scale each channel
of the person's colours (here in CIE Lab) so their mean and spread match the backdrop's.
``strength`` in [0, 1] blends between the original (0) and the full transfer (1); 0.2-0.4
gives a plausible shared cast without painting the person in the backdrop's colours.

Only the person changes: each pixel moves by ``strength * alpha`` of its transfer, so
background pixels (alpha 0) are returned bit-identical and the soft edge blends smoothly.
Labels are untouched (no pixel moves).

Learned harmonisers plug in by name. A harmoniser is any callable
``(image uint8 BGR (H, W, 3), mask float32 (H, W) in [0, 1]) -> image uint8 BGR`` (the
:class:`Harmoniser` protocol) giving its *full-strength* result; register it with
:func:`register_harmoniser` (e.g. in a plug-in module's import) and select it in the
config by name; :func:`harmonise` applies the strength and keeps the background exact for
every method. An installed package can also offer one without any import by the user: an
entry point in the group ``densesynth.harmonisers`` (``[project.entry-points.
"densesynth.harmonisers"] my-harmoniser = "my_package.module:function"`` in its
pyproject.toml) is selectable by its name. A config names harmonisers only; it never
names a module to import (a data file must not run code).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import UserError

__all__ = [
    "Harmoniser",
    "reinhard_transfer",
    "harmonise",
    "register_harmoniser",
    "get_harmoniser",
    "harmoniser_names",
    "person_and_backdrop_lab_means",
]

# Spread ratios are clipped to this range: a flat backdrop must not flatten a textured person.
_STD_RATIO = (0.5, 2.0)


@runtime_checkable
class Harmoniser(Protocol):
    """``(image uint8 BGR (H, W, 3), person mask float32 (H, W) in [0, 1]) -> uint8 BGR``.

    Returns the fully harmonised image; :func:`harmonise` blends it by strength and mask.
    """

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


def _check(image: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {image.dtype} {image.shape}")
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.ndim == 3:
        alpha = alpha[..., 0]
    if alpha.shape != image.shape[:2]:
        raise ValueError(f"person alpha {alpha.shape} does not match the image {image.shape[:2]}")
    return image, np.clip(alpha, 0.0, 1.0)


def _to_lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)


def _from_lab(lab: np.ndarray) -> np.ndarray:
    bgr = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2BGR)
    return np.clip(np.round(bgr * 255.0), 0, 255).astype(np.uint8)


def _stats(lab: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = lab[region].astype(np.float64)
    return values.mean(axis=0), values.std(axis=0)


def person_and_backdrop_lab_means(image: np.ndarray, person_alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean Lab colour of the person (alpha > 0.5) and of the pure backdrop (alpha <= 0.01)."""
    image, alpha = _check(image, person_alpha)
    lab = _to_lab(image)
    return _stats(lab, alpha > 0.5)[0], _stats(lab, alpha <= 0.01)[0]


def reinhard_transfer(image: np.ndarray, person_alpha: np.ndarray, strength: float = 1.0,
                      match_spread: bool = True) -> np.ndarray:
    """Reinhard colour transfer in Lab from the backdrop onto the person.

    Statistics come from the person's pixels (alpha > 0.5) and the pure backdrop (alpha <=
    0.01). Each person pixel's Lab colour moves by ``strength * alpha`` towards
    ``(lab - mean_person) * clip(std_backdrop / std_person, 0.5, 2) + mean_backdrop``, so the
    person's mean Lab colour moves exactly ``strength`` of the way to the backdrop's (before
    8-bit rounding and gamut clipping). ``match_spread=False`` transfers the mean only.
    """
    image, alpha = _check(image, person_alpha)
    s = float(np.clip(strength, 0.0, 1.0))
    person, backdrop = alpha > 0.5, alpha <= 0.01
    if s == 0.0 or not person.any() or not backdrop.any():
        return image.copy()
    lab = _to_lab(image)
    mu_p, sd_p = _stats(lab, person)
    mu_b, sd_b = _stats(lab, backdrop)
    ratio = np.clip(sd_b / np.maximum(sd_p, 1e-6), *_STD_RATIO) if match_spread else np.ones(3)
    target = (lab - mu_p) * ratio + mu_b
    weight = (s * alpha)[..., None]
    out = _from_lab(lab + weight * (target - lab))
    return np.where((alpha > 0)[..., None], out, image)


# ------------------------------------------------------------------------------ registry

_REGISTRY: dict[str, Harmoniser] = {}


def register_harmoniser(name: str, fn: Harmoniser, overwrite: bool = False) -> None:
    """Make ``fn`` (a :class:`Harmoniser`) selectable by ``name`` in the config."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"harmoniser names are non-empty strings without ':', got {name!r}")
    if not callable(fn):
        raise TypeError(f"harmoniser {name!r} is not callable")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"harmoniser {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = fn


ENTRY_POINT_GROUP = "densesynth.harmonisers"


def _entry_points() -> list:
    """Installed plug-ins: the entry points of :data:`ENTRY_POINT_GROUP` (not loaded yet)."""
    from importlib import metadata

    try:
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # a broken distribution's metadata must not stop the render
        return []


def harmoniser_names() -> list[str]:
    """Registered and installed (entry point) names, sorted."""
    return sorted(set(_REGISTRY) | {entry.name for entry in _entry_points()})


def get_harmoniser(name: str) -> Harmoniser:
    """The harmoniser registered as ``name``, or the installed entry point of that name.

    Raises :class:`UserError` (one line, listing the known names) for any other name; a
    ``"package.module:function"`` string is never imported.
    """
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    for entry in _entry_points() if isinstance(name, str) and ":" not in name else []:
        if entry.name == name:
            try:
                fn = entry.load()
            except Exception as exc:
                raise UserError(f"harmoniser {name!r} (entry point {entry.value} of {ENTRY_POINT_GROUP}) "
                                f"does not load: {type(exc).__name__}: {exc}; reinstall its package") from None
            if not callable(fn):
                raise UserError(f"harmoniser {name!r} (entry point {entry.value}) is not callable")
            _REGISTRY[name] = fn
            return fn
    raise UserError(f"unknown harmoniser {name!r}: use one of {', '.join(harmoniser_names())}, or install a "
                    f"package offering it as an entry point of group {ENTRY_POINT_GROUP}")


def harmonise(image: np.ndarray, person_alpha: np.ndarray, strength: float, method: str = "reinhard") -> np.ndarray:
    """Harmonise the person (``person_alpha`` (H, W) in [0, 1]) to the backdrop by ``strength``.

    ``strength`` 0 returns the image unchanged; background pixels (alpha 0) are always
    unchanged. ``"reinhard"`` blends in Lab (see :func:`reinhard_transfer`); any other
    method's full-strength output is blended in 8-bit BGR by ``strength * alpha``.
    """
    image, alpha = _check(image, person_alpha)
    s = float(np.clip(strength, 0.0, 1.0))
    if method == "reinhard":
        return reinhard_transfer(image, alpha, s)
    fn = get_harmoniser(method)
    if s == 0.0:
        return image.copy()
    full = np.asarray(fn(image, alpha))
    if full.shape != image.shape:
        raise ValueError(f"harmoniser {method!r} returned shape {full.shape}, expected {image.shape}")
    weight = (s * alpha)[..., None]
    blended = image.astype(np.float32) + weight * (full.astype(np.float32) - image.astype(np.float32))
    out = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return np.where((alpha > 0)[..., None], out, image)


def _reinhard_full(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return reinhard_transfer(image, mask, 1.0)


register_harmoniser("reinhard", _reinhard_full)
register_harmoniser("none", lambda image, mask: np.asarray(image).copy())
