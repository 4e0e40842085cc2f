"""Where the first person stands on a photograph backdrop: on the ground its own people show.

A COCO photograph's annotated people give its ground plane, horizon and scale
(`photo_ground.fit_ground`, in the rendered frame: the people are moved by the backdrop's
crop first). The render camera then takes that horizon (pitch) and camera height, and the
person's feet are put on a foot row drawn where the photograph's people stand, so they are
as tall in pixels as a real person standing there. Without usable people (no annotations,
too few, a degenerate fit, or no row where a person would fit in the frame) the rule is
"ranges": the camera framing drawn from the camera ranges as for any backdrop. The spec
records which rule placed the person (`camera.placement.rule`).
"""
from __future__ import annotations

from typing import Any

from ..spec.draws import Draws
from .photo_ground import PhotoPerson, fit_ground, people_from_coco, place_person, plausible_foot_rows

# The person must fit the frame: between these shares of the image height (a 1.7 m person).
PIXEL_HEIGHT_LIMITS = (0.15, 0.9)
TYPICAL_HEIGHT_M = 1.7
FOOT_COLUMNS = (0.2, 0.8)  # where the feet may stand across the image (share of the width)
ROW_STEPS = 64  # foot rows tried when intersecting the plausible ones with those that fit


def draw_placement(d: Draws, config: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    """The placement record of a sample on a photograph (None on procedural backdrops or
    with `camera.photo_placement: frame`)."""
    from ..appearance.photo_backdrops import photo_crop, photo_people, photo_size

    backdrop = spec["backdrop"]
    if backdrop["kind"] == "procedural" or config["camera"]["photo_placement"] != "ground":
        return None
    photo = backdrop["photo"]
    people = photo_people(config["backdrop"], photo["file"])
    ranges = {"rule": "ranges"}
    if people is None or not people.annotations:
        return ranges
    width, height = spec["render"]["width"], spec["render"]["height"]
    photo_w, photo_h = photo_size(config["backdrop"], photo["file"])
    crop = photo_crop(photo, photo_w, photo_h, width, height)
    found = people_from_coco(people.annotations, photo_h, photo_w)
    moved = [PhotoPerson(p.foot_row * crop.scale_y - crop.y0, p.pixel_height * crop.scale_y, p.fully_visible,
                         p.foot_source, p.annotation_id) for p in found]
    focal_px = spec["camera"]["focal_length_mm"] / spec["camera"]["sensor_width_mm"] * width
    fit = fit_ground(moved, focal_px, image_height=height) if len(moved) >= 2 else None
    if fit is None:
        return ranges
    rows = _rows_that_fit(fit, height)
    if not rows:
        return ranges
    foot_row = d.uniform([rows[0], rows[1]])
    distance, pixel_height = place_person(fit, foot_row, TYPICAL_HEIGHT_M)
    return {
        "rule": "photo_people",
        "people": int(fit.n_inliers),
        "horizon_row": round(float(fit.horizon_row), 6),
        "camera_height_m": round(float(fit.camera_height_m), 6),
        "foot_row": round(float(foot_row), 6),
        "foot_col": round(d.uniform(FOOT_COLUMNS) * (width - 1), 6),
        "distance_m": round(float(distance), 6),
        "people_height_m": [round(float(fit.height_mean_m), 6), round(float(fit.height_sd_m), 6)],
    }


def _rows_that_fit(fit, height: int) -> tuple[float, float] | None:
    """The plausible foot rows where a typical person is neither tiny nor taller than the frame
    (and their head stays inside it)."""
    lo, hi = plausible_foot_rows(fit, height)
    good = []
    for step in range(ROW_STEPS + 1):
        row = lo + (hi - lo) * step / ROW_STEPS
        try:
            _, pixels = place_person(fit, row, TYPICAL_HEIGHT_M)
        except ValueError:
            continue
        if PIXEL_HEIGHT_LIMITS[0] * height <= pixels <= PIXEL_HEIGHT_LIMITS[1] * height and row - pixels >= 0:
            good.append(row)
    return (min(good), max(good)) if good else None
