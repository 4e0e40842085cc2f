"""The panel's state as a farm config, and back: no `bpy` here, so it is testable alone.

The panel holds a config file, a body choice, a shape draw, a seed and a sample index; the
add-on preferences hold asset folders. What renders is always one farm config (the loader's
own, `config/loader.py`), so Save Config can write it as YAML that `farm/render.py` loads to
the same config hash, and the same (config, seed, index) gives the same sample everywhere.
Seed, index and shape draw are not config keys (the farm takes them on its command line):
they travel in one comment line at the top of the saved file, which the farm ignores.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

# (identifier, label, description) of the panel's body choice.
BODY_ITEMS = (
    ("CONFIG", "As in Config", "The body kind and gender the config names"),
    ("ANNY", "Default Body", "The open default body (anny), shaped by a drawn phenotype"),
    ("SMPL_FEMALE", "SMPL Female", "Your SMPL female model (SMPL folder in the add-on preferences)"),
    ("SMPL_MALE", "SMPL Male", "Your SMPL male model (SMPL folder in the add-on preferences)"),
)
_BODY_OVERRIDES = {"CONFIG": {}, "ANNY": {"body.kind": "anny"},
                   "SMPL_FEMALE": {"body.kind": "smpl", "body.gender": "female"},
                   "SMPL_MALE": {"body.kind": "smpl", "body.gender": "male"}}

# Asset folders of the preferences -> the config key each stands in for when the config leaves it empty.
FOLDER_KEYS = {"smpl": "body.smpl_dir", "textures": "appearance.texture_folder", "backdrops": "backdrop.folder",
               "occluders": "occluders.folder", "clips": "motion.clip_folders"}

PANEL_HEADER = "# densesynth-panel: "


def effective_config(config_path: str | None, body: str = "CONFIG",
                     folders: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """(config, config hash) the panel renders: the file (or the defaults), the body choice,
    and each preference folder where the config's own setting is empty. UserError on a bad file."""
    from ..config import config_hash, load_config

    overrides = dict(_BODY_OVERRIDES[body])
    config = load_config(Path(config_path) if config_path else None, overrides)
    for name, dotted in FOLDER_KEYS.items():
        folder = (folders or {}).get(name, "")
        if not folder:
            continue
        section, key = dotted.split(".")
        folder = os.path.normpath(os.path.abspath(os.path.expanduser(folder)))
        if isinstance(config[section][key], list):
            if not config[section][key]:
                config[section][key] = [folder]
        elif not config[section][key]:
            config[section][key] = folder
    return config, config_hash(config)


def body_choice(config: dict[str, Any]) -> str:
    """The panel's body choice showing what `config` names (CONFIG for SMPL's random/neutral)."""
    body = config["body"]
    if body["kind"] == "anny":
        return "ANNY"
    if body["kind"] == "smpl" and body["gender"] in ("female", "male"):
        return f"SMPL_{body['gender'].upper()}"
    return "CONFIG"


