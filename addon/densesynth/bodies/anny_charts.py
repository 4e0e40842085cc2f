"""The 24 DensePose charts (part index I and chart coordinates U, V) on the anny body.

Why this module exists
----------------------
DensePose ground truth is a part index ``I`` in 1..24 and chart coordinates ``(U, V)``
in [0, 1] for every body pixel. DensePose-COCO defines them on SMPL through a fixed
per-vertex table (``UV_Processed.mat``): 24 patches cut from SMPL's surface, each with
its own unwrapping. anny has another mesh, so there is no table to copy; this module
*constructs* the equivalent on anny's rest mesh, from anny's own skinning and skeleton,
so that the result keeps DensePose's semantics (which body region is which ``I``, which
way the charts run) while being defined exactly on our mesh. It is pure NumPy because it
runs in render workers (inside Blender), on every start, in well under a second.

How the parts are made
----------------------
1. *Body segment from skinning.* Every bone belongs to one of 14 segments (torso, head,
   and per side: upper arm, lower arm, hand, upper leg, lower leg, foot): pelvis, spine,
   clavicle and root are torso; shoulder01 and upperarm are upper arm; wrist, metacarpals
   and fingers are hand; foot and toes are foot; neck, head and eyes are head (so the head
   charts include the neck, the eyeballs and the mouth/eye cavities). A face scores each
   segment with the summed skinning weights of its three corners. The scores are diffused
   over face neighbours for a dozen rounds before taking the best segment, which puts
   the borders on the skin's own weight "watersheds" with smooth, speckle-free outlines;
   a few rounds of majority vote over face neighbours then shave the one-triangle teeth
   that any per-face decision leaves along a border.
2. *Islands.* Any connected piece of a segment other than its largest one that borders
   another segment's largest piece joins the segment it shares the most edges with.
   Pieces that are separate mesh components (eyeballs, the mouth insert) keep their
   label. Every step is mirror-symmetric (ties are broken by a key that mirror twins
   share), so on anny's symmetric mesh the charts map onto each other exactly through
   the horizontal flip table, (U, V) included (see below).
3. *Front/back and left/right split, geometrically.* Limbs and torso are split by the
   plane that contains the segment's centre line and the person's side-to-side direction:
   the half facing the person's front (-Y in anny) is "front". The head is split by the
   body's mid-sagittal plane (x of the head bone) into the person's left (+X) and right
   halves, matching DensePose's head charts 23/24 (horizontal flip swaps them). The split
   uses face centroids, then the vote and the island clean-up run again on the 24 parts.
   On anny every chart ends up one connected region; each head half also keeps one
   eyeball and half of the mouth insert, which are separate mesh components.

How (U, V) are made
-------------------
All coordinates are computed *per face corner from the chart of the face*, as a
continuous function of the corner's rest position. Two faces of one chart therefore agree
exactly at shared vertices, and nothing is ever interpolated across a chart border.

* Limbs and torso (charts 1, 2, 7..22): ``V`` runs along the segment axis given by bone
  heads (torso: root -> neck01; upper arm: upperarm01 -> lowerarm01; lower arm:
  lowerarm01 -> wrist; upper leg: upperleg01 -> lowerleg01; lower leg: lowerleg01 ->
  foot), 0 at the proximal and 1 at the distal end of the segment's surface (so the
  whole [0, 1] range is used and nothing is flattened by clamping). ``U`` is the angle
  around the segment's centre line *within the half*: 0 on the seam at the medial side
  (for the torso: the person's right side), 1 on the seam at the lateral side (torso:
  left side), 0.5 at the middle of the front or back. The centre line is the area
  weighted centroid of the segment's cross-sections (for limbs measured between the two
  joints, and held beyond them where the surface is an end cap rather than a ring), not
  the bone: bones are off-centre, e.g. the spine lies at the back. The angle is measured from a
  point set back from the centre line, away from the half, by half the local radius (at
  least half the segment's median radius): where the axis pierces the surface (the crotch
  under the torso, the top of the shoulder cap, the back of the elbow) a plain angle would
  sweep through all of [0, 1] within a few millimetres, the set-back angle stays gentle.
  Since a half never wraps round the whole axis, ``U`` has no 0/1 wrap seam inside a
  chart. The last few percent of ``U`` next to a seam are clamped where a cross-section
  is thicker than usual, or where a seam face reaches across the splitting plane.
* Head halves (23, 24): ``V`` is the height (0 at the base of the neck, 1 at the crown),
  ``U`` the angle around the vertical centre line within the half, from the back of the
  head (0) to the face (1), measured like the limbs' (set back across the midline, so
  the crown, where the vertical axis leaves the head, stays continuous).
* Mirror convention: limbs (medial -> lateral), head halves, hands and feet use the same
  layout on both sides, so the horizontal flip maps (U, V) on one side to the same
  (U, V) on the mirror chart; the torso charts run from the person's right to left, so
  the flip maps U to 1 - U there.
* Hands and feet (3..6): a hand or foot is a cap attached to the limb along one loop
  (wrist, ankle): topologically a disc, so it can be charted without any seam. We use an
  azimuthal projection seen from a point inside it: polar angle from the direction of
  the limb (towards the forearm or the shin) gives the radius, 1 at the wrist/ankle border
  and 0 at the far end (the middle fingertip; the sole under the ankle); azimuth around
  that direction gives the angle. ``(U, V) = 0.5 + 0.5 r (cos, sin)``: lateral side
  towards U = 1, the person's front towards V = 1. The only singular direction points
  into the limb through the open border, so the map is continuous on the whole chart
  (it is not injective along the fingers and toes, where it folds).

Relation to DensePose's SMPL charts
-----------------------------------
Part indices, names and the horizontal flip (``core/parts.py``) are DensePose's. The
within-pair choice of which is "front" and which "back" follows the names in DensePose's
list (e.g. 7 = upper leg right back). The regions are close to SMPL's but not identical:
ours follow anny's skinning, so e.g. the shoulder cap belongs to the upper arm (from
shoulder01), the neck to the head and the buttocks mostly to the torso. The (U, V) layouts are our own construction, as
DensePose's are tied to SMPL's vertex table: a model that regresses (U, V) learns our
layout, and comparing (U, V) with DensePose-COCO annotations needs a mapping between the
two bodies' surfaces (I agrees directly).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Charts", "build_anny_charts", "chart_area_shares", "SEGMENTS", "SEGMENT_PARTS"]

NUM_PARTS = 24

# Segment name -> fine parts (first, second): (front, back) for limbs and torso,
# (right, left) for the head, a single chart for hands and feet.
SEGMENT_PARTS: dict[str, tuple[int, ...]] = {
    "torso": (2, 1),
    "head": (23, 24),
    "hand.R": (3,),
    "hand.L": (4,),
    "foot.L": (5,),
    "foot.R": (6,),
    "upper_leg.R": (9, 7),
    "upper_leg.L": (10, 8),
    "lower_leg.R": (13, 11),
    "lower_leg.L": (14, 12),
    "upper_arm.L": (15, 17),
    "upper_arm.R": (16, 18),
    "lower_arm.L": (19, 21),
    "lower_arm.R": (20, 22),
}
SEGMENTS: tuple[str, ...] = tuple(SEGMENT_PARTS)

# Limb segments: (proximal bone, distal bone) whose heads give the axis.
_LIMB_AXES: dict[str, tuple[str, str]] = {
    "upper_arm": ("upperarm01", "lowerarm01"),
    "lower_arm": ("lowerarm01", "wrist"),
    "upper_leg": ("upperleg01", "lowerleg01"),
    "lower_leg": ("lowerleg01", "foot"),
}

_BONE_SEGMENT_RULES: tuple[tuple[str, str], ...] = (
    (r"(root|pelvis|spine|clavicle)", "torso"),
    (r"(neck|head|eye)", "head"),
    (r"(shoulder|upperarm)", "upper_arm"),
    (r"lowerarm", "lower_arm"),
    (r"(wrist|finger|metacarpal)", "hand"),
    (r"upperleg", "upper_leg"),
    (r"lowerleg", "lower_leg"),
    (r"(foot|toe)", "foot"),
)

_SMOOTHING_ROUNDS = 12
_VOTE_ROUNDS = 50  # upper bound; the vote settles long before
_SETBACK = 0.5  # angle origin set back by this fraction of the local radius
_CENTRE_BINS = 16
_EPS = 1e-12


def corner_iuv(face_part: np.ndarray, corner_uv: np.ndarray) -> np.ndarray:
    """(F, 3, 3): chart index and (U, V) at every face corner, as the label pass emits them."""
    iuv = np.empty((len(face_part), 3, 3), dtype=np.float32)
    iuv[..., 0] = np.asarray(face_part)[:, None]
    iuv[..., 1:] = corner_uv
    return iuv


@dataclass(frozen=True)
class Charts:
    """Per-face DensePose labels of one mesh topology (valid for every phenotype and pose)."""

    face_part: np.ndarray  # (F,) int, 1..24, every face has a chart (no zeros)
    corner_uv: np.ndarray  # (F, 3, 2) float32, U and V of each face corner, in [0, 1]


def bone_segment(label: str) -> str:
    """Segment (a key of SEGMENT_PARTS) of an anny bone label, e.g. 'finger2-1.L' -> 'hand.L'."""
    base, _, side = label.partition(".")
    for pattern, segment in _BONE_SEGMENT_RULES:
        if re.match(pattern, base):
            if segment in ("torso", "head"):
                return segment
            if side not in ("L", "R"):
                raise ValueError(f"limb bone without a side: {label!r}")
            return f"{segment}.{side}"
    raise ValueError(f"anny bone {label!r} has no DensePose segment")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), _EPS)


def _face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def _face_adjacency(faces: np.ndarray, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of faces sharing an edge (non-manifold edges chain their faces)."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    keys = edges[:, 0].astype(np.int64) * num_vertices + edges[:, 1]
    owner = np.tile(np.arange(len(faces)), 3)
    order = np.argsort(keys, kind="stable")
    keys, owner = keys[order], owner[order]
    same = keys[1:] == keys[:-1]
    return owner[:-1][same], owner[1:][same]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component id (smallest member index) of n nodes joined by edges a-b."""
    parent = np.arange(n)
    while True:
        pa, pb = parent[a], parent[b]
        differ = pa != pb
        if not differ.any():
            return parent
        lo, hi = np.minimum(pa[differ], pb[differ]), np.maximum(pa[differ], pb[differ])
        np.minimum.at(parent, hi, lo)  # hook roots onto smaller roots: never a cycle
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def _majority_vote(
    labels: np.ndarray, a: np.ndarray, b: np.ndarray, priority: np.ndarray, max_rounds: int
) -> np.ndarray:
    """Faces adopt a label held by at least two neighbours and by more neighbours than their own.

    Shaves the one-triangle teeth a per-face decision leaves along borders on a coarse mesh.
    Two neighbouring faces never switch in the same round (the one of lower priority waits;
    equal priority, which only mirror twins across the midline share, both wait): each
    switch then strictly shortens the borders, so the vote cannot oscillate and settles.
    A mirror-symmetric priority keeps a mirror-symmetric labelling symmetric.
    """
    labels = labels.copy()
    num_faces, num_labels = len(labels), int(labels.max()) + 1
    src, dst = np.concatenate([a, b]), np.concatenate([b, a])
    rows = np.arange(num_faces)
    for _ in range(max_rounds):
        counts = np.bincount(
            src * num_labels + labels[dst], minlength=num_faces * num_labels
        ).reshape(num_faces, num_labels)
        best = np.argmax(counts, axis=1)
        change = (counts[rows, best] >= 2) & (counts[rows, best] > counts[rows, labels])
        both = change[a] & change[b]
        pa, pb = priority[a[both]], priority[b[both]]
        change[a[both][pa <= pb]] = False
        change[b[both][pb <= pa]] = False
        if not change.any():
            break
        labels[change] = best[change]
    return labels


