"""Camera maths shared by the renderer, the annotator and the tests.

The renderer (Blender) and the ground truth (OpenCV conventions) must agree to the pixel,
so both are derived here from one camera-to-world matrix and one focal length:
Blender's camera looks down its -Z axis with +Y up; OpenCV's looks down +Z with +Y down.
Blender's principal point is the image centre, which in OpenCV's convention (the centre of
pixel (col, row) is at (col, row)) is ((W - 1) / 2, (H - 1) / 2).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class PinholeCamera:
    camera_to_world: np.ndarray  # (4, 4), Blender camera convention
    focal_length_mm: float
    sensor_width_mm: float
    width: int
    height: int

    @property
    def focal_px(self) -> float:
        # Sensor fit is horizontal: the sensor width spans the image width.
        return self.focal_length_mm / self.sensor_width_mm * self.width

    @property
    def K(self) -> np.ndarray:
        f = self.focal_px
        return np.array([[f, 0.0, (self.width - 1) / 2.0], [0.0, f, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]])

    @property
    def world_to_camera(self) -> np.ndarray:
        """World to OpenCV camera (x right, y down, z forward)."""
        return BLENDER_TO_OPENCV @ np.linalg.inv(self.camera_to_world)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel positions (N, 2) in OpenCV convention and depths (N,) along the optical axis."""
        w2c = self.world_to_camera
        cam = points @ w2c[:3, :3].T + w2c[:3, 3]
        depth = cam[:, 2]
        uv = cam[:, :2] / depth[:, None] * self.focal_px
        uv += np.array([(self.width - 1) / 2.0, (self.height - 1) / 2.0])
        return uv, depth


