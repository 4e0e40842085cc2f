"""Sample specs: what one sample is, drawn from the config and the seeds, as plain JSON.

A spec holds every random draw (and the named seed stream it came from), plus the few
values derived from them that the renderer needs (the fitted camera pose), so that the
renderer reads nothing but the spec and the assets.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

from .draws import Draws
from .model import SPEC_VERSION, SampleSpec, dumps_spec, write_spec  # noqa: F401  (the one reader/writer)
from .seeds import child_seed, sample_seed, stream
from .groups import group_position, group_seed
from .sequence import (FrameTiming, builtin_at_frame, camera_on_path, draw_sequence as _draw_sequence,
                       first_frame_persons, folder_at_frame, sequence_start_frames)


def sample_stem(index: int) -> str:
    return f"{index:08d}"


def draw_spec(config: dict[str, Any], config_id: str, run_seed: int, index: int,
              fit_camera: Callable[[dict[str, Any]], dict[str, Any]]) -> SampleSpec:
    """Draw the spec of sample `index`; `fit_camera` derives the camera pose from the drawn person.

    With `camera.views_per_scene: N` (> 1), samples N*g .. N*g+N-1 are N views of one posed
    scene g: people, motion, clothing, lights and backdrop come from the scene's seed, the
    camera (and everything drawn after the render: image effects, points) from the sample's
    own; each view stays its own sample, renderable alone. N = 1 draws exactly as before.

    With `sequence.length: N` (> 1), samples N*g .. N*g+N-1 are N consecutive frames of one
    clip (spec/sequence.py): everything but the motion frame and the camera's place on its
    path comes from the sequence's seed; the camera is fitted once, on the first frame."""
    seed = sample_seed(run_seed, index)
    views = config["camera"]["views_per_scene"]
    length = config.get("sequence", {}).get("length", 1)
    scene_seed = group_seed(run_seed, index, views, "scene")  # == seed when views == 1
    frame = None
    if length > 1:  # the loader refuses views and sequences together
        scene_seed = group_seed(run_seed, index, length, "sequence")
        where = group_position(index, length)
        frame = FrameTiming(where.position, length, config["sequence"]["frame_step"])
    look_seed = seed if frame is None else scene_seed  # camera, placement: the sequence's when on
    width, height = config["render"]["resolution"]
    spec: dict[str, Any] = {
        "spec_version": SPEC_VERSION,
        "stem": sample_stem(index),
        "index": index,
        "run_seed": run_seed,
        "sample_seed": seed,
        "config_hash": config_id,
        "render": {
            "width": width,
            "height": height,
            "beauty_samples": config["render"]["beauty_samples"],
            "denoise": config["render"]["denoise"],
            "denoise_quality": config["render"]["denoise_quality"],
            "denoise_prefilter": config["render"]["denoise_prefilter"],
            "adaptive_threshold": config["render"]["adaptive_threshold"],
            "max_bounces": config["render"]["max_bounces"],
            "light_tree": config["render"]["light_tree"],
            "image_format": config["render"]["image_format"],
            "shadow_catcher": config["render"]["shadow_catcher"],
            "cycles_seed": child_seed(seed, "render"),
        },
        "persons": _draw_people(config, scene_seed, frame),
        "camera": _draw_camera(config["camera"], look_seed),
        "lights": _draw_lights(config["lights"], scene_seed),
        "backdrop": _draw_backdrop(config["backdrop"], scene_seed),
        "annotation": {
            "points_per_person": config["annotation"]["points_per_person"],
            "point_seed": child_seed(seed, "points"),
        },
    }
    spec["appearance"] = [_draw_appearance(config["appearance"], scene_seed, number, _gender(person),
                                           config["garments"])
                          for number, person in enumerate(spec["persons"])]
    if views > 1:  # recorded only when on: default specs keep their bytes
        where = group_position(index, views)
        spec["scene"] = {"id": where.group, "view": where.position, "views": views, "seed": scene_seed}
    if frame is not None:  # likewise
        spec["sequence"] = _draw_sequence(config["sequence"], scene_seed, index, frame)
    if spec["backdrop"]["kind"] != "procedural" and config["lights"]["photo_environment_probability"] > 0:
        d = Draws(stream(scene_seed, "lights/photo"))  # its own stream: the other lights draw as before
        if d.chance(config["lights"]["photo_environment_probability"]):
            spec["lights"]["environment"] = {"kind": "photo",
                                             "strength": d.uniform(config["lights"]["photo_environment_strength"])}
    placement = _draw_placement(config, spec, look_seed)
    if placement is not None:  # photograph backdrops only: procedural specs keep their layout
        spec["camera"]["placement"] = placement
    if frame is None:
        spec["camera"]["fitted"] = fit_camera(spec)
    else:  # one fit for the whole sequence, on its first frame; each frame on the path from it
        path = spec["sequence"]["camera_path"]
        path["start"] = fit_camera({**spec, "persons": first_frame_persons(spec)})
        spec["camera"]["fitted"] = camera_on_path(path, frame.position, frame.length)
    return spec


