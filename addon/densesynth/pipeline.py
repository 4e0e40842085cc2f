"""One sample, end to end: spec -> posed person -> Blender passes -> decode -> annotate.

Stages and where they live:
  specified  spec/        (draws and seeds, JSON)
  posed      scene/       (body shape, motion, camera fit; NumPy)
  rendered   render/      (Blender: the configured passes of passes/, e.g. beauty and exact IUV)
  decoded    passes/      (each pass's render -> named per-pixel layers; decode/ reads the EXRs)
  annotated  annotate/    (COCO-DensePose fields, keypoint visibility)
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .annotate.coco_densepose import DatasetWriter, image_extras, person_annotation, sequence_fields
from .annotate.real_people import as_record_annotation, keep_real_people, through_lens
from .core.parts import KEYPOINT_PARTS, SURFACE_KEYPOINTS
from .annotate.visibility import in_image, keypoint_visibility
from .appearance.backdrops import horizon_row, procedural_backdrop
from .appearance.camera_effects import apply_camera_effects
from .appearance.clothing import clothing_texture, uv_part_map
from .appearance.garment_geometry import dress, paint_faces
from .appearance.harmonise import get_harmoniser, harmonise
from .appearance.lens import distort_layers, distort_mask, distort_points, distortion_maps, is_identity
from .appearance.lens_exact import LOOKUP_PASSES, SceneGeometry, exact_distort_layers, lens_distorts, lookup_passes
from .appearance.occluders import composite_occluders, occlude_layers, occluder_library
from .appearance.photo_backdrops import photo_people, placed_photo
from .appearance.photo_light import environment_map
from .appearance.texture_folders import folder_texture
from .bodies.kinds import load_bodies
from .core.label_maps import IUVMaps
from .io_utils import atomic_write_npz, atomic_write_text, temporary_sibling
from .decode.iuv_exr import split_aov_layers
from .passes import SampleContext, get_pass, output_folders, resolve
from .passes.base import BlenderSetup, aov_name, shared_exact_settings
from .passes.beauty import image_name
from .scene.camera import PinholeCamera, camera_from_spec, fit_camera
from .scene.person import PosedPerson, pose_person
from .spec.model import write_spec
from .spec.sample_spec import draw_image_effects, draw_spec



@dataclass
class ImageEffects:
    """What the post-render steps did to one sample (what the labels and geometry must reflect)."""

    occlusion: np.ndarray | None = None  # pinhole image space, True = covered by an occluder
    occlusion_out: np.ndarray | None = None  # the same in the final (distorted) image
    dist_coeffs: np.ndarray | None = None
    warp: tuple[np.ndarray, np.ndarray] | None = None  # the lens's (map_x, map_y) when it distorted
    covered: np.ndarray | None = None  # pinhole image space: synthetic people and occluders

    @property
    def changed_labels(self) -> bool:
        return self.occlusion is not None or self.dist_coeffs is not None


def _distort_keypoints(xy: np.ndarray, visibility: np.ndarray, camera: PinholeCamera,
                       dist_coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints through the lens; those the distortion pushes out of the frame become v = 0."""
    xy = np.array(xy, dtype=np.float64)
    visibility = np.array(visibility)
    present = visibility > 0
    if present.any():
        xy[present] = distort_points(xy[present], camera.K, dist_coeffs)
    visibility = np.where(present & ~in_image(xy, camera.width, camera.height), 0, visibility)
    return xy, visibility


MIN_BLENDER = (5, 0)  # the label pass's exactness was measured on Blender 5.0 (blender_version.txt: tested)


def check_blender_version() -> None:
    """Refuse an older Blender up front, naming the one required (older ones fail deep in
    Cycles' settings, or render labels that were never checked)."""
    from .errors import UserError

    try:
        import bpy
    except ImportError:
        raise UserError("Blender's Python module (bpy) is missing: install Blender "
                        f"{MIN_BLENDER[0]}.{MIN_BLENDER[1]} or newer, or pip install bpy in the environment") from None
    version = tuple(getattr(getattr(bpy, "app", None), "version", ()) or ())
    if tuple(version[:2]) < MIN_BLENDER:
        found = ".".join(str(v) for v in version) or "of unknown version"
        raise UserError(f"Blender {found} is too old: DenseSynth needs Blender {MIN_BLENDER[0]}.{MIN_BLENDER[1]} "
                        "or newer (see blender_version.txt and the README); install it and run with that one")


