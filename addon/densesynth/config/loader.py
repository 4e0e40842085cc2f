"""Load, merge and validate configuration files.

The embedded `defaults.yaml` is the schema: its keys are the only keys, its values fix each
key's kind, and `CHOICES` lists the keys with a closed set of values. Keeping one file as
both documentation and schema means a new option cannot be added without a default.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from ..core import schema
from ..errors import UserError

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")

CHOICES: dict[str, tuple[str, ...]] = {
    "render.device": ("CPU", "GPU"),
    "render.image_format": ("png", "jpg"),
    "render.denoise_quality": ("high", "balanced", "fast"),
    "camera.photo_placement": ("ground", "frame"),
    "render.denoise_prefilter": ("accurate", "fast", "none"),
    # body.kind: the registered body kinds (bodies/kinds.py)
    "body.gender": ("random", "female", "male", "neutral"),
    "backdrop.kind": ("procedural", "embedded", "folder", "coco"),
    "backdrop.coco_people": ("any", "without", "with"),
    "backdrop.missing": ("error", "fallback"),
    "appearance.texture_kind": ("procedural", "folder"),
    "sequence.camera_path": ("fixed", "moving"),
}

# Sections whose keys are the user's own names (a user mapping replaces the default one).
FREE_MAPPINGS = {"camera.rigs": 4}  # each value: a list of this many numbers

# Lists of strings that may be empty.
STRING_LISTS = {"motion.clips", "motion.clip_folders"}

# Keys added after run folders already existed: at their default value they stay out of the
# config hash, so that those folders keep their identity (and resume) under this version.
# A dotted name is one setting of a section ("camera.views_per_scene"), a plain one a whole
# key or section ("passes").
HASH_WHEN_CHANGED = ("passes", "body3d", "depth_bins", "camera.views_per_scene", "render.persistent_data",
                     "render.adaptive_threshold", "render.max_bounces", "render.light_tree", "render.denoise_quality",
                     "render.denoise_prefilter", "camera.photo_placement",
                     "garments", "lights.photo_environment_probability", "lights.photo_environment_strength",
                     "sequence")

# Keys whose value is a range [low, high] rather than a fixed pair.
NOT_RANGES = {"render.resolution"}
PROBABILITIES = {"motion.mirror_probability", "appearance.long_sleeve_probability",
                 "appearance.long_trousers_probability", "camera.rig_probability", "camera.min_visible_fraction",
                 "lights.sky_probability", "harmonise.probability", "occluders.probability", "lens.probability",
                 "camera_effects.blur_probability", "camera_effects.motion_blur_fraction",
                 "camera_effects.noise_probability", "camera_effects.jpeg_probability", "garments.probability",
                 "garments.hair_probability", "lights.photo_environment_probability"}


# Keys naming a folder or file: a relative one means the user's working folder (made
# absolute when the config is loaded, so that worker processes started elsewhere agree).
PATH_KEYS = ("body.smpl_dir", "appearance.texture_folder", "occluders.folder", "backdrop.folder",
             "backdrop.coco_annotations", "backdrop.coco_images")
PATH_LISTS = ("motion.clip_folders",)

# Numeric bounds [low, high] per key (every element of a range); `None` = unbounded there.
# A low bound in POSITIVE is exclusive (> low). Every number of the config must also be finite.
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "render.beauty_samples": (1, 65536), "render.threads": (0, 4096), "render.adaptive_threshold": (0, 1),
    "render.max_bounces": (0, 1024), "body.num_betas": (1, 300),
    "body3d.uv_map_size": (1, 4096), "depth_bins.bins": (1, 255), "depth_bins.step_m": (0, 10), "camera.views_per_scene": (1, 1000),
    "sequence.length": (1, 10000), "sequence.frame_step": (1, 1000), "sequence.orbit_deg": (-180, 180),
    "sequence.pan_deg": (-90, 90), "sequence.dolly_fraction": (-0.9, 10),
    "people.spacing_m": (0, 100), "people.min_gap_m": (0, 100),
    "camera.focal_length_mm": (0, 2000), "camera.sensor_width_mm": (0, 200), "camera.elevation_deg": (-89, 89),
    "camera.roll_deg": (-180, 180), "camera.azimuth_deg": (-360, 360), "camera.look_at_jitter": (0, 1),
    "lights.sun_strength": (0, 1000), "lights.sun_elevation_deg": (-90, 90), "lights.sun_azimuth_deg": (-360, 360),
    "lights.area_power_w": (0, 1e6), "lights.area_distance_m": (0, 100), "lights.ambient_strength": (0, 1000),
    "lights.color_temperature_k": (1000, 40000), "appearance.texture_size": (16, 8192),
    "appearance.pattern_scale": (0, 1e4), "appearance.roughness": (0, 1), "harmonise.strength": (0, 1),
    "occluders.count": (0, 64), "occluders.scale": (0, 10), "occluders.pole_scale": (0, 10),
    "occluders.rotation_deg": (0, 360), "occluders.feather_px": (0, 100), "occluders.default_set_size": (0, 1000),
    "lens.strength": (0, 10), "lens.max_shift_fraction": (0, 1),
    "lights.photo_environment_strength": (0, 100), "garments.top_thickness_m": (0, 0.3), "garments.bottom_thickness_m": (0, 0.3),
    "garments.fold_amplitude_m": (0, 0.1), "garments.fold_scale_m": (0.01, 5), "garments.hair_thickness_m": (0, 0.3),
    "camera_effects.gaussian_sigma_px": (0, 100), "camera_effects.motion_length_px": (0, 1000),
    "camera_effects.gain": (0, 1), "camera_effects.read_noise": (0, 1), "camera_effects.jpeg_quality": (1, 100),
    "annotation.points_per_person": (1, 100000),
}
POSITIVE = {"camera.focal_length_mm", "camera.sensor_width_mm", "people.spacing_m", "lights.area_distance_m",
            "appearance.pattern_scale", "occluders.scale", "occluders.pole_scale"}
# Camera rigs: [height m, distance m, azimuth deg, focal length mm].
RIG_BOUNDS = ((-100.0, 1000.0, False), (0.0, 1000.0, True), (-360.0, 360.0, False), (0.0, 2000.0, True))


class ConfigError(UserError):
    """A configuration file or value that cannot be used."""


def default_config() -> dict[str, Any]:
    with open(DEFAULTS_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def section_defaults(section: str) -> dict[str, Any]:
    """A fresh copy of one section of `defaults.yaml` (for callers handed a partial section)."""
    return default_config()[section]


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the user's file, then command-line overrides (dotted keys), validated."""
    config = default_config()
    source = "defaults"
    if path is not None:
        source = str(path)
        user = _read_yaml(Path(path))
        _merge(config, user, source, prefix="")
    for dotted, value in (overrides or {}).items():
        _set_dotted(config, dotted, value, source="command line")
    _validate(config, source)
    _absolute_paths(config)
    return config


