"""What a pass is, and the registry of passes by name.

A pass is one kind of ground truth rendered per sample. It declares, as data and small
functions, everything the pipeline and the farm need to know about it:

* ``name``: the name a config lists under ``passes:``;
* ``blender_setup(spec)``: the Blender settings of its render (:class:`BlenderSetup`). The
  adapter (``render/blender_scene.py``) applies them, renders, and restores every value it
  changed, so no pass's settings leak into the next one;
* ``raw``: where its render goes first (a temporary next to ``<folder>/<stem><suffix>``);
* ``decode(raw, sample, layers)``: the render read back into named per-pixel layers
  (:class:`Layer`), e.g. ``I``, ``U``, ``V``; later passes may read earlier passes' layers;
* each layer's resampling rule, which the image effects apply (occluders clear a covered
  pixel, lens distortion resamples by the rule: :data:`NEAREST`, :data:`EXACT`,
  :data:`VECTOR`, or :data:`LINEAR` for the photograph itself);
* ``outputs``: the files it writes (folder and extension) and ``write(...)``, which writes
  them from the final layers and returns their names (what the farm's manifest lists).

Passes are pure Python (NumPy, OpenCV and OpenEXR lazily); only the adapter touches `bpy`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..io_utils import temporary_sibling

__all__ = ["LINEAR", "NEAREST", "EXACT", "VECTOR", "RESAMPLING", "CORNER_IUV_ATTRIBUTE", "CORNER_SURFACE_ATTRIBUTE", "Layer", "Output",
           "Emission", "BlenderSetup", "SampleContext", "Pass", "register", "unregister", "get_pass", "pass_names", "resolve",
           "output_folders", "run_folders", "sample_file_candidates", "SAMPLE_FOLDERS", "SurfaceHits", "Aov",
           "shared_exact_settings", "aov_name", "person_of_pixels"]

# Resampling rules for image effects that move pixels (lens distortion).
LINEAR = "linear"    # the photograph: bilinear
NEAREST = "nearest"  # ids, part labels, masks: the value of the nearest rendered pixel
EXACT = "exact"      # continuous surface values (U, V, depth, normals, barycentrics): the value at the
                     # exact surface point the output pixel sees. Under lens distortion that point is found
                     # by a ray cast through undistort(p) (appearance/lens_exact.py) and every layer of that
                     # pixel, NEAREST ones included, is recomputed there by its pass's `exact_values`
                     # (or, for a pass without one, copied from a rendered pixel on the same surface);
                     # where none is found the pixel is background past a silhouette, else (rare) all its
                     # layers come from the nearest rendered pixel. Either way one output pixel's values
                     # belong to one surface point.
VECTOR = "vector"    # image-plane vectors (optical flow): moved and transformed with the warp
RESAMPLING = (LINEAR, NEAREST, EXACT, VECTOR)

# Mesh data the Blender adapter gives every person object, for passes to emit.
CORNER_IUV_ATTRIBUTE = "densesynth_iuv"  # FLOAT_COLOR corner attribute (I, U, V, 1)
CORNER_SURFACE_ATTRIBUTE = "densesynth_surface"  # FLOAT_COLOR corner attribute (face index, [0|1], [0|1], 1)
# and each person object's pass index: person number + 1 (0 = nobody), emitted by ShaderNodeObjectInfo.

# Folders of a sample the pipeline itself writes (not a pass's): spec, record, debug geometry.
SAMPLE_FOLDERS = ("specs", "records")
OPTIONAL_SAMPLE_FOLDERS = ("geometry",)


@dataclass(frozen=True)
class Layer:
    """One named per-pixel array a pass decodes into (H, W[, C])."""

    name: str
    resample: str = NEAREST
    occludable: bool = True  # an occluder's pixel becomes background (0) in this layer

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLING:
            raise ValueError(f"layer {self.name}: resample must be one of {RESAMPLING}, got {self.resample!r}")


@dataclass(frozen=True)
class Output:
    """Files `<folder>/<stem><extension>` a pass writes (one of `extensions` per sample);
    `always=False`: only for some samples."""

    folder: str
    extensions: tuple[str, ...]
    always: bool = True


@dataclass(frozen=True)
class Emission:
    """A material override emitting one shader node's output as is (exact label passes)."""

    material_name: str
    node: str                                   # e.g. "ShaderNodeAttribute"
    socket: str                                 # the node output emitted, e.g. "Color"
    node_settings: tuple[tuple[str, Any], ...] = ()  # attributes set on the node
    # Nodes the output goes through before it is emitted, in order: (node type, its attribute
    # settings, the output socket passed on); each takes the previous output at input 0.
    then: tuple[tuple[str, tuple[tuple[str, Any], ...], str], ...] = ()