def backdrop_brightness(backdrop: np.ndarray) -> float:
    """Light scale from the backdrop's mean luminance (0.45 = neutral), kept within [0.5, 1.6]:
    a person lit like a sunny day does not belong in a dim photograph."""
    luminance = float(np.mean(backdrop @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)))
    return float(np.clip((luminance / 0.45) ** 0.7, 0.5, 1.6))


@dataclass
class StageTimes:
    """Seconds spent in each stage, one entry per sample (benchmarks report medians)."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    samples: int = 0

    def add(self, stage: str, seconds: float) -> None:
        self.seconds.setdefault(stage, []).append(seconds)


class _Timer:
    def __init__(self, times: StageTimes, stage: str):
        self.times, self.stage = times, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.times.add(self.stage, time.perf_counter() - self.start)


class SpecScene:
    """What realises a spec in Blender, built once per process: the bodies of the config's
    body kind (bodies/kinds.py), their meshes and clothing part maps, and the Blender scene.
    The pipeline and the add-on's panel build every scene from a spec through `build`."""

    def __init__(self, config: dict[str, Any], scene=None):
        from .render.blender_scene import BlenderScene, PersonMesh  # bpy only from here on

        self.config = config
        self._last_poses: tuple[str, list[PosedPerson]] | None = None
        self.last_photo: tuple | None = None  # (PhotoCrop, (w, h)) of the last build's photograph
        self.bodies = load_bodies(config["body"])
        texture_size = config["appearance"]["texture_size"]
        self.part_maps = {kind: uv_part_map(body.corner_texture_uv, body.face_part, texture_size)
                          for kind, body in self.bodies.items()}
        self.meshes = {kind: PersonMesh(body.faces, body.corner_iuv, body.corner_texture_uv, body.num_vertices)
                       for kind, body in self.bodies.items()}
        self.blender = BlenderScene(texture_size, config["render"]["device"], config["render"]["threads"], scene=scene,
                                    persistent_data=config["render"]["persistent_data"])

    def draw_spec(self, config_id: str, run_seed: int, index: int, edit=None) -> dict[str, Any]:
        """Sample `index`'s spec: the draws, the camera fitted to the first person, then the
        image effects (which depend on where the person lands in the image). `edit(spec)`
        changes the draws before the camera is fitted (the add-on panel's redrawn shape)."""
        def fit(spec: dict[str, Any]) -> dict[str, Any]:
            if edit is not None:
                edit(spec)
            main = self.pose_all(spec["persons"])[0]  # the camera frames the first person
            return fit_camera(main.vertices, spec["camera"], spec["render"]["width"], spec["render"]["height"])

        spec = draw_spec(self.config, config_id, run_seed, index, fit)
        camera = camera_from_spec(spec)
        uv, depth = camera.project(self.pose_all(spec["persons"])[0].vertices)
        uv = uv[depth > 0]
        box = None
        if len(uv):
            x0, y0 = np.clip(uv.min(axis=0), 0, [camera.width - 1, camera.height - 1])
            x1, y1 = np.clip(uv.max(axis=0), 0, [camera.width - 1, camera.height - 1])
            box = [float(x0), float(y0), float(x1), float(y1)] if x1 > x0 and y1 > y0 else None
        draw_image_effects(self.config, spec, box, camera.K)
        return spec

    def pose_all(self, persons: list[dict[str, Any]]) -> list[PosedPerson]:
        """Pose every person, reusing the poses computed for the camera fit of the same spec."""
        key = json.dumps(persons, sort_keys=True)
        if self._last_poses is None or self._last_poses[0] != key:
            self._last_poses = (key, [pose_person(person, self.bodies) for person in persons])
        return self._last_poses[1]

    def build(self, spec: dict[str, Any]) -> tuple[list[PosedPerson], PinholeCamera, np.ndarray]:
        """Realise `spec` in the Blender scene (people, clothes, camera, lights); returns the
        posed people, the camera and the backdrop (RGB float) the lights were steered by."""
        kinds = [person["body"]["kind"] for person in spec["persons"]]
        people = self.pose_all(spec["persons"])
        camera = camera_from_spec(spec)
        dressed = []
        for slot, kind, posed, appearance in zip(self.blender.person_slots(kinds, self.meshes), kinds, people,
                                                 spec["appearance"]):
            body = self.bodies[kind]
            outer, hair = dress(posed.vertices, body.faces, body.face_part, posed.keypoints, appearance)
            texture = self._texture(appearance, kind)
            if hair.any():
                texture = paint_faces(texture, body.corner_texture_uv, hair, appearance["garments"]["hair_colour"])
            slot.set_texture(texture, appearance["roughness"])
            slot.set_vertices(outer)
            dressed.append(replace(posed, surface=None if outer is posed.vertices else outer))
        people = dressed
        self.blender.set_camera(camera)
        backdrop = self._backdrop(spec, camera)
        brightness = backdrop_brightness(backdrop) if spec["lights"]["steer_by_backdrop"] else 1.0
        environment = (environment_map(backdrop, camera.K, camera.world_to_camera)
                       if spec["lights"].get("environment") else None)
        self.blender.set_lights(spec["lights"], people[0].vertices.mean(axis=0), brightness, environment)
        return people, camera, backdrop

    def _texture(self, appearance: dict[str, Any], kind: str) -> np.ndarray:
        if appearance.get("texture_kind") == "folder":
            return folder_texture(appearance, self.config["appearance"]["texture_folder"], self.part_maps[kind])
        return clothing_texture(appearance, self.part_maps[kind])

    def _backdrop(self, spec: dict[str, Any], camera: PinholeCamera) -> np.ndarray:
        """RGB float backdrop: a drawn photograph, or the procedural scene with the camera's horizon.
        A photograph's crop and size stay in `last_photo` (its own people are moved by them)."""
        params = spec["backdrop"]
        self.last_photo = None
        if params["kind"] != "procedural":
            backdrop, crop, size = placed_photo(params["photo"], self.config["backdrop"], camera.width, camera.height)
            self.last_photo = (crop, size)
            return backdrop
        horizon = horizon_row(camera.focal_px, camera.height, spec["camera"]["fitted"]["elevation_deg"])
        return procedural_backdrop(params, camera.width, camera.height, horizon)