def _absolute_paths(config: dict[str, Any]) -> None:
    """Relative folders mean the user's working folder (never the repository or a worker's)."""
    def absolute(text: str) -> str:
        return os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(text))) if text else text

    for dotted in PATH_KEYS:
        section, key = dotted.split(".")
        config[section][key] = absolute(config[section][key])
    for dotted in PATH_LISTS:
        section, key = dotted.split(".")
        config[section][key] = [absolute(entry) for entry in config[section][key]]


def config_hash(config: dict[str, Any]) -> str:
    """Identity of a configuration: a run in a folder belongs to exactly one hash."""
    defaults = default_config()
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in config.items()}
    for name in HASH_WHEN_CHANGED:
        section, _, key = name.partition(".")
        if not key:
            if section in config and config[section] == defaults.get(section):
                del config[section]
        elif isinstance(config.get(section), dict) and key in config[section] and \
                config[section][key] == defaults.get(section, {}).get(key):
            del config[section][key]
    from ..spec.model import SPEC_VERSION

    if SPEC_VERSION > 1:  # a run folder holds specs of one layout: a new layout is a new identity
        config["spec_version"] = SPEC_VERSION
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _read_yaml(path: Path) -> dict[str, Any]:
    return schema.read_yaml_mapping(path, ConfigError, sections="render:, body:, ...")


