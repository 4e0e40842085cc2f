"""The ground-truth view of the panel: the sample's passes as colour-mapped images.

Preview and Export render the sample once (pipeline.SampleRenderer); the files that render
wrote are decoded here right away, before a preview's temporary folder goes, and kept in
memory (`remember`), so switching the view never renders again. What a view shows is the
dataset's own file (the label EXR, the part PNGs, depth/normals EXRs...), not a re-render.
No `bpy` here: the colour maps are testable alone; session.py writes them into the image.

Colour maps (invertible where it matters, so a test can read the labels back):
* IUV: R = round(255 U), G = round(255 V), B = 10 I (I = 1..24; background black).
* parts (24, 14, joint parts, depth bins) and person index: PART_PALETTE[label], 0 black.
* depth: near bright, far dark over the person's own depth range; background black.
* normals: round(127.5 (n + 1)) per axis; background black.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# (identifier, label, description) of each view; the identifier names the decoded layer.
VIEW_ITEMS = (
    ("BEAUTY", "Beauty", "The rendered image with its image effects"),
    ("IUV", "IUV", "The label EXR: R = U, G = V, B = 10 x part index I"),
    ("PARTS24", "24 Parts", "DensePose's 24 fine parts (labels24)"),
    ("PARTS14", "14 Parts", "DensePose's 14 coarse parts (labels14)"),
    ("PERSON_INDEX", "Person", "Which person each pixel shows (person_index)"),
    ("DEPTH", "Depth", "Camera depth (pass depth): near bright"),
    ("NORMALS", "Normals", "Camera-frame normals (pass normals)"),
    ("JOINT_PARTS", "Joint Parts", "SURREAL's parts by nearest joint (pass joint_parts)"),
    ("DEPTH_BINS", "Depth Bins", "Quantised depth labels (pass depth_bins)"),
)
VIEW_LABELS = {item[0]: item[1] for item in VIEW_ITEMS}
# The pass a view needs in the config's `passes:` (beauty and iuv: every run has them).
VIEW_PASS = {"PERSON_INDEX": "person_index", "DEPTH": "depth", "NORMALS": "normals",
             "JOINT_PARTS": "joint_parts", "DEPTH_BINS": "depth_bins"}

IUV_PART_STEP = 10  # B = 10 I: exact in 8 bits for I = 0..24
VISIBLE_COLOUR = (0, 255, 0)       # keypoint v = 2: a filled disc
OCCLUDED_COLOUR = (255, 160, 0)    # keypoint v = 1 (labelled, hidden): a ring
BONE_COLOUR = (255, 255, 255)


def _palette(count: int) -> np.ndarray:
    """`count` distinct, bright colours (golden-angle hues), row 0 black for the background."""
    import colorsys

    colours = [(0, 0, 0)]
    for k in range(1, count):
        hue = (k * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.75 if k % 2 else 0.95, 1.0 if k % 3 else 0.8)
        colours.append((round(255 * r), round(255 * g), round(255 * b)))
    return np.array(colours, dtype=np.uint8)


PART_PALETTE = _palette(256)


@dataclass
class Truth:
    """The decoded layers of one rendered sample (what every view is made from)."""

    stem: str
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    keypoints: list[np.ndarray] = field(default_factory=list)  # per person (17, 3): x, y, visibility

    def views(self) -> list[str]:
        return [view for view, _, _ in VIEW_ITEMS if view in self.layers]


def _read_png(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read {path}")
    return image[:, :, ::-1].copy() if image.ndim == 3 else image


def decode(out: Path, files: list[str], record: dict[str, Any], num_people: int) -> Truth:
    """The layers of the sample whose files (relative to `out`) the renderer just wrote."""
    from ..decode.iuv_exr import read_exr_channel, read_iuv_exr

    by_folder = {Path(name).parts[0]: out / name for name in files}
    stem = Path(record["image"]["file_name"]).stem
    truth = Truth(stem)
    truth.layers["BEAUTY"] = _read_png(by_folder["images"])[:, :, :3]
    maps = read_iuv_exr(by_folder["iuv"])
    truth.layers["IUV"] = np.stack([maps.I.astype(np.float32), maps.U, maps.V], axis=-1)
    for view, folder in (("PARTS24", "labels24"), ("PARTS14", "labels14"), ("JOINT_PARTS", "joint_parts"),
                         ("DEPTH_BINS", "depth_bins")):
        if folder in by_folder:
            truth.layers[view] = _read_png(by_folder[folder])
    if "persons" in by_folder:
        truth.layers["PERSON_INDEX"] = _read_png(by_folder["persons"])
    elif num_people == 1:  # the pass writes no file for one person: every body pixel is person 1
        truth.layers["PERSON_INDEX"] = (maps.I > 0).astype(np.uint8)
    if "depth" in by_folder:
        truth.layers["DEPTH"] = read_exr_channel(by_folder["depth"], "Z")
    if "normals" in by_folder:
        truth.layers["NORMALS"] = np.stack([read_exr_channel(by_folder["normals"], a) for a in "XYZ"], axis=-1)
    for annotation in record.get("annotations", []):
        if "keypoints" in annotation:
            truth.keypoints.append(np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3))
    return truth


def colourise(truth: Truth, view: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of `view` (one of `truth.views()`), colour-mapped as the module says."""
    layer = truth.layers[view]
    if view == "BEAUTY":
        return layer.copy()
    if view == "IUV":
        parts, uv = layer[..., 0].astype(np.int64), layer[..., 1:]
        rgb = np.zeros(layer.shape[:2] + (3,), dtype=np.uint8)
        rgb[..., :2] = np.clip(np.rint(uv * 255.0), 0, 255).astype(np.uint8)
        rgb[..., 2] = (parts * IUV_PART_STEP).astype(np.uint8)
        rgb[parts == 0] = 0
        return rgb
    if view == "DEPTH":
        valid = np.isfinite(layer) & (layer > 0) & (layer < 1e9)
        rgb = np.zeros(layer.shape + (3,), dtype=np.uint8)
        if valid.any():
            near, far = float(layer[valid].min()), float(layer[valid].max())
            scaled = 1.0 - (layer - near) / max(far - near, 1e-6)
            rgb[valid] = np.rint(55 + 200 * scaled[valid])[:, None].astype(np.uint8)
        return rgb
    if view == "NORMALS":
        rgb = np.clip(np.rint(127.5 * (layer + 1.0)), 0, 255).astype(np.uint8)
        rgb[~np.any(layer != 0, axis=-1)] = 0
        return rgb
    return PART_PALETTE[np.asarray(layer, dtype=np.int64)]