def config_yaml(config: dict[str, Any], panel: dict[str, Any]) -> str:
    """The farm YAML of `config`, every key written out, with the panel's own state on top."""
    import yaml

    header = PANEL_HEADER + json.dumps(panel, sort_keys=True) + "\n"
    note = "# Written by the DenseSynth panel (Save Config); render it with farm/render.py --config FILE\n"
    return header + note + yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def panel_state_of(path: str | os.PathLike) -> dict[str, Any]:
    """The panel state saved in a config's first line ({} for a farm config written by hand)."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except OSError:
        return {}
    if not first.startswith(PANEL_HEADER):
        return {}
    try:
        state = json.loads(first[len(PANEL_HEADER):])
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def shape_stream(shape_draw: int) -> str:
    """The stream name a redrawn shape comes from (recorded in the spec's body entry)."""
    return f"body/shape{shape_draw}"


def shape_edit(config: dict[str, Any], shape_draw: int) -> Callable[[dict[str, Any]], None] | None:
    """The spec edit of the panel's Random Shape: person 0's body drawn again by its kind's own
    draw, from a stream of the sample's seed named after the draw (so it is recorded and
    repeatable); None for draw 0, the sample's own shape."""
    if shape_draw <= 0:
        return None
    from ..bodies.kinds import body_kind
    from ..spec.draws import Draws
    from ..spec.seeds import stream

    def edit(spec: dict[str, Any]) -> None:
        name = shape_stream(shape_draw)
        draws = Draws(stream(spec["sample_seed"], name))
        spec["persons"][0]["body"] = body_kind(config["body"]["kind"]).draw(config["body"], draws, name)

    return edit


def spec_text(spec: dict[str, Any]) -> str:
    """The spec as the panel shows it (the "DenseSynth Spec" text): the spec file's own JSON."""
    from ..spec.model import dumps_spec

    return dumps_spec(spec)


def spec_summary(spec: dict[str, Any]) -> list[str]:
    """A few lines of the current draws for the panel (the full spec is the text datablock)."""
    lines = []
    for number, person in enumerate(spec["persons"]):
        body, motion = person["body"], person["motion"]
        shape = (", ".join(f"{k} {v:.2f}" for k, v in list(body.get("phenotype", {}).items())[:3])
                 if "phenotype" in body else f"{body.get('gender', '')} betas {body.get('betas', [0])[0]:+.2f}...")
        lines.append(f"person {number}: {body['kind']} ({shape}); {motion['clip']}"
                     f"{' mirrored' if motion.get('mirror') else ''}")
    camera = spec["camera"]
    lines.append(f"camera: {camera.get('focal_length_mm', 0):.0f} mm, backdrop {spec['backdrop']['kind']}")
    effects = [name for name in ("occluders", "lens", "harmonise", "camera_effects") if spec.get(name)]
    lines.append(f"image effects: {', '.join(effects) or 'none'}")
    return lines


# --- Locks, shape sliders, ranges: edits of the drawn spec, recorded in spec["panel"] -------------
# (group, label, description): the spec sections a lock keeps from the current spec on New Seed.
LOCK_GROUPS = (("appearance", "Texture", "Keep the clothes, skin and textures of the current spec"),
               ("camera", "Camera", "Keep the camera draws (rig, lens, angles; the fit follows the person)"),
               ("lights", "Lights", "Keep the lights of the current spec"),
               ("backdrop", "Backdrop", "Keep the backdrop of the current spec"),
               ("occluders", "Occluders", "Keep the occluders of the current spec"))
PHENOTYPE_SLIDERS = ("gender", "age", "muscle", "weight", "height", "proportions")  # anny, 0..1 each
NUM_BETA_SLIDERS = 4  # SMPL's first betas, -3..3


def _replace(target: dict[str, Any], source: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """`target` becomes a copy of `source` in place (the fit may see a shallow copy of the spec)."""
    kept = {k: v for k, v in target.items() if k in skip}
    target.clear()
    target.update(json.loads(json.dumps({k: v for k, v in source.items() if k not in skip})))
    target.update(kept)


def lock_edit(previous: dict[str, Any] | None, locked: list[str],
              notes: dict[str, Any]) -> Callable[[dict[str, Any]], None] | None:
    """The spec edit of the locks that act before the camera fit (appearance, camera draws,
    lights, backdrop): each locked section taken from `previous` where it differs from the
    new draw; `notes["locked"]` lists the groups that changed something (None: nothing to do).
    The camera's fitted pose is not a draw: the fit after the edit places the kept camera."""
    groups = [g for g in locked if g != "occluders" and previous and g in previous]
    if not groups:
        return None

    def edit(spec: dict[str, Any]) -> None:
        for group in groups:
            if group == "appearance":
                changed = False
                for mine, theirs in zip(spec["appearance"], previous["appearance"]):
                    if mine != theirs:
                        _replace(mine, theirs)
                        changed = True
            else:
                skip = ("fitted",) if group == "camera" else ()
                strip = lambda section: {k: v for k, v in section.items() if k not in skip}
                changed = strip(spec[group]) != strip(previous[group])
                if changed:
                    _replace(spec[group], previous[group], skip)
            if changed:
                notes.setdefault("locked", []).append(group)

    return edit


def lock_after(spec: dict[str, Any], previous: dict[str, Any] | None, locked: list[str],
               notes: dict[str, Any]) -> None:
    """The locks on draws made after the camera fit (occluders), applied to the finished spec."""
    if "occluders" in locked and previous and "occluders" in previous and spec["occluders"] != previous["occluders"]:
        spec["occluders"] = json.loads(json.dumps(previous["occluders"]))
        notes.setdefault("locked", []).append("occluders")


def slider_edit(phenotype: dict[str, float], betas: list[float],
                notes: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """The spec edit of the shape sliders: person 0's anny phenotype (every slider) or the
    first SMPL betas set to the panel's values, recorded in `notes["shape"]`."""
    def edit(spec: dict[str, Any]) -> None:
        body = spec["persons"][0]["body"]
        if "phenotype" in body:
            body["phenotype"] = {**body["phenotype"], **{k: round(float(phenotype[k]), 6) for k in PHENOTYPE_SLIDERS}}
            notes["shape"] = {"phenotype": dict(body["phenotype"])}
        elif "betas" in body:
            count = min(NUM_BETA_SLIDERS, len(body["betas"]))
            body["betas"] = [round(float(b), 6) for b in betas[:count]] + list(body["betas"][count:])
            notes["shape"] = {"betas": body["betas"][:count]}

    return edit


def rename_edit(index: int, notes: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """The spec edit of a motion range's frame k: the panel's sample (its draws, its seeds)
    written as sample `index`, so each frame of the range is a file of its own; the sample it
    was drawn as is recorded in `notes["drawn_as"]`."""
    from ..spec.sample_spec import sample_stem

    def edit(spec: dict[str, Any]) -> None:
        if spec["index"] != index:
            notes["drawn_as"] = {"index": spec["index"], "stem": spec["stem"]}
            spec["index"], spec["stem"] = index, sample_stem(index)

    return edit


def export_steps(index: int, count: int, motion_range: tuple[int, int] | None) -> list[tuple[int, int | None]]:
    """Export Range's (sample index, clip frame) steps: frames start..end of the loaded motion
    as samples index, index+1, ...; without a motion, samples index..index+count-1."""
    if motion_range is not None:
        start, end = motion_range
        return [(index + k, frame) for k, frame in enumerate(range(start, end + 1))]
    return [(index + k, None) for k in range(count)]