def _clean(
    labels: np.ndarray, areas: np.ndarray, a: np.ndarray, b: np.ndarray, priority: np.ndarray
) -> np.ndarray:
    """Majority vote, island absorption, and the vote again for the borders islands leave."""
    labels = _majority_vote(labels, a, b, priority, _VOTE_ROUNDS)
    labels = _absorb_islands(labels, areas, a, b)
    return _majority_vote(labels, a, b, priority, _VOTE_ROUNDS)


def _mirror_symmetric_priority(centroids: np.ndarray, mid_x: float) -> np.ndarray:
    """Dense rank of faces by (height, depth, distance from the midline), equal for mirror twins."""
    key = np.round(
        np.stack([centroids[:, 2], centroids[:, 1], np.abs(centroids[:, 0] - mid_x)], axis=1), 6
    )
    return np.unique(key, axis=0, return_inverse=True)[1].ravel()


def _absorb_islands(
    labels: np.ndarray, areas: np.ndarray, a: np.ndarray, b: np.ndarray, max_rounds: int = 8
) -> np.ndarray:
    """Give every minor piece of a label that touches another label's main piece to that label.

    A label's main piece is its largest connected component by area. Minor pieces bordering
    only other minor pieces (or nothing: separate mesh components) keep their label, so a
    piece can never swap labels with a neighbouring piece back and forth.
    """
    labels = labels.copy()
    for _ in range(max_rounds):
        same = labels[a] == labels[b]
        comp = _components(len(labels), a[same], b[same])
        comp_area = np.bincount(comp, weights=areas, minlength=len(labels))
        # main component of each label: largest area, ties to the smallest id
        roots = np.unique(comp)
        order = np.lexsort((roots, -comp_area[roots], labels[roots]))
        sorted_roots = roots[order]
        first = np.ones(len(sorted_roots), dtype=bool)
        first[1:] = labels[sorted_roots[1:]] != labels[sorted_roots[:-1]]
        is_main = np.zeros(len(labels), dtype=bool)
        is_main[sorted_roots[first]] = True
        minor_face = ~is_main[comp]
        # votes: border edges from a minor piece to a main piece of another label
        cross = ~same
        src = np.concatenate([a[cross], b[cross]])
        dst = np.concatenate([b[cross], a[cross]])
        vote = minor_face[src] & ~minor_face[dst]
        if not vote.any():
            return labels
        src_comp, dst_label = comp[src[vote]], labels[dst[vote]]
        num_labels = int(labels.max()) + 1
        counts = np.bincount(src_comp * num_labels + dst_label, minlength=len(labels) * num_labels)
        counts = counts.reshape(len(labels), num_labels)
        winners = np.flatnonzero(counts.any(axis=1))
        new_label = np.argmax(counts[winners], axis=1)
        relabel = np.full(len(labels), -1)
        relabel[winners] = new_label
        moved = relabel[comp] >= 0
        labels[moved] = relabel[comp[moved]]
    return labels


