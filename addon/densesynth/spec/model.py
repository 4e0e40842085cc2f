"""The sample spec as a typed, versioned model, read and written here and nowhere else.

A spec is plain JSON (``specs/<stem>.json``): every random draw of one sample and the few
values derived from them. The types below name every field the renderer reads; at run time
a spec stays the dict JSON gives (so that a spec written, read and written again is
byte-identical). ``spec_version`` says which layout a file has: this version reads only its
own, and any other is one clear error (re-render, or use the version that wrote it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, TypedDict

from ..errors import UserError

SPEC_VERSION = 2  # 2: the beauty pass's sampling and denoising settings

__all__ = ["SPEC_VERSION", "SpecError", "SampleSpec", "RenderSpec", "PersonSpec", "read_spec", "parse_spec",
           "write_spec", "dumps_spec"]


class SpecError(UserError):
    """A spec file that this version cannot read (another version, damaged, not a spec)."""


class RenderSpec(TypedDict):
    width: int
    height: int
    beauty_samples: int
    denoise: bool
    denoise_quality: str     # high | balanced | fast
    denoise_prefilter: str   # accurate | fast | none
    adaptive_threshold: float  # 0 = adaptive sampling off
    max_bounces: int
    light_tree: bool
    image_format: str        # png | jpg
    shadow_catcher: bool
    cycles_seed: int


class BodySpec(TypedDict, total=False):
    kind: str                # a registered body kind (bodies/kinds.py)
    stream: str
    phenotype: dict[str, float]  # anny
    gender: str              # smpl
    betas: list[float]       # smpl


class MotionSpec(TypedDict, total=False):
    clip: str
    source: str              # builtin | folder
    phase: float             # builtin clips: where in the clip, 0..1
    folder: str              # folder clips
    frame: int               # folder clips: a frame that passed the quality filter
    mirror: bool
    stream: str


class PlacementSpec(TypedDict):
    x_m: float
    y_m: float
    yaw_deg: float


class PersonSpec(TypedDict):
    body: BodySpec
    motion: MotionSpec
    placement: PlacementSpec


class AnnotationSpec(TypedDict):
    points_per_person: int
    point_seed: int


class SampleSpec(TypedDict, total=False):
    spec_version: int
    stem: str
    index: int
    run_seed: int
    sample_seed: int
    config_hash: str
    render: RenderSpec
    persons: list[PersonSpec]
    appearance: list[dict[str, Any]]   # per person: clothes, skin, texture (appearance/clothing.py);
                                       # `garments` when dressed (appearance/garment_geometry.py)
    camera: dict[str, Any]             # the draws and `fitted` (scene/camera.py); on photographs
                                       # `placement` {"rule": "photo_people" | "ranges", ...}
    lights: dict[str, Any]             # sun, area, ambient, steer_by_backdrop; `environment`
                                       # {"kind": "photo", "strength"} when lit by the photograph
    backdrop: dict[str, Any]           # procedural parameters, `photo` for photographs
    annotation: AnnotationSpec
    harmonise: Optional[dict[str, Any]]
    scene: dict[str, int]              # only with camera.views_per_scene > 1: {"id", "view", "views", "seed"}
    occluders: list[dict[str, Any]]    # placements (appearance/occluders.py)
    lens: dict[str, Any]               # dist_coeffs [k1, k2, p1, p2, k3]
    camera_effects: dict[str, Any]     # blur, noise, jpeg, seed


def parse_spec(text: str, source: str = "spec") -> SampleSpec:
    """A spec from its JSON text; SpecError (one line, naming `source`) for another version,
    a damaged file or one that is not a spec."""
    try:
        spec = json.loads(text)
    except ValueError:
        raise SpecError(f"{source} is not valid JSON: it is damaged; render the sample again") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{source} is not a sample spec (a JSON object): render the sample again")
    version = spec.get("spec_version")
    if version != SPEC_VERSION:
        raise SpecError(f"{source} has spec_version {version!r}, but this DenseSynth reads version {SPEC_VERSION} "
                        "only: render the run again with this version, or read it with the version that wrote it")
    return spec  # type: ignore[return-value]


def read_spec(path: str | os.PathLike) -> SampleSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the spec {path} ({getattr(exc, 'strerror', None) or exc}): "
                        "render the sample again") from None
    return parse_spec(text, str(path))


def dumps_spec(spec: SampleSpec | dict[str, Any]) -> str:
    """The one serialisation: sorted keys, one-space indent, a final newline."""
    return json.dumps(spec, indent=1, sort_keys=True) + "\n"


def write_spec(path: str | os.PathLike, spec: SampleSpec | dict[str, Any]) -> None:
    """Write a spec atomically (its version checked: only this version's specs are written)."""
    from ..io_utils import atomic_write_text

    if spec.get("spec_version") != SPEC_VERSION:
        raise ValueError(f"refusing to write a spec of version {spec.get('spec_version')!r} as {SPEC_VERSION}")
    atomic_write_text(Path(path), dumps_spec(spec))