def draw_keypoints(rgb: np.ndarray, keypoints: list[np.ndarray]) -> np.ndarray:
    """The people's COCO keypoints over `rgb`: bones between labelled points, a filled disc
    for a visible point (v = 2), a ring for a labelled hidden one (v = 1); v = 0 not drawn."""
    import cv2

    from ..core.parts import COCO_SKELETON

    image = np.ascontiguousarray(rgb.copy())
    for points in keypoints:
        centre = _centres(points)
        for a, b in COCO_SKELETON:  # 1-based, as COCO writes it
            if points[a - 1, 2] > 0 and points[b - 1, 2] > 0:
                cv2.line(image, centre[a - 1], centre[b - 1], BONE_COLOUR, 1, cv2.LINE_AA)
    for points in keypoints:  # rings under discs: a visible point always shows
        for (x, y), v in zip(_centres(points), points[:, 2]):
            if v == 1:
                cv2.circle(image, (x, y), 3, OCCLUDED_COLOUR, 1)
    for points in keypoints:
        for (x, y), v in zip(_centres(points), points[:, 2]):
            if v >= 2:
                cv2.circle(image, (x, y), 2, VISIBLE_COLOUR, -1)
    return image


def _centres(points: np.ndarray) -> list[tuple[int, int]]:
    return [(int(round(x)), int(round(y))) for x, y, _ in points]


def missing_view_message(view: str, truth: Truth | None, passes: list[str]) -> str:
    """Why `view` cannot be shown, in one line."""
    label = VIEW_LABELS.get(view, view)
    if truth is None:
        return f"no rendered sample to show {label} of: Preview with Render Image on (or Export) first"
    if view in VIEW_PASS and VIEW_PASS[view] not in passes:
        return (f"the config produces no {VIEW_PASS[view]} pass: add it to passes: (now {', '.join(passes)}) "
                f"to see {label}")
    return f"sample {truth.stem} has no {label} layer"