class SampleRenderer:
    """Holds what is built once per process (a SpecScene, occluders, passes) and renders samples."""

    def __init__(self, config: dict[str, Any], config_id: str, run_seed: int, out_dir: Path,
                 debug_geometry: bool = False, scene=None):
        """`scene`: build into this Blender scene (the add-on's panel: a scene of its own in the
        artist's file) instead of a fresh empty file (render workers)."""
        check_blender_version()
        self.config, self.config_id, self.run_seed = config, config_id, run_seed
        self.out_dir = Path(out_dir)
        self.debug_geometry = debug_geometry or config["annotation"]["write_debug_geometry"]
        self.times = StageTimes()
        start = time.perf_counter()
        self.spec_scene = SpecScene(config, scene=scene)
        self.bodies, self.scene = self.spec_scene.bodies, self.spec_scene.blender
        self.occluders = occluder_library(config["occluders"]) if config["occluders"]["probability"] > 0 else {}
        if config["harmonise"]["probability"] > 0:
            get_harmoniser(config["harmonise"]["method"])  # an unknown harmoniser fails now, not mid-run
        self.passes = resolve(config["passes"])
        self.layer_rules = {layer.name: layer for p in self.passes for layer in p.layers}
        # The lens's exact lookup may render passes the config lacks, for their layers only.
        self.layer_rules.update({layer.name: layer for name in LOOKUP_PASSES for layer in get_pass(name).layers
                                 if layer.name not in self.layer_rules})
        self.files: list[str] = []  # what the last render() wrote, relative to out_dir (record last)
        self.times.add("process_setup", time.perf_counter() - start)
        for folder in output_folders(self.passes) + (["geometry"] if self.debug_geometry else []):
            (self.out_dir / folder).mkdir(parents=True, exist_ok=True)

    def draw_spec(self, index: int) -> dict[str, Any]:
        return self.spec_scene.draw_spec(self.config_id, self.run_seed, index)

    # --- one sample -----------------------------------------------------------------------
    def render(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Render and annotate one sample; returns its record (image entry and annotations).
        The files it wrote (relative to the run folder, the record last) are then `self.files`."""
        out = self.out_dir
        kinds = [person["body"]["kind"] for person in spec["persons"]]
        with _Timer(self.times, "scene_setup"):
            people, camera, backdrop = self.spec_scene.build(spec)
        sample = SampleContext(spec=spec, out=out, num_people=len(people), backdrop=backdrop, people=people,
                               camera=camera, bodies=self.bodies, config=self.config)
        passes = [p for p in self.passes if p.wanted(sample)]
        rendered = [p for p in passes if p.renders]  # the others are computed from the posed scene
        # Each pass renders into, and is read back from, this process's own temporary; only a
        # finished file is renamed to its final name (another process rendering the same
        # sample can never hand us its files, nor we it ours).
        raws = {p.name: p.raw_path(sample) for p in rendered}
        if lens_distorts(spec):  # the exact label lookup needs face ids: rendered, decoded, never written
            lookup = [get_pass(name) for name in lookup_passes(len(people), [p.name for p in passes])]
            rendered += lookup
            raws.update({p.name: temporary_sibling(out / "iuv" / f"{spec['stem']}.{p.name}{p.raw[1]}") for p in lookup})
        files: list[str] = []
        try:
            stage_seconds: dict[str, float] = {}
            # Passes that can write an AOV share one render when there are several of them (one
            # scene synchronisation, the dominant cost of an exact render); one alone renders as ever.
            shared = [p for p in rendered if p.aov is not None]
            shared = shared if len(shared) > 1 else []
            for p in rendered:
                if p in shared:
                    continue
                start = time.perf_counter()
                self.scene.render_pass(p.blender_setup(spec), raws[p.name])
                stage_seconds[p.stage] = stage_seconds.get(p.stage, 0.0) + time.perf_counter() - start
            if shared:
                start = time.perf_counter()
                self._render_shared(spec, shared, raws)
                stage_seconds["label_pass"] = stage_seconds.get("label_pass", 0.0) + time.perf_counter() - start
            for stage, seconds in stage_seconds.items():
                self.times.add(stage, seconds)
            with _Timer(self.times, "decode_annotate"):
                layers: dict[str, np.ndarray] = {}
                for p in rendered:
                    layers.update(p.decode(raws[p.name], sample, layers))
                scene_mesh = self._scene_mesh(kinds, people)
                layers, effects = self._image_effects(spec, camera, layers, scene_mesh)
                sample.labels_changed = effects.changed_labels
                sample.dist_coeffs, sample.occlusion_out = effects.dist_coeffs, effects.occlusion_out
                for p in passes:
                    files += p.write(raws.get(p.name), sample, layers)
                record = self._annotate(spec, camera, people, scene_mesh, IUVMaps.from_layers(layers),
                                        image_name(spec), effects)
                self._add_real_people(record, spec, camera, effects)
        finally:  # a failed sample leaves none of its temporaries behind
            for raw in raws.values():
                raw.unlink(missing_ok=True)
        if self.debug_geometry:
            self._write_geometry(spec["stem"], people, scene_mesh, camera, effects)
            files.append(f"geometry/{spec['stem']}.npz")
        write_spec(out / "specs" / f"{spec['stem']}.json", spec)
        # The record is written last: its presence marks the sample as finished.
        atomic_write_text(out / "records" / f"{spec['stem']}.json", json.dumps(record, sort_keys=True) + "\n")
        self.files = sorted(set(files) | {f"specs/{spec['stem']}.json"}) + [f"records/{spec['stem']}.json"]
        self.times.samples += 1
        return record

    def _render_shared(self, spec: dict[str, Any], shared: list, raws: dict[str, Path]) -> None:
        """One exact render writing every shared pass's AOV, split into each pass's own raw."""
        merged = temporary_sibling(raws[shared[0].name].with_suffix(".shared.exr"))
        setup = BlenderSetup(shared_exact_settings(spec), aovs=tuple((aov_name(p.name), p.aov) for p in shared))
        try:
            self.scene.render_pass(setup, merged)
            split_aov_layers(merged, {aov_name(p.name): raws[p.name] for p in shared})
        finally:
            merged.unlink(missing_ok=True)

    def _image_effects(self, spec: dict[str, Any], camera: PinholeCamera, layers: dict[str, np.ndarray],
                       scene_mesh: tuple | None = None) -> tuple[dict[str, np.ndarray], "ImageEffects"]:
        """Harmonise, occlude, distort, then the camera's own effects; every layer follows each
        step that moves or hides pixels, by its own rule (passes/base.py). The order is the
        physical one: occluders are in the scene (seen through the lens), noise and JPEG happen
        in the camera after the lens. With `scene_mesh` the lens looks every label up at its
        exact surface point (appearance/lens_exact.py)."""
        effects = ImageEffects()
        image = layers["image"]
        covered = layers["I"] > 0
        if spec.get("harmonise"):
            image = harmonise(image, layers["image_alpha"], spec["harmonise"]["strength"], spec["harmonise"]["method"])
        if spec.get("occluders"):
            image, effects.occlusion = composite_occluders(image, spec["occluders"], self.occluders)
            layers = occlude_layers(layers, [n for n in layers if self.layer_rules[n].occludable], effects.occlusion)
            covered = covered | effects.occlusion
        effects.covered = covered
        layers = {**layers, "image": image}
        coeffs = spec.get("lens", {}).get("dist_coeffs")
        if coeffs is not None and not is_identity(coeffs):
            effects.dist_coeffs = np.asarray(coeffs, dtype=np.float64)
            warp = effects.warp = distortion_maps(camera.K, effects.dist_coeffs, camera.width, camera.height)
            rules = {n: self.layer_rules[n].resample for n in layers}
            if scene_mesh is not None and "surface_face" in layers:
                vertices, faces, _, corner_iuv, person_of_face = scene_mesh
                geometry = SceneGeometry(vertices, faces, corner_iuv, person_of_face, camera.K, camera.world_to_camera)
                owners = [get_pass(n) for n in dict.fromkeys([*self.config["passes"], *LOOKUP_PASSES])]
                layers = exact_distort_layers(layers, rules, warp, owners, geometry, effects.occlusion)
            else:
                layers = distort_layers(layers, rules, warp)
            if effects.occlusion is not None:
                effects.occlusion_out = distort_mask(effects.occlusion, warp).astype(bool)
        elif effects.occlusion is not None:
            effects.occlusion_out = effects.occlusion
        if spec.get("camera_effects"):
            layers["image"] = apply_camera_effects(layers["image"], spec["camera_effects"])
        return layers, effects

    def _add_real_people(self, record: dict[str, Any], spec: dict[str, Any], camera: PinholeCamera,
                         effects: "ImageEffects") -> None:
        """A COCO photograph's own people join the sample's annotations, moved by the backdrop's
        crop and cut where synthetic people and occluders now cover them (annotate/real_people.py):
        no real person stays in a training image unannotated."""
        photo = self.spec_scene.last_photo
        people = photo_people(self.config["backdrop"], spec["backdrop"]["photo"]["file"]) if photo else None
        if people is None or not people.annotations:
            return
        crop, size = photo
        moved, counts = keep_real_people(people.annotations, crop, effects.covered, size)
        if effects.warp is not None:
            coeffs = effects.dist_coeffs
            lensed = [through_lens(a, effects.warp, lambda xy, v: _distort_keypoints(xy, v, camera, coeffs))
                      for a in moved]
            counts["dropped_by_lens"] = sum(a is None for a in lensed)
            moved = [a for a in lensed if a is not None]
        record["annotations"] += [as_record_annotation(a) for a in moved]
        record["photo_people"] = counts

    def _scene_mesh(self, kinds: list[str], people: list[PosedPerson]):
        """All people as one mesh: vertices, faces, face parts, corner IUV, person of each face."""
        vertices, faces, parts, iuv, owner = [], [], [], [], []
        offset = 0
        for number, (kind, posed) in enumerate(zip(kinds, people)):
            body = self.bodies[kind]
            vertices.append(posed.outer)
            faces.append(body.faces + offset)
            parts.append(body.face_part)
            iuv.append(body.corner_iuv)
            owner.append(np.full(len(body.face_part), number))
            offset += len(posed.vertices)
        return (np.concatenate(vertices), np.concatenate(faces), np.concatenate(parts), np.concatenate(iuv),
                np.concatenate(owner))

    def _annotate(self, spec: dict[str, Any], camera: PinholeCamera, people: list[PosedPerson], scene_mesh: tuple,
                  maps, image_name: str, effects: "ImageEffects") -> dict[str, Any]:
        vertices, faces, face_part, _, person_of_face = scene_mesh
        annotations = []
        for number, posed in enumerate(people):
            # Other people's faces keep no part: they can only hide this person's keypoints.
            own_parts = np.where(person_of_face == number, face_part, 0)
            xy, visibility = keypoint_visibility(
                posed.keypoints, vertices, faces, own_parts, camera.K, camera.world_to_camera,
                (camera.width, camera.height), KEYPOINT_PARTS, SURFACE_KEYPOINTS, occlusion_mask=effects.occlusion,
            )
            if effects.dist_coeffs is not None:
                xy, visibility = _distort_keypoints(xy, visibility, camera, effects.dist_coeffs)
            mask = maps.I > 0 if maps.person_index is None else maps.person_index == number + 1
            annotation = person_annotation(
                maps, mask, xy, visibility, spec["annotation"]["points_per_person"],
                spec["annotation"]["point_seed"] + number,
            )
            if annotation is not None:
                annotations.append({**annotation, **sequence_fields(spec.get("sequence"), number)})
        return {
            "image": {"file_name": image_name, "height": camera.height, "width": camera.width, "index": spec["index"],
                      **sequence_fields(spec.get("sequence"))},
            "annotations": annotations,
        }

    def _write_geometry(self, stem: str, people: list[PosedPerson], scene_mesh: tuple, camera: PinholeCamera,
                        effects: "ImageEffects") -> None:
        vertices, faces, _, corner_iuv, person_of_face = scene_mesh
        extra = {}
        if effects.dist_coeffs is not None:
            extra["dist_coeffs"] = effects.dist_coeffs
        if effects.occlusion_out is not None:
            extra["occlusion_mask"] = effects.occlusion_out
        if any(p.surface is not None for p in people):  # dressed: `vertices` are the outer surface
            extra["body_vertices"] = np.concatenate([p.vertices for p in people]).astype(np.float64)
        atomic_write_npz(self.out_dir / "geometry" / f"{stem}.npz", {
            "vertices": vertices.astype(np.float64),
            "faces": faces.astype(np.int64),
            "corner_iuv": corner_iuv.astype(np.float32),
            "K": camera.K,
            "world_to_camera": camera.world_to_camera,
            "image_size": np.array([camera.width, camera.height]),
            "keypoints": np.stack([p.keypoints for p in people]),
            "person_of_face": person_of_face.astype(np.int64),
            **extra,
        })


def write_annotations(out_dir: Path, records: list[dict[str, Any]]) -> Path:
    """Assemble per-sample records (in sample order) into DIR/annotations.json."""
    writer = DatasetWriter()
    for record in sorted(records, key=lambda r: r["image"]["index"]):
        image = record["image"]
        image_id = writer.add_image(image["file_name"], image["height"], image["width"], image_extras(image))
        for annotation in record["annotations"]:
            writer.add_annotation(image_id, annotation)
    path = Path(out_dir) / "annotations.json"
    writer.write(path)
    return path