def _segment_of_faces(
    faces: np.ndarray,
    vertex_bone_indices: np.ndarray,
    vertex_bone_weights: np.ndarray,
    bone_segment_ids: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:
    num_vertices = len(vertex_bone_indices)
    vertex_scores = np.zeros((num_vertices, len(SEGMENTS)))
    rows = np.repeat(np.arange(num_vertices), vertex_bone_indices.shape[1])
    np.add.at(
        vertex_scores,
        (rows, bone_segment_ids[vertex_bone_indices].ravel()),
        vertex_bone_weights.ravel(),
    )
    scores = vertex_scores[faces].sum(axis=1)
    degree = 1.0 + np.bincount(np.concatenate([a, b]), minlength=len(faces))[:, None]
    for _ in range(_SMOOTHING_ROUNDS):
        summed = scores.copy()
        np.add.at(summed, a, scores[b])
        np.add.at(summed, b, scores[a])
        scores = summed / degree
    return np.argmax(scores, axis=1)


@dataclass(frozen=True)
class _Cylinder:
    """A limb or the torso: axis, orthonormal frame and a centre line as a function of t."""

    origin: np.ndarray  # proximal joint
    axis: np.ndarray  # unit, proximal -> distal
    front: np.ndarray  # unit, perpendicular to axis, towards the person's front
    side: np.ndarray  # unit, perpendicular to both, towards U = 1 (lateral / person's left)
    t_range: tuple[float, float]  # min and max of t on the segment's surface
    bin_t: np.ndarray  # centre line samples: t, offset (front, side), radius
    bin_offset: np.ndarray
    bin_radius: np.ndarray  # local radius, at least the segment's median radius

    def local(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """t along the axis, radial coordinates (front, side) from the centre line, local radius."""
        rel = points - self.origin
        t = rel @ self.axis
        off_f = np.interp(t, self.bin_t, self.bin_offset[:, 0])
        off_s = np.interp(t, self.bin_t, self.bin_offset[:, 1])
        radius = np.interp(t, self.bin_t, self.bin_radius)
        return t, rel @ self.front - off_f, rel @ self.side - off_s, radius


def _make_cylinder(
    origin: np.ndarray,
    distal: np.ndarray,
    lateral: np.ndarray,
    vertices: np.ndarray,
    seg_faces: np.ndarray,
    seg_areas: np.ndarray,
    centre_span: tuple[float, float] | None = None,
) -> _Cylinder:
    """Frame and centre line of a segment; the centre line is measured within centre_span.

    centre_span (t range, default the whole segment) keeps slabs that cut a segment's end
    cap, where the surface is no longer a ring round the axis (the top of the shoulder),
    from dragging the centre line onto the surface; beyond the span the centre line and
    radius stay at their last measured values.
    """
    axis = _unit(distal - origin)
    minus_y = np.array([0.0, -1.0, 0.0])
    front = _unit(minus_y - (minus_y @ axis) * axis)
    side = np.cross(axis, front)
    if side @ lateral < 0:
        side = -side
    seg_vertices = vertices[np.unique(seg_faces)]
    t_all = (seg_vertices - origin) @ axis
    t_range = (float(t_all.min()), float(t_all.max()))
    # Centre line: area-weighted centroid of the segment's surface in slabs along the axis.
    centroids = vertices[seg_faces].mean(axis=1) - origin
    t = centroids @ axis
    pf, ps = centroids @ front, centroids @ side
    lo, hi = centre_span if centre_span is not None else t_range
    lo, hi = max(lo, t_range[0]), min(hi, t_range[1])
    edges = np.linspace(lo, hi, _CENTRE_BINS + 1)
    slab = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, _CENTRE_BINS - 1)
    inside = (t >= lo) & (t <= hi)
    weight = np.bincount(slab, weights=seg_areas * inside, minlength=_CENTRE_BINS)
    keep = weight > 0.02 * weight.sum() / _CENTRE_BINS
    if keep.sum() < 2:
        raise ValueError("segment too small to measure a centre line")
    seg_areas = seg_areas * inside
    w = np.maximum(weight, _EPS)
    mean_t = np.bincount(slab, weights=seg_areas * t, minlength=_CENTRE_BINS) / w
    mean_f = np.bincount(slab, weights=seg_areas * pf, minlength=_CENTRE_BINS) / w
    mean_s = np.bincount(slab, weights=seg_areas * ps, minlength=_CENTRE_BINS) / w
    dist = np.hypot(pf - mean_f[slab], ps - mean_s[slab])
    mean_r = np.bincount(slab, weights=seg_areas * dist, minlength=_CENTRE_BINS) / w
    return _Cylinder(
        origin=origin,
        axis=axis,
        front=front,
        side=side,
        t_range=t_range,
        bin_t=mean_t[keep],
        bin_offset=np.stack([mean_f[keep], mean_s[keep]], axis=1),
        bin_radius=np.maximum(mean_r[keep], np.median(mean_r[keep])),
    )


def _half_angle_u(toward: np.ndarray, across: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """U from the angle within a half: toward = radial coordinate into the half, across = to U=1.

    The origin of the angle sits `_SETBACK` radii behind the centre line, outside the half,
    so the angle stays defined and gentle on all of the half's surface, even where the
    surface crosses the centre line; a point on the seam at that radius maps to 0 or 1.
    """
    angle = np.arctan2(across, toward + _SETBACK * radius)
    return 0.5 + 0.5 * angle / np.arctan(1.0 / _SETBACK)


def _cylinder_uv(cyl: _Cylinder, points: np.ndarray, is_front: bool) -> np.ndarray:
    t, radial_f, radial_s, radius = cyl.local(points)
    toward = radial_f if is_front else -radial_f
    u = _half_angle_u(toward, radial_s, radius)
    v = (t - cyl.t_range[0]) / max(cyl.t_range[1] - cyl.t_range[0], _EPS)
    return np.stack([u, v], axis=-1)


def _disc_uv(
    points: np.ndarray,
    centre: np.ndarray,
    opening: np.ndarray,
    lateral: np.ndarray,
    alpha_min: float,
) -> np.ndarray:
    """Azimuthal projection of a cap (hand, foot) seen from `centre`, border towards `opening`."""
    minus_y = np.array([0.0, -1.0, 0.0])
    front = _unit(minus_y - (minus_y @ opening) * opening)
    side = np.cross(opening, front)
    if side @ lateral < 0:
        side = -side
    rel = points - centre
    along = rel @ opening
    pf, ps = rel @ front, rel @ side
    across = np.hypot(pf, ps)
    alpha = np.arctan2(across, along)  # 0 towards the opening, pi away from it
    r = (np.pi - alpha) / max(np.pi - alpha_min, _EPS)
    scale = 0.5 * r / np.maximum(across, _EPS)
    return np.stack([0.5 + scale * ps, 0.5 + scale * pf], axis=-1)


def build_anny_charts(
    rest_vertices: np.ndarray,
    faces: np.ndarray,
    vertex_bone_indices: np.ndarray,
    vertex_bone_weights: np.ndarray,
    bone_labels: Sequence[str] | np.ndarray,
    bone_heads: np.ndarray,
) -> Charts:
    """DensePose part and chart coordinates of every face corner of anny's mesh.

    Inputs are anny's rest mesh (Z up, metres, facing -Y, person's left at +X) at any one
    phenotype, its skinning and its bone heads at that phenotype; the charts only depend
    on the mesh's connectivity and rough shape, so the default phenotype's rest mesh is the
    intended input and the result is reused for every phenotype and pose.
    """
    vertices = np.asarray(rest_vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    heads = np.asarray(bone_heads, dtype=np.float64)
    labels = [str(label) for label in bone_labels]
    bone_index = {label: i for i, label in enumerate(labels)}

    def head_of(name: str) -> np.ndarray:
        if name not in bone_index:
            raise ValueError(f"anny bone {name!r} missing: charts need it")
        return heads[bone_index[name]]

    bone_segment_ids = np.array([SEGMENTS.index(bone_segment(label)) for label in labels])
    a, b = _face_adjacency(faces, len(vertices))
    areas = _face_areas(vertices, faces)
    centroids = vertices[faces].mean(axis=1)
    mid_x = float(head_of("head")[0])
    priority = _mirror_symmetric_priority(centroids, mid_x)

    segment = _segment_of_faces(
        faces,
        np.asarray(vertex_bone_indices, dtype=np.int64),
        np.asarray(vertex_bone_weights, dtype=np.float64),
        bone_segment_ids,
        a,
        b,
    )
    segment = _clean(segment, areas, a, b, priority)

    # Geometry of every segment, and the geometric split into fine parts.
    part = np.zeros(len(faces), dtype=np.int64)
    cylinders: dict[str, _Cylinder] = {}
    discs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}
    head_cylinder: _Cylinder | None = None
    for seg_id, name in enumerate(SEGMENTS):
        in_seg = segment == seg_id
        if not in_seg.any():
            raise ValueError(f"no face of the mesh is skinned mainly to segment {name!r}")
        seg_faces = faces[in_seg]
        parts = SEGMENT_PARTS[name]
        kind, _, side = name.partition(".")
        lateral = np.array([1.0 if side != "R" else -1.0, 0.0, 0.0])
        if kind == "head":
            up = np.array([0.0, 0.0, 1.0])
            base = head_of("neck01")
            # The head's "cylinder": vertical axis, front/side frame gives the half angle.
            cyl = _make_cylinder(base, base + up, np.array([1.0, 0.0, 0.0]), vertices,
                                 seg_faces, areas[in_seg])
            head_cylinder = cyl
            part[in_seg] = np.where(centroids[in_seg, 0] < mid_x, parts[0], parts[1])
        elif kind in ("hand", "foot"):
            part[in_seg] = parts[0]
            if kind == "hand":
                wrist = head_of(f"wrist.{side}")
                knuckles = np.mean(
                    [head_of(f"finger{k}-1.{side}") for k in (2, 3, 4, 5)], axis=0
                )
                opening = _unit(wrist - knuckles)
                centre = 0.5 * (wrist + knuckles)
            else:
                ankle = head_of(f"foot.{side}")
                opening = _unit(head_of(f"lowerleg01.{side}") - ankle)
                depth = float(np.max((ankle - vertices[np.unique(seg_faces)]) @ opening))
                centre = ankle - 0.5 * depth * opening
            rel = vertices[np.unique(seg_faces)] - centre
            alpha = np.arctan2(
                np.linalg.norm(rel - np.outer(rel @ opening, opening), axis=1), rel @ opening
            )
            discs[name] = (centre, opening, lateral, float(alpha.min()))
        else:
            if kind == "torso":
                proximal, distal = head_of("root"), head_of("neck01")
            else:
                p_name, d_name = _LIMB_AXES[kind]
                proximal, distal = head_of(f"{p_name}.{side}"), head_of(f"{d_name}.{side}")
            span = None if kind == "torso" else (0.0, float(np.linalg.norm(distal - proximal)))
            cyl = _make_cylinder(
                proximal, distal, lateral, vertices, seg_faces, areas[in_seg], span
            )
            cylinders[name] = cyl
            _, radial_f, _, _ = cyl.local(centroids[in_seg])
            part[in_seg] = np.where(radial_f >= 0.0, parts[0], parts[1])

    part = _clean(part, areas, a, b, priority)
    missing = sorted(set(range(1, NUM_PARTS + 1)) - set(np.unique(part).tolist()))
    if missing:
        raise ValueError(f"charts {missing} ended up empty")

    # (U, V) per corner, from the chart of the face.
    corner_uv = np.zeros((len(faces), 3, 2))
    for name, parts in SEGMENT_PARTS.items():
        kind, _, _ = name.partition(".")
        for k, fine in enumerate(parts):
            in_part = part == fine
            if not in_part.any():
                continue
            points = vertices[faces[in_part]].reshape(-1, 3)
            if kind == "head" and head_cylinder is not None:
                cyl = head_cylinder
                t, radial_f, _, radius = cyl.local(points)
                radial_x = points[:, 0] - mid_x
                toward = -radial_x if fine == parts[0] else radial_x  # right half: -X
                u = _half_angle_u(toward, radial_f, radius)
                v = (t - cyl.t_range[0]) / max(cyl.t_range[1] - cyl.t_range[0], _EPS)
                uv = np.stack([u, v], axis=-1)
            elif name in discs:
                uv = _disc_uv(points, *discs[name])
            else:
                uv = _cylinder_uv(cylinders[name], points, is_front=(k == 0))
            corner_uv[in_part] = uv.reshape(-1, 3, 2)
    corner_uv = np.clip(corner_uv, 0.0, 1.0).astype(np.float32)
    return Charts(face_part=part.astype(np.int32), corner_uv=corner_uv)


def chart_area_shares(vertices: np.ndarray, faces: np.ndarray, face_part: np.ndarray) -> np.ndarray:
    """(24,) fraction of the surface area in each chart (entry i is part i + 1)."""
    areas = _face_areas(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64))
    per_part = np.bincount(np.asarray(face_part) - 1, weights=areas, minlength=NUM_PARTS)
    return per_part[:NUM_PARTS] / max(float(areas.sum()), _EPS)