def neighbour_spec(config: dict[str, Any], spec: dict[str, Any], offset: int) -> SampleSpec | None:
    """The spec of the frame `offset` frames from `spec`'s in its sequence (None outside it),
    drawn through `draw_spec` itself, so it is exactly the spec that sample gets. Its camera
    comes from the recorded path start (what `fit_camera` gave every frame of the sequence),
    so no pose is needed here; the post-render draws are left out (the geometry does not
    depend on them)."""
    where = spec.get("sequence")
    if where is None or not 0 <= where["frame"] + offset < where["length"]:
        return None
    start = where["camera_path"]["start"]
    return draw_spec(config, spec["config_hash"], spec["run_seed"], spec["index"] + offset,
                     lambda _spec: json.loads(json.dumps(start)))


def _draw_placement(config: dict[str, Any], spec: dict[str, Any], seed: int) -> dict[str, Any] | None:
    from ..scene.photo_placement import draw_placement

    return draw_placement(Draws(stream(seed, "camera/placement")), config, spec)


def draw_image_effects(config: dict[str, Any], spec: dict[str, Any], person_box: list[float] | None,
                       K: np.ndarray) -> None:
    """Post-render draws (harmonisation, occluders, lens, camera effects) into the spec.

    They depend on where the person lands in the image (occluders go over the person), so
    they are drawn once the camera is fitted; each from its own stream.
    """
    from ..appearance.camera_effects import draw_camera_effects
    from ..appearance.lens import draw_distortion
    from ..appearance.occluders import occluder_library, place_occluders

    seed, size = spec["sample_seed"], (spec["render"]["width"], spec["render"]["height"])
    look = spec["sequence"]["seed"] if "sequence" in spec else seed  # one look and one lens per sequence
    h = Draws(stream(look, "harmonise"))
    cfg = config["harmonise"]
    spec["harmonise"] = ({"method": cfg["method"], "strength": h.uniform(cfg["strength"])}
                         if h.chance(cfg["probability"]) and cfg["method"] != "none" else None)
    o = Draws(stream(look, "occluders"))
    cfg = config["occluders"]
    spec["occluders"] = []
    if o.chance(cfg["probability"]) and person_box is not None:
        names = sorted(occluder_library(cfg))
        spec["occluders"] = place_occluders(o.rng, person_box, size, cfg, names)
    lens = Draws(stream(look, "lens"))
    cfg = config["lens"]
    coeffs = [0.0] * 5
    if lens.chance(cfg["probability"]):
        coeffs = [round(float(c), 8) for c in draw_distortion(lens.rng, cfg["strength"], K, size,
                                                               cfg["max_shift_fraction"])]
    spec["lens"] = {"dist_coeffs": coeffs}
    spec["camera_effects"] = draw_camera_effects(stream(seed, "camera_effects"), config["camera_effects"])


def _stream_name(base: str, number: int) -> str:
    """Person 0 draws from `base`, person k from `base/k`: adding people never changes person 0."""
    return base if number == 0 else f"{base}/{number}"


def _draw_people(config: dict[str, Any], seed: int, frame: FrameTiming | None = None) -> list[dict[str, Any]]:
    d = Draws(stream(seed, "people"))
    low, high = config["people"]["count"]
    count = low + d.integer(high - low + 1)
    placements = _draw_placements(d, count, config["people"])
    return [{**_draw_person(config, seed, number, frame), "placement": placements[number]} for number in range(count)]