def _merge(base: dict[str, Any], user: dict[str, Any], source: str, prefix: str) -> None:
    free = {dotted: (lambda dotted, value, width=width: _free_mapping(dotted, value, width, source))
            for dotted, width in FREE_MAPPINGS.items()}
    schema.merge(base, user, source, coerce=_coerce, error=ConfigError, prefix=prefix, free_mappings=free)


def _free_mapping(dotted: str, value: Any, width: int, source: str) -> dict[str, list[float]]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"config {source}: '{dotted}' must be a mapping of names to lists of {width} numbers")
    for name, entry in value.items():
        if not (isinstance(entry, list) and len(entry) == width
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry)):
            raise ConfigError(f"config {source}: '{dotted}.{name}' must be a list of {width} numbers, got {entry!r}")
    return value


def _set_dotted(config: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    schema.set_dotted(config, dotted, value, source, coerce=_coerce)


def _coerce(dotted: str, default: Any, value: Any, source: str) -> Any:
    """Check `value` against the kind of `default` and return it in that kind."""
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"config {source}: '{dotted}' must be {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        if isinstance(default, int) and not isinstance(value, int):
            raise fail("a whole number")
        if not _finite(value):
            raise fail("a finite number")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise fail("a list")
        if default and all(isinstance(d, (int, float)) for d in default):
            if len(value) != len(default) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                raise fail(f"a list of {len(default)} numbers")
            if not all(_finite(v) for v in value):
                raise fail(f"a list of {len(default)} finite numbers")
            if all(isinstance(d, int) for d in default) and not all(isinstance(v, int) for v in value):
                raise fail(f"a list of {len(default)} whole numbers")
        elif default and all(isinstance(d, str) for d in default) or dotted in STRING_LISTS:
            if not all(isinstance(v, str) for v in value):
                raise fail("a list of names")
        return value
    return value


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value) and abs(value) <= 1e12
    except (OverflowError, TypeError):
        return False


def _check_bounds(config: dict[str, Any], source: str) -> None:
    """The one numeric rule: every value of a key within its documented bounds."""
    for dotted, (low, high) in BOUNDS.items():
        value = _get(config, dotted)
        for item in value if isinstance(value, list) else [value]:
            below = low is not None and (item <= low if dotted in POSITIVE else item < low)
            if below or (high is not None and item > high):
                where = ("more than " if dotted in POSITIVE else "at least ") + f"{low:g}"
                raise ConfigError(f"config {source}: '{dotted}' must be {where} and at most {high:g}, got {value!r}")
    for name, rig in config["camera"]["rigs"].items():
        for item, (low, high, positive), what in zip(rig, RIG_BOUNDS, ("height", "distance", "azimuth", "focal length")):
            if not _finite(item) or (item <= low if positive else item < low) or item > high:
                raise ConfigError(f"config {source}: 'camera.rigs.{name}' {what} must lie in {low:g}..{high:g}, got {rig!r}")