def look_at(eye: np.ndarray, target: np.ndarray, roll_deg: float = 0.0, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Blender-convention camera-to-world matrix looking from `eye` at `target`."""
    eye = np.asarray(eye, dtype=float)
    forward = np.asarray(target, dtype=float) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=float))
    if np.linalg.norm(right) < 1e-8:  # looking straight up or down
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    roll = np.deg2rad(roll_deg)
    right, true_up = (np.cos(roll) * right + np.sin(roll) * true_up,
                      -np.sin(roll) * right + np.cos(roll) * true_up)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, true_up, -forward, eye
    return matrix


def view_direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector from the person towards the camera; azimuth 0 = in front (the person faces -Y)."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])


def visible_fraction(uv: np.ndarray, width: int, height: int, margin: float = 0.0) -> float:
    """Share of projected points inside the frame (less `margin` of the image on each side)."""
    inside = ((uv[:, 0] >= margin * width) & (uv[:, 0] <= (1 - margin) * width - 1)
              & (uv[:, 1] >= margin * height) & (uv[:, 1] <= (1 - margin) * height - 1))
    return float(inside.mean())


def _fitted(eye: np.ndarray, target: np.ndarray) -> dict:
    forward = target - eye
    pitch = np.degrees(np.arctan2(-forward[2], np.hypot(forward[0], forward[1])))
    return {
        "eye": [round(float(v), 6) for v in eye],
        "target": [round(float(v), 6) for v in target],
        "distance_m": round(float(np.linalg.norm(forward)), 6),
        "elevation_deg": round(float(pitch), 6),  # how far the camera looks down (horizon placement)
    }


def _fit_rig(vertices: np.ndarray, draws: dict, width: int, height: int, margin: float) -> dict:
    """A named rig: fixed camera height, ground distance and azimuth, aimed at the person.

    Only if less than `min_visible_fraction` of the person would be in frame does the camera
    back off along its line of sight.
    """
    rig = draws["rig"]
    target = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    az = np.deg2rad(rig["azimuth_deg"])
    eye = np.array([target[0] + rig["distance_m"] * np.sin(az), target[1] - rig["distance_m"] * np.cos(az),
                    rig["height_m"]])
    for _ in range(30):
        cam = PinholeCamera(look_at(eye, target, draws["roll_deg"]), rig["focal_length_mm"], draws["sensor_width_mm"],
                            width, height)
        uv, depth = cam.project(vertices)
        if depth.min() > 0.05 and visible_fraction(uv, width, height, margin) >= draws["min_visible_fraction"]:
            break
        eye = target + (eye - target) * 1.1
    return _fitted(eye, target)


def fit_camera(vertices: np.ndarray, draws: dict, width: int, height: int, margin: float = 0.02) -> dict:
    """Place the camera on the drawn direction so the person has the drawn projected height.

    The distance is refined on the real projected extent (a perspective body is not its
    bounding sphere), then increased if needed until at least `min_visible_fraction` of the
    person's vertices are in frame (1.0, the default: the whole person; less allows
    truncation at the image border, which the annotations then describe as it is).
    """
    if draws.get("rig"):
        return _fit_rig(vertices, draws, width, height, margin)
    if draws.get("placement", {}).get("rule") == "photo_people":
        return _fit_on_ground(vertices, draws, width, height)
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    direction = view_direction(draws["azimuth_deg"], draws["elevation_deg"])
    extent = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    fraction = draws["person_height_fraction"]

    def camera_at(distance: float, target: np.ndarray) -> PinholeCamera:
        eye = target + direction * distance
        return PinholeCamera(look_at(eye, target, draws["roll_deg"]), draws["focal_length_mm"],
                             draws["sensor_width_mm"], width, height)

    focal_px = draws["focal_length_mm"] / draws["sensor_width_mm"] * width
    distance = max(focal_px * extent / (fraction * height), extent)
    target = centre
    for _ in range(6):
        uv, depth = camera_at(distance, target).project(vertices)
        span = uv[:, 1].max() - uv[:, 1].min()
        distance *= span / (fraction * height)
        distance = max(distance, 0.6 * extent)
    # Move the aim point so the person's box centre lands at the drawn offset from the image centre.
    cam = camera_at(distance, target)
    uv, depth = cam.project(vertices)
    box_centre = 0.5 * (uv.min(axis=0) + uv.max(axis=0))
    wanted = np.array([(width - 1) / 2.0 + draws["offset"][0] * width, (height - 1) / 2.0 + draws["offset"][1] * height])
    shift_px = box_centre - wanted
    c2w = cam.camera_to_world
    metres_per_px = float(np.median(depth)) / cam.focal_px
    target = target + (c2w[:3, 0] * shift_px[0] - c2w[:3, 1] * shift_px[1]) * metres_per_px
    wanted_fraction = draws.get("min_visible_fraction", 1.0)
    for _ in range(30):
        cam = camera_at(distance, target)
        uv, depth = cam.project(vertices)
        if depth.min() > 0.05 and visible_fraction(uv, width, height, margin) >= wanted_fraction:
            break
        distance *= 1.08
    return _fitted(target + direction * distance, target)


def _fit_on_ground(vertices: np.ndarray, draws: dict, width: int, height: int) -> dict:
    """The photograph's camera (scene/photo_placement.py): its horizon row (pitch), its height
    above the ground and no roll, placed so that the person's feet, on the ground (z = 0), are
    seen at the drawn foot pixel; the drawn azimuth says from which side."""
    placement = draws["placement"]
    focal_px = draws["focal_length_mm"] / draws["sensor_width_mm"] * width
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    pitch = np.arctan2(cy - placement["horizon_row"], focal_px)  # > 0 looks down
    back = view_direction(draws["azimuth_deg"], 0.0)  # from the person towards the camera, level
    forward = -back * np.cos(pitch) + np.array([0.0, 0.0, -np.sin(pitch)])
    rotation = look_at(np.zeros(3), forward)[:3, :3]
    # The foot pixel's ray in the world (Blender camera axes: x right, y up, looking down -z).
    ray = rotation @ np.array([(placement["foot_col"] - cx) / focal_px, -(placement["foot_row"] - cy) / focal_px, -1.0])
    low = vertices[:, 2] < vertices[:, 2].min() + 0.03
    feet = np.array([*vertices[low, :2].mean(axis=0), 0.0])
    eye = feet - ray * (placement["camera_height_m"] / -ray[2])  # ray[2] < 0: the foot row is below the horizon
    fitted = _fitted(eye, eye + forward)
    fitted["roll_deg"] = 0.0  # the photograph's horizon is level in the fit
    return fitted


def camera_from_spec(spec: dict) -> PinholeCamera:
    cam = spec["camera"]
    fitted = cam["fitted"]
    focal = cam["rig"]["focal_length_mm"] if cam.get("rig") else cam["focal_length_mm"]
    return PinholeCamera(
        look_at(np.array(fitted["eye"]), np.array(fitted["target"]), fitted.get("roll_deg", cam["roll_deg"])),
        focal, cam["sensor_width_mm"], spec["render"]["width"], spec["render"]["height"],
    )