def _draw_placements(d: Draws, count: int, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Person 0 stands at the origin; the others around it, never closer than `min_gap_m`."""
    placements = [{"x_m": 0.0, "y_m": 0.0, "yaw_deg": 0.0}]
    for _ in range(1, count):
        for _attempt in range(50):
            distance, angle = d.uniform(cfg["spacing_m"]), d.uniform([-180.0, 180.0])
            x = round(distance * float(np.cos(np.deg2rad(angle))), 6)
            y = round(distance * float(np.sin(np.deg2rad(angle))), 6)
            if all(np.hypot(x - p["x_m"], y - p["y_m"]) >= cfg["min_gap_m"] for p in placements):
                break
        placements.append({"x_m": x, "y_m": y, "yaw_deg": d.uniform([-180.0, 180.0])})
    return placements


def _draw_person(config: dict[str, Any], seed: int, number: int, frame: FrameTiming | None = None) -> dict[str, Any]:
    body_stream, motion_stream = _stream_name("body", number), _stream_name("motion", number)
    body = Draws(stream(seed, body_stream))
    motion = Draws(stream(seed, motion_stream))
    return {
        "body": _draw_body(config["body"], body, body_stream),
        "motion": {**_draw_clip(config["motion"], motion, frame),
                   "mirror": motion.chance(config["motion"]["mirror_probability"]), "stream": motion_stream},
    }


def _draw_clip(cfg: dict[str, Any], d: Draws, frame: FrameTiming | None = None) -> dict[str, Any]:
    """A built-in clip at a continuous phase, or a converted clip at a frame that passed the
    quality filter (recorded as the frame index). In a sequence, the same draws give the
    sequence's start, and the motion is that of frame `frame.position` (spec/sequence.py)."""
    if not cfg["clip_folders"]:  # the common case draws exactly as before
        motion = {"clip": d.choice(cfg["clips"]), "source": "builtin", "phase": d.uniform([0.0, 1.0])}
        return motion if frame is None else builtin_at_frame(motion, frame)
    from ..motion.catalogue import catalogue

    found = catalogue(tuple(cfg["clips"]), tuple(cfg["clip_folders"]))
    pick = d.integer(len(found.builtin) + len(found.folder_clips))
    if pick < len(found.builtin):
        motion = {"clip": found.builtin[pick], "source": "builtin", "phase": d.uniform([0.0, 1.0])}
        return motion if frame is None else builtin_at_frame(motion, frame)
    clip = found.folder_clips[pick - len(found.builtin)]
    ok_frames = clip.ok_frames if frame is None else sequence_start_frames(clip, frame)
    motion = {"clip": clip.name, "source": "folder", "folder": clip.folder,
              "frame": ok_frames[d.integer(len(ok_frames))]}
    return motion if frame is None else folder_at_frame(motion, frame)


def _gender(person: dict[str, Any]) -> str:
    """anny's gender phenotype runs from male (0) to female (1)."""
    body = person["body"]
    if "gender" in body:
        return body["gender"]
    return "female" if body.get("phenotype", {}).get("gender", 0.5) >= 0.5 else "male"


def _draw_body(cfg: dict[str, Any], d: Draws, stream_name: str) -> dict[str, Any]:
    from ..bodies.kinds import body_kind

    return body_kind(cfg["kind"]).draw(cfg, d, stream_name)


def _draw_appearance(cfg: dict[str, Any], seed: int, number: int, gender: str,
                     garments: dict[str, Any]) -> dict[str, Any]:
    name = _stream_name("appearance", number)
    appearance = _draw_clothes(cfg, seed, name, gender)
    if garments["probability"] > 0:  # recorded only when on: default specs keep their layout
        from ..appearance.garment_geometry import draw_garment_geometry

        d = Draws(stream(seed, f"{name}/garments"))
        if d.chance(garments["probability"]):
            appearance["garments"] = draw_garment_geometry(d, garments)
    return appearance


def _draw_clothes(cfg: dict[str, Any], seed: int, name: str, gender: str) -> dict[str, Any]:
    d = Draws(stream(seed, name))
    skin_value = d.uniform([0.25, 0.95])
    textures = {"texture_kind": cfg["texture_kind"]}
    if cfg["texture_kind"] == "folder":
        from ..appearance.texture_folders import draw_folder_textures

        textures.update(draw_folder_textures(Draws(stream(seed, f"{name}/texture")), cfg["texture_folder"], gender,
                                             cfg["mix_parts"]))
    return {
        **textures,
        "stream": name,
        "texture_size": cfg["texture_size"],
        "skin": d.colour([0.02, 0.09], [0.25, 0.6], [skin_value, skin_value]),
        "long_sleeves": d.chance(cfg["long_sleeve_probability"]),
        "long_trousers": d.chance(cfg["long_trousers_probability"]),
        "top": _draw_garment(d, cfg),
        "bottom": _draw_garment(d, cfg),
        "shoes": d.colour([0.0, 1.0], [0.0, 0.5], [0.05, 0.6]),
        "roughness": d.uniform(cfg["roughness"]),
        "texture_seed": d.integer(),
    }


def _draw_garment(d: Draws, cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "colour": d.colour([0.0, 1.0], [0.05, 0.9], [0.1, 0.95]),
        "pattern": d.choice(["solid", "stripes", "checks", "noise"]),
        "pattern_colour": d.colour([0.0, 1.0], [0.0, 0.9], [0.1, 0.95]),
        "pattern_scale": d.uniform(cfg["pattern_scale"]),
        "pattern_angle_deg": d.uniform([0.0, 180.0]),
    }


def _draw_camera(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    d = Draws(stream(seed, "camera"))
    jitter = cfg["look_at_jitter"]
    rig_draws = Draws(stream(seed, "camera/rig"))
    rig = None
    if rig_draws.chance(cfg["rig_probability"]):
        name = rig_draws.choice(sorted(cfg["rigs"]))
        height, distance, azimuth, focal = (float(v) for v in cfg["rigs"][name])
        rig = {"name": name, "height_m": height, "distance_m": distance, "azimuth_deg": azimuth,
               "focal_length_mm": focal}
    return {
        "stream": "camera",
        "rig": rig,
        "min_visible_fraction": float(cfg["min_visible_fraction"]),
        "focal_length_mm": d.uniform(cfg["focal_length_mm"]),
        "sensor_width_mm": float(cfg["sensor_width_mm"]),
        "azimuth_deg": d.uniform(cfg["azimuth_deg"]),
        "elevation_deg": d.uniform(cfg["elevation_deg"]),
        "roll_deg": d.uniform(cfg["roll_deg"]),
        "person_height_fraction": d.uniform(cfg["person_height_fraction"]),
        "offset": [d.uniform([-jitter, jitter]), d.uniform([-jitter, jitter])],
    }


def _draw_lights(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    d = Draws(stream(seed, "lights"))
    return {
        "stream": "lights",
        "sun": {
            "strength": d.uniform(cfg["sun_strength"]),
            "elevation_deg": d.uniform(cfg["sun_elevation_deg"]),
            "azimuth_deg": d.uniform(cfg["sun_azimuth_deg"]),
            "temperature_k": d.uniform(cfg["color_temperature_k"]),
        },
        "area": {
            "power_w": d.uniform(cfg["area_power_w"]),
            "distance_m": d.uniform(cfg["area_distance_m"]),
            "azimuth_deg": d.uniform([-180.0, 180.0]),
            "elevation_deg": d.uniform([5.0, 60.0]),
            "size_m": d.uniform([0.5, 2.0]),
            "temperature_k": d.uniform(cfg["color_temperature_k"]),
        },
        "ambient": {
            "strength": d.uniform(cfg["ambient_strength"]),
            "colour": d.colour([0.5, 0.7], [0.0, 0.35], [0.7, 1.0]),
            "kind": "sky" if Draws(stream(seed, "lights/sky")).chance(cfg["sky_probability"]) else "uniform",
        },
        "steer_by_backdrop": bool(cfg["steer_by_backdrop"]),
    }


def _draw_backdrop(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    from ..appearance.photo_backdrops import draw_photo, usable_kind

    d = Draws(stream(seed, "backdrop"))
    kind = usable_kind(cfg)
    params = _draw_procedural_backdrop(d)
    params["kind"] = kind
    if kind != "procedural":
        params["photo"] = draw_photo(Draws(stream(seed, "backdrop/photo")), cfg)
    return params


def _draw_procedural_backdrop(d: Draws) -> dict[str, Any]:
    return {
        "stream": "backdrop",
        "seed": d.integer(),
        "horizon": d.uniform([0.3, 0.75]),
        "sky_top": d.colour([0.5, 0.7], [0.1, 0.7], [0.5, 1.0]),
        "sky_bottom": d.colour([0.0, 1.0], [0.0, 0.3], [0.6, 1.0]),
        "ground": d.colour([0.0, 1.0], [0.05, 0.6], [0.15, 0.7]),
        "num_shapes": int(d.integer(14)),
        "blur": d.uniform([0.0, 3.0]),
    }