def _validate(config: dict[str, Any], source: str) -> None:
    _check_bounds(config, source)
    from ..appearance.harmonise import harmoniser_names  # local: cv2 only when validating

    method = config["harmonise"]["method"]
    if method not in harmoniser_names():
        raise ConfigError(f"config {source}: 'harmonise.method' {method!r} is not a known harmoniser: use one of "
                          f"{', '.join(harmoniser_names())} (plug-ins: an installed entry point of group "
                          "densesynth.harmonisers; a config never names a module to import)")
    _check_passes(config, source)
    from ..bodies.kinds import body_kind_names  # the registry: cheap, models load lazily

    for dotted, choices in {**CHOICES, "body.kind": body_kind_names()}.items():
        value = _get(config, dotted)
        if value not in choices:
            raise ConfigError(f"config {source}: '{dotted}' must be one of {', '.join(choices)}, got {value!r}")
    for dotted, value in _leaves(config):
        if dotted in NOT_RANGES or dotted.startswith(tuple(FREE_MAPPINGS)) or not isinstance(value, list) or len(value) != 2:
            continue
        if all(isinstance(v, (int, float)) for v in value) and value[0] > value[1]:
            raise ConfigError(f"config {source}: range '{dotted}' has low {value[0]} above high {value[1]}")
    for dotted in PROBABILITIES:
        if not 0.0 <= _get(config, dotted) <= 1.0:
            raise ConfigError(f"config {source}: '{dotted}' must lie in [0, 1]")
    width, height = config["render"]["resolution"]
    if not (isinstance(width, int) and isinstance(height, int) and 16 <= width <= 8192 and 16 <= height <= 8192):
        raise ConfigError(f"config {source}: 'render.resolution' must be two whole numbers in 16..8192")
    positive = ("render.beauty_samples", "annotation.points_per_person", "appearance.texture_size")
    for dotted in positive:
        if _get(config, dotted) < 1:
            raise ConfigError(f"config {source}: '{dotted}' must be at least 1")
    if config["render"]["threads"] < 0:
        raise ConfigError(f"config {source}: 'render.threads' must be 0 (all cores) or more")
    bins = config["depth_bins"]["bins"]
    if not (isinstance(bins, int) and bins % 2 == 1) or config["depth_bins"]["step_m"] <= 0:
        raise ConfigError(f"config {source}: 'depth_bins.bins' must be an odd whole number (the pelvis bin in the "
                          f"middle; SURREAL: 19) and 'depth_bins.step_m' above 0, got {bins!r} and "
                          f"{config['depth_bins']['step_m']!r}")
    from ..motion.builtin_clips import BUILTIN_CLIPS  # local: motion is optional at import

    if not config["motion"]["clips"] and not config["motion"]["clip_folders"]:
        raise ConfigError(f"config {source}: 'motion.clips' and 'motion.clip_folders' are both empty: no motion to draw")
    unknown = [c for c in config["motion"]["clips"] if c not in BUILTIN_CLIPS]
    if unknown:
        raise ConfigError(
            f"config {source}: 'motion.clips' names unknown clips {unknown}; built-in: {', '.join(BUILTIN_CLIPS)}"
        )
    count = config["people"]["count"]
    if not (all(isinstance(c, int) for c in count) and 1 <= count[0] <= count[1] <= 8):
        raise ConfigError(f"config {source}: 'people.count' must be two whole numbers with 1 <= low <= high <= 8")
    fraction = config["camera"]["person_height_fraction"]
    if not 0.05 <= fraction[0] <= fraction[1] <= 1.5:
        raise ConfigError(f"config {source}: 'camera.person_height_fraction' must lie within [0.05, 1.5]")


def _check_passes(config: dict[str, Any], source: str) -> None:
    """`passes` names registered passes (passes/), with those the annotations need."""
    from ..passes import REQUIRED_PASSES, resolve  # local: the registry imports the passes

    names = config["passes"]
    try:
        config["passes"] = [p.name for p in resolve(names)]  # in render order: the order never matters
    except ValueError as exc:
        raise ConfigError(f"config {source}: 'passes': {exc}") from None
    missing = [name for name in REQUIRED_PASSES if name not in names]
    if config["people"]["count"][1] > 1 and "person_index" not in names:
        missing.append("person_index")
    if missing:
        raise ConfigError(f"config {source}: 'passes' must include {', '.join(missing)}: the COCO-DensePose "
                          "annotations are made from them (person_index: whenever people.count allows several)")
    _check_sequence(config, source)


def _check_sequence(config: dict[str, Any], source: str) -> None:
    """Sequences and views are two groupings of the same indices; flow needs neighbouring frames."""
    length = config["sequence"]["length"]
    if length > 1 and config["camera"]["views_per_scene"] > 1:
        raise ConfigError(f"config {source}: 'sequence.length' {length} and 'camera.views_per_scene' "
                          f"{config['camera']['views_per_scene']} cannot be combined: set one of them to 1")
    if "flow" in config["passes"] and length < 2:
        raise ConfigError(f"config {source}: pass 'flow' needs 'sequence.length' of 2 or more (flow is between "
                          "the frames of a sequence)")


_get = schema.get
_leaves = schema.leaves
