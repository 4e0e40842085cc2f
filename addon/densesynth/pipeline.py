"""One sample, end to end: spec -> posed person -> Blender passes -> decode -> annotate.

Stages and where they live:
  specified  spec/        (draws and seeds, JSON)
  posed      scene/       (body shape, motion, camera fit; NumPy)
  rendered   render/      (Blender: beauty pass and exact label pass)
  decoded    decode/      (EXR -> IUV maps, part label images)
  annotated  annotate/    (COCO-DensePose fields, keypoint visibility)
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .annotate.coco_densepose import DatasetWriter, person_annotation
from .annotate.parts import KEYPOINT_PARTS, SURFACE_KEYPOINTS
from .annotate.visibility import keypoint_visibility
from .appearance.backdrops import horizon_row, procedural_backdrop
from .appearance.clothing import clothing_texture, uv_part_map
from .appearance.photo_backdrops import photo_backdrop
from .appearance.texture_folders import folder_texture
from .bodies.default_body import DefaultBody
from .decode.iuv_exr import read_exr_channel, read_iuv_exr
from .decode.label_maps import write_coarse_png, write_fine_png, write_iuv_png, write_png
from .io_utils import atomic_write_bytes, atomic_write_text, temporary_sibling
from .scene.camera import PinholeCamera, camera_from_spec, fit_camera
from .scene.person import PosedPerson, pose_person
from .spec.sample_spec import draw_spec, dumps_spec

OUTPUT_FOLDERS = ("images", "iuv", "labels24", "labels14", "iuv_png", "specs", "records")
# `persons/<stem>.png` (which person each pixel shows, 1-based) is written only for images with several people.


def load_bodies(cfg: dict[str, Any]) -> dict[str, Any]:
    """The body kinds a config draws from, loaded once per process."""
    if cfg["kind"] == "smpl":
        from .bodies.smpl_body import SmplBody

        genders = ("female", "male") if cfg["gender"] == "random" else (cfg["gender"],)
        return {"smpl": SmplBody.load(cfg["smpl_dir"], genders)}
    return {"anny": DefaultBody.load()}


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


class SampleRenderer:
    """Holds what is built once per process (bodies, charts, Blender scene) and renders samples."""

    def __init__(self, config: dict[str, Any], config_id: str, run_seed: int, out_dir: Path,
                 debug_geometry: bool = False):
        from .render.blender_scene import BlenderScene, PersonMesh  # bpy only from here on

        self.config, self.config_id, self.run_seed = config, config_id, run_seed
        self.out_dir = Path(out_dir)
        self.debug_geometry = debug_geometry or config["annotation"]["write_debug_geometry"]
        self.times = StageTimes()
        self._last_poses: tuple[str, list[PosedPerson]] | None = None
        start = time.perf_counter()
        self.bodies = load_bodies(config["body"])
        texture_size = config["appearance"]["texture_size"]
        self.part_maps = {kind: uv_part_map(body.corner_texture_uv, body.face_part, texture_size)
                          for kind, body in self.bodies.items()}
        self.meshes = {kind: PersonMesh(body.faces, body.corner_iuv, body.corner_texture_uv, body.num_vertices)
                       for kind, body in self.bodies.items()}
        self.scene = BlenderScene(texture_size, config["render"]["device"], config["render"]["threads"])
        self.times.add("process_setup", time.perf_counter() - start)
        for folder in OUTPUT_FOLDERS + (("geometry",) if self.debug_geometry else ()):
            (self.out_dir / folder).mkdir(parents=True, exist_ok=True)

    # --- specification ------------------------------------------------------------------
    def draw_spec(self, index: int) -> dict[str, Any]:
        def fit(spec: dict[str, Any]) -> dict[str, Any]:
            main = self._pose_all(spec["persons"])[0]  # the camera frames the first person
            return fit_camera(main.vertices, spec["camera"], spec["render"]["width"], spec["render"]["height"])

        return draw_spec(self.config, self.config_id, self.run_seed, index, fit)

    def _pose_all(self, persons: list[dict[str, Any]]) -> list[PosedPerson]:
        """Pose every person, reusing the poses computed for the camera fit of the same spec."""
        key = json.dumps(persons, sort_keys=True)
        if self._last_poses is None or self._last_poses[0] != key:
            self._last_poses = (key, [pose_person(person, self.bodies) for person in persons])
        return self._last_poses[1]

    # --- one sample -----------------------------------------------------------------------
    def render(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Render and annotate one sample; returns its record (image entry and annotations)."""
        stem, out = spec["stem"], self.out_dir
        kinds = [person["body"]["kind"] for person in spec["persons"]]
        with _Timer(self.times, "scene_setup"):
            people = self._pose_all(spec["persons"])
            camera = camera_from_spec(spec)
            for slot, kind, posed, appearance in zip(self.scene.person_slots(kinds, self.meshes), kinds, people,
                                                     spec["appearance"]):
                slot.set_texture(self._texture(appearance, kind), appearance["roughness"])
                slot.set_vertices(posed.vertices)
            self.scene.set_camera(camera)
            backdrop = self._backdrop(spec, camera)
            brightness = backdrop_brightness(backdrop) if spec["lights"]["steer_by_backdrop"] else 1.0
            self.scene.set_lights(spec["lights"], people[0].vertices.mean(axis=0), brightness)
        beauty_path = temporary_sibling(out / "images" / f"{stem}.beauty.png")
        with _Timer(self.times, "beauty_pass"):
            r = spec["render"]
            self.scene.render_beauty(beauty_path, r["beauty_samples"], r["denoise"], r["cycles_seed"], r["shadow_catcher"])
        exr_path = out / "iuv" / f"{stem}.exr"
        with _Timer(self.times, "label_pass"):
            self.scene.render_labels(exr_path)
            person_index = self._render_person_index(stem) if len(people) > 1 else None
        with _Timer(self.times, "decode_annotate"):
            image_name = self._write_image(spec, backdrop, beauty_path)
            maps = read_iuv_exr(exr_path)
            if person_index is not None:
                maps = dataclasses.replace(maps, person_index=np.where(maps.I > 0, person_index, 0))
            write_fine_png(out / "labels24" / f"{stem}.png", maps)
            write_coarse_png(out / "labels14" / f"{stem}.png", maps)
            write_iuv_png(out / "iuv_png" / f"{stem}.png", maps)
            if person_index is not None:
                write_png(out / "persons" / f"{stem}.png", maps.person_index.astype(np.uint8))
            record = self._annotate(spec, camera, kinds, people, maps, image_name)
        if self.debug_geometry:
            self._write_geometry(stem, kinds, people, camera)
        atomic_write_text(out / "specs" / f"{stem}.json", dumps_spec(spec))
        # The record is written last: its presence marks the sample as finished.
        atomic_write_text(out / "records" / f"{stem}.json", json.dumps(record, sort_keys=True) + "\n")
        self.times.samples += 1
        return record

    def _render_person_index(self, stem: str) -> np.ndarray:
        """Which person each pixel shows (1-based, 0 = nobody): a second exact 1-sample pass."""
        (self.out_dir / "persons").mkdir(exist_ok=True)
        path = temporary_sibling(self.out_dir / "persons" / f"{stem}.exr")
        self.scene.render_instances(path)
        try:
            return np.round(read_exr_channel(path, "R")).astype(np.int64)
        finally:
            os.remove(path)

    def _texture(self, appearance: dict[str, Any], kind: str) -> np.ndarray:
        if appearance.get("texture_kind") == "folder":
            return folder_texture(appearance, self.config["appearance"]["texture_folder"], self.part_maps[kind])
        return clothing_texture(appearance, self.part_maps[kind])

    def _backdrop(self, spec: dict[str, Any], camera: PinholeCamera) -> np.ndarray:
        """RGB float backdrop: a drawn photograph, or the procedural scene with the camera's horizon."""
        params = spec["backdrop"]
        if params["kind"] != "procedural":
            return photo_backdrop(params["photo"], self.config["backdrop"], camera.width, camera.height)
        horizon = horizon_row(camera.focal_px, camera.height, spec["camera"]["fitted"]["elevation_deg"])
        return procedural_backdrop(params, camera.width, camera.height, horizon)

    def _write_image(self, spec: dict[str, Any], backdrop: np.ndarray, beauty_path: Path) -> str:
        """Composite the beauty render over the backdrop; returns the file name under images/."""
        stem, r = spec["stem"], spec["render"]
        rgba = cv2.imread(str(beauty_path), cv2.IMREAD_UNCHANGED)
        os.remove(beauty_path)
        if rgba is None:
            raise RuntimeError(f"Blender wrote no readable beauty image at {beauty_path}")
        rgba = rgba.astype(np.float32) / 255.0
        alpha = rgba[..., 3:4]
        composite = rgba[..., :3] * alpha + backdrop[..., ::-1] * (1.0 - alpha)
        image = np.clip(np.round(composite * 255.0), 0, 255).astype(np.uint8)
        extension = "jpg" if r["image_format"] == "jpg" else "png"
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if extension == "jpg" else []
        ok, encoded = cv2.imencode(f".{extension}", image, params)
        if not ok:
            raise RuntimeError(f"could not encode image {stem}")
        name = f"{stem}.{extension}"
        atomic_write_bytes(self.out_dir / "images" / name, encoded.tobytes())
        return name

    def _scene_mesh(self, kinds: list[str], people: list[PosedPerson]):
        """All people as one mesh: vertices, faces, face parts, corner IUV, person of each face."""
        vertices, faces, parts, iuv, owner = [], [], [], [], []
        offset = 0
        for number, (kind, posed) in enumerate(zip(kinds, people)):
            body = self.bodies[kind]
            vertices.append(posed.vertices)
            faces.append(body.faces + offset)
            parts.append(body.face_part)
            iuv.append(body.corner_iuv)
            owner.append(np.full(len(body.face_part), number))
            offset += len(posed.vertices)
        return (np.concatenate(vertices), np.concatenate(faces), np.concatenate(parts), np.concatenate(iuv),
                np.concatenate(owner))

    def _annotate(self, spec: dict[str, Any], camera: PinholeCamera, kinds: list[str], people: list[PosedPerson],
                  maps, image_name: str) -> dict[str, Any]:
        vertices, faces, face_part, _, person_of_face = self._scene_mesh(kinds, people)
        annotations = []
        for number, posed in enumerate(people):
            # Other people's faces keep no part: they can only hide this person's keypoints.
            own_parts = np.where(person_of_face == number, face_part, 0)
            xy, visibility = keypoint_visibility(
                posed.keypoints, vertices, faces, own_parts, camera.K, camera.world_to_camera,
                (camera.width, camera.height), KEYPOINT_PARTS, SURFACE_KEYPOINTS,
            )
            mask = maps.I > 0 if maps.person_index is None else maps.person_index == number + 1
            annotation = person_annotation(
                maps, mask, xy, visibility, spec["annotation"]["points_per_person"],
                spec["annotation"]["point_seed"] + number,
            )
            if annotation is not None:
                annotations.append(annotation)
        return {
            "image": {"file_name": image_name, "height": camera.height, "width": camera.width, "index": spec["index"]},
            "annotations": annotations,
        }

    def _write_geometry(self, stem: str, kinds: list[str], people: list[PosedPerson], camera: PinholeCamera) -> None:
        vertices, faces, _, corner_iuv, person_of_face = self._scene_mesh(kinds, people)
        path = self.out_dir / "geometry" / f"{stem}.npz"
        tmp = temporary_sibling(path)
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                vertices=vertices.astype(np.float64),
                faces=faces.astype(np.int64),
                corner_iuv=corner_iuv.astype(np.float32),
                K=camera.K,
                world_to_camera=camera.world_to_camera,
                image_size=np.array([camera.width, camera.height]),
                keypoints=np.stack([p.keypoints for p in people]),
                person_of_face=person_of_face.astype(np.int64),
            )
        os.replace(tmp, path)


def write_annotations(out_dir: Path, records: list[dict[str, Any]]) -> Path:
    """Assemble per-sample records (in sample order) into DIR/annotations.json."""
    writer = DatasetWriter()
    for record in sorted(records, key=lambda r: r["image"]["index"]):
        image = record["image"]
        image_id = writer.add_image(image["file_name"], image["height"], image["width"])
        for annotation in record["annotations"]:
            writer.add_annotation(image_id, annotation)
    path = Path(out_dir) / "annotations.json"
    writer.write(path)
    return path
