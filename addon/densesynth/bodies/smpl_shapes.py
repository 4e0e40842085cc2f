"""Random SMPL body shapes (betas) and genders.

Distribution: SMPL's shape space is a PCA of registered body scans, *whitened* by
construction: ``shapedirs[..., i]`` is the i-th principal direction scaled by its standard
deviation, so over each gender's training population ``beta ~ N(0, I)``. The population
prior is therefore independent standard normals; we sample the first ``num_betas``
(default 10, the v1.0 files' count) with standard deviation ``std`` (default 1) and clip
them to ``+-clip`` (default 3) so no sample leaves the range the scans support; higher
components (v1.1 files carry up to 300) stay 0. The shape space is per gender: a beta
vector is only meaningful with the gender's model it was sampled for.

Values are returned as plain Python floats (they go into sample records as JSON).
"""
from __future__ import annotations

import numpy as np

from .smpl_files import GENDERS

__all__ = ["NUM_SAMPLED_BETAS", "BETA_STD", "BETA_CLIP", "sample_betas", "sample_gender", "sample_smpl_shape"]

NUM_SAMPLED_BETAS = 10
BETA_STD = 1.0
BETA_CLIP = 3.0


def sample_betas(rng: np.random.Generator, num_betas: int = NUM_SAMPLED_BETAS, std: float = BETA_STD,
                 clip: float = BETA_CLIP) -> list[float]:
    """``num_betas`` independent N(0, std^2) values clipped to [-clip, clip], as plain floats."""
    if num_betas < 0 or std < 0 or clip <= 0:
        raise ValueError("num_betas and std must be >= 0 and clip > 0")
    values = np.clip(rng.normal(0.0, std, size=int(num_betas)), -clip, clip)
    return [float(v) for v in values]


def sample_gender(rng: np.random.Generator, gender: str = "random") -> str:
    """'female' / 'male' as asked, or one of the two with equal odds for 'random'."""
    if gender == "random":
        return ("female", "male")[int(rng.integers(2))]
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS} or 'random', got {gender!r}")
    return gender


def sample_smpl_shape(rng: np.random.Generator, gender: str = "random",
                      num_betas: int = NUM_SAMPLED_BETAS) -> dict:
    """{'gender': str, 'betas': [float, ...]} for one person (gender drawn first, then betas)."""
    chosen = sample_gender(rng, gender)
    return {"gender": chosen, "betas": sample_betas(rng, num_betas)}