@dataclass(frozen=True)
class Aov:
    """A pass's value written to a shader AOV instead of emitted, so that several exact passes
    share one render (one scene synchronisation instead of one each: ~0.65 s a render at any
    resolution on 2 cores). `kind` is Cycles' AOV type: "VALUE" (one channel) or "COLOR"
    (three); `source` is the node chain, as for an emission. The values are bit-identical to
    the emission's (measured: max difference 0 for person index, depth, normals, surface)."""

    kind: str
    source: Emission


@dataclass(frozen=True)
class BlenderSetup:
    """What one render needs of Blender. `settings` are (attribute path from the scene, value)
    pairs applied in order (an image format before its colour depth); `emit` replaces every
    material (None: the scene's own); `show_ground`: the shadow catcher renders. `aovs`:
    (AOV name, Aov) written by the override material into a multilayer EXR (shared exact
    render; `emit` is then None and the Combined pass is a constant)."""

    settings: tuple[tuple[str, Any], ...]
    emit: Emission | None = None
    show_ground: bool = False
    aovs: tuple[tuple[str, Aov], ...] = ()


# The settings every exact (1 sample, unfiltered, undenoised, untransformed) EXR pass uses:
# what was measured to read back bit-exact on Blender 5.0 (see render/blender_scene.py).
def exact_exr_settings(spec: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return (
        ("world.cycles.sampling_method", "NONE"),  # emission only: no world map to build
        ("cycles.samples", 1),
        ("cycles.use_denoising", False),
        ("cycles.seed", spec["render"]["cycles_seed"]),  # the sample's seed, as the beauty pass's
        ("cycles.max_bounces", 0),
        ("render.filter_size", 0.0),
        ("view_settings.view_transform", "Standard"),
        ("view_settings.look", "None"),
        ("view_settings.exposure", 0.0),
        ("view_settings.gamma", 1.0),
        ("render.image_settings.file_format", "OPEN_EXR"),
        ("render.image_settings.color_mode", "RGBA"),
        ("render.image_settings.color_depth", "32"),
        ("render.image_settings.exr_codec", "ZIP"),
    )


def shared_exact_settings(spec: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The exact settings with a multilayer EXR (one layer per AOV) and no compositing (the
    compositor would write its single result instead of the render's layers)."""
    multilayer = (("render.image_settings.media_type", "MULTI_LAYER_IMAGE"),
                  ("render.image_settings.file_format", "OPEN_EXR_MULTILAYER"))
    kept = tuple((k, v) for k, v in exact_exr_settings(spec)
                 if k not in ("render.image_settings.file_format", "render.image_settings.color_mode"))
    return multilayer + kept + (("render.use_compositing", False),)


def aov_name(pass_name: str) -> str:
    """The AOV (and EXR layer) a shared pass writes: `densesynth_<pass>`."""
    return f"densesynth_{pass_name}"


@dataclass
class SampleContext:
    """What a pass may know of the sample it renders, decodes and writes."""

    spec: dict[str, Any]
    out: Path
    num_people: int
    backdrop: np.ndarray | None = None  # RGB float (H, W, 3): what the beauty pass composites over
    labels_changed: bool = False        # set once image effects (occluders, lens) changed the labels
    # The posed scene, for passes computed from geometry rather than rendered (renders = False):
    people: list[Any] | None = None           # scene/person.PosedPerson per person, world frame
    camera: Any = None                        # scene/camera.PinholeCamera
    bodies: dict[str, Any] | None = None      # loaded body model per body kind
    dist_coeffs: np.ndarray | None = None     # the lens applied to the labels (None: pinhole)
    occlusion_out: np.ndarray | None = None   # (H, W) bool, occluders in the final image
    config: dict[str, Any] = field(default_factory=dict)  # the run's config (a pass's own section)

    @property
    def stem(self) -> str:
        return self.spec["stem"]


@dataclass(frozen=True)
class SurfaceHits:
    """The exact surface points that N output pixels see (lens distortion: each output pixel's
    ray through its undistorted point, cast on the posed scene; appearance/lens_exact.py).
    What a pass needs to recompute its layers there (:meth:`Pass.exact_values`)."""

    face: np.ndarray        # (N,) int64 triangle index in the person's own body mesh
    person: np.ndarray      # (N,) int64 which person (1-based, as the person_index layer)
    bary: np.ndarray        # (N, 3) float64 barycentrics of the hit on the 3D triangle (perspective-correct)
    point: np.ndarray       # (N, 3) float64 the hit in OpenCV's camera frame, metres (z = depth)
    normal: np.ndarray      # (N, 3) float64 the triangle's unit normal, camera frame, facing the camera
    corner_iuv: np.ndarray  # (N, 3, 3) float64 the triangle's per-corner (I, U, V)


class Pass:
    """Base of every pass; a subclass sets the class attributes and overrides the methods."""

    name: ClassVar[str]
    layers: ClassVar[tuple[Layer, ...]] = ()
    outputs: ClassVar[tuple[Output, ...]] = ()
    raw: ClassVar[tuple[str, str]]            # (folder, suffix) of the render's temporary
    requires: ClassVar[tuple[str, ...]] = ()  # passes whose layers `decode` reads
    stage: ClassVar[str] = "label_pass"       # the timing stage its render counts under
    renders: ClassVar[bool] = True            # False: no Blender render, no raw, no decode; only write
    # A pass whose render is one exact emission may also offer it as an AOV: when several such
    # passes are wanted for a sample they share one render (pipeline.py), each decoding the
    # same single-layer EXR from its layer as from its own render (R, or R, G, B).
    aov: ClassVar[Aov | None] = None

    def wanted(self, sample: SampleContext) -> bool:
        """Whether this sample needs the pass at all (default: every sample)."""
        return True

    def raw_path(self, sample: SampleContext) -> Path:
        folder = sample.out / self.raw[0]
        folder.mkdir(parents=True, exist_ok=True)
        return temporary_sibling(folder / f"{sample.stem}{self.raw[1]}")

    def blender_setup(self, spec: dict[str, Any]) -> BlenderSetup:
        raise NotImplementedError

    def decode(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The pass's layers from its render (it may consume `raw`; leftovers are removed)."""
        raise NotImplementedError

    def write(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        """Write the pass's files from the final layers; returns their names relative to the run."""
        raise NotImplementedError

    def exact_values(self, hits: SurfaceHits, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The pass's layers at exact surface points ((N, ...) per layer it can recompute), used
        where lens distortion makes a pixel look between rendered pixels. Layers left out are
        copied from a rendered pixel on the same surface near the point (default: all)."""
        return {}


def person_of_pixels(layers: dict[str, np.ndarray], shown: np.ndarray) -> np.ndarray:
    """(H, W) uint8: which person (1-based) each pixel of `shown` shows, 0 elsewhere. The
    person_index layer; a one-person sample has none, and its every pixel is person 1."""
    person = layers.get("person_index")
    return np.where(shown, 1 if person is None else person, 0).astype(np.uint8)


_REGISTRY: dict[str, Pass] = {}


def register(cls: type[Pass]) -> type[Pass]:
    """Class decorator: register one instance of the pass under its name."""
    if cls.name in _REGISTRY:
        raise ValueError(f"a pass named {cls.name!r} is already registered")
    names = {layer.name for p in _REGISTRY.values() for layer in p.layers}
    clash = names & {layer.name for layer in cls.layers}
    if clash:
        raise ValueError(f"pass {cls.name!r}: layers {sorted(clash)} already belong to another pass")
    missing = [r for r in cls.requires if r not in _REGISTRY]
    if missing:
        raise ValueError(f"pass {cls.name!r} requires {missing}: register those first")
    _REGISTRY[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    """Remove a pass from the registry (tests; a plug-in that is switched off)."""
    _REGISTRY.pop(name, None)


def get_pass(name: str) -> Pass:
    return _REGISTRY[name]


def pass_names() -> tuple[str, ...]:
    """Every registered pass, in registration (= render) order."""
    return tuple(_REGISTRY)


def resolve(names: list[str] | tuple[str, ...]) -> list[Pass]:
    """The passes `names` asks for, in render order; ValueError (one line) when a name is
    unknown, repeated, or lacks a pass it requires."""
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown passes {unknown}: known are {', '.join(_REGISTRY)}")
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ValueError(f"passes {repeated} are listed more than once")
    for name in names:
        lacking = [r for r in _REGISTRY[name].requires if r not in names]
        if lacking:
            raise ValueError(f"pass {name!r} needs passes {lacking} too")
    return [p for n, p in _REGISTRY.items() if n in names]


def output_folders(passes: list[Pass], optional: bool = False) -> list[str]:
    """The folders the passes write into for every sample (with `optional`, also those
    written for some samples only), plus the pipeline's own (specs/, records/)."""
    folders = [o.folder for p in passes for o in p.outputs if o.always or optional]
    folders += list(SAMPLE_FOLDERS) + (list(OPTIONAL_SAMPLE_FOLDERS) if optional else [])
    return list(dict.fromkeys(folders))


def run_folders() -> list[str]:
    """Every folder any registered pass (or the pipeline) may write a sample file or a
    temporary into: where the farm looks for a sample's files and cleans stale temporaries."""
    passes = list(_REGISTRY.values())
    folders = output_folders(passes, optional=True) + [p.raw[0] for p in passes]
    return list(dict.fromkeys(folders))


def sample_file_candidates() -> list[tuple[str, str]]:
    """(folder, extension) of every file a sample may own, from the registered passes and the
    pipeline (spec, record, debug geometry): what the farm probes when no list is given."""
    candidates = [(o.folder, e) for p in _REGISTRY.values() for o in p.outputs for e in o.extensions]
    candidates += [("specs", ".json"), ("records", ".json"), ("geometry", ".npz")]
    return list(dict.fromkeys(candidates))


def remove(path: Path) -> None:
    """Delete a temporary if it is there."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
