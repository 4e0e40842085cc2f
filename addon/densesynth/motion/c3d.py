"""C3D marker capture -> the canonical clip, by joint centres and inverse kinematics.

Reading: `ezc3d` (POINT:UNITS "mm" or "m"; samples with a negative residual, which ezc3d
returns as NaN, are invalid; gaps up to `max_gap` seconds are filled linearly, longer ones
stay missing). Labels may carry a subject prefix ("Subject:LASI"): the part after the last
colon is used.

Frame: the lab's up axis is the one along which the head markers sit above the pelvis
markers; the lab is turned by the smallest rotation taking that axis to +Y (a Z-up lab:
(x, y, z) -> (x, z, -y), as for AMASS), so headings are kept as the lab had them.

Marker set: Vicon Plug-in Gait, full body, with its optional medial markers (labels, metres):
- pelvis LASI RASI LPSI RPSI (or SACR for both PSIS): pelvis frame (left = LASI - RASI,
  forward = mid-ASIS - mid-PSIS, up = forward x left); hip joint centres by Harrington et
  al. (2007): from mid-ASIS, lateral +-(0.33 PW + 0.0073), backwards 0.24 PD + 0.0099,
  down 0.30 PW + 0.0109 (PW = ASIS distance, PD = ASIS-PSIS depth); the SMPL pelvis joint
  is 0.3 PW above and 0.04 PW behind the middle of the hip centres;
- knee: mid(LKNE, LKNM) with the medial marker, else LKNE moved 5 cm towards the midline;
- ankle: mid(LANK, LMMA) with the medial malleolus marker, else LANK moved 4 cm inwards;
- ball of the foot (SMPL foot): LTOE 2.5 cm towards the sole (away from the ankle, normal
  to the heel-toe line; LHEE needed, else LTOE itself);
- spine2: mid(T10, STRN); neck: mid(C7, CLAV);
- head: the centroid of LFHD RFHD LBHD RBHD, 8 cm down and 1 cm back in the head frame
  (left = left markers - right markers, forward = front - back, up = forward x left);
- shoulder (glenohumeral): LSHO 4 cm down along the thorax (neck - spine2 direction);
- elbow: mid(LELB, LMEP) with the medial epicondyle marker, else LELB;
- wrist: mid(LWRA, LWRB); hand (knuckles): LFIN.
Right side: the same with R. SMPL's spine1, spine3 and collars have no markers: the fit
spreads the trunk's bend over them. Twists that joint centres leave open are matched as
directions (`DIRECTIONS`): the head frame from the four head markers and the forearm twist
from the wrist bar (WRA - WRB points forward, +Z, in the T-pose with the palms down).

Fit: the SMPL skeleton (the generic one's directions, bone lengths from the median joint
centre distances) is posed per frame by Levenberg-Marquardt on the 72 pose parameters and
the translation, with the exact Jacobian of the forward kinematics (`pose_jacobian`: a
rotation-vector step d of joint j turns everything below it about joint j by
W_parent(j) J_l(theta_j) d, J_l the SO(3) left Jacobian), started from the previous frame moved
on at its velocity, with a small pull towards the previous pose (and towards rest for the
unobserved joints).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .clip import MotionClip, MotionFileError, read_map_file, resample
from .smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX, NUM_JOINTS, PARENTS

J = JOINT_INDEX
FOOT_HEIGHT = float(GENERIC_REST_JOINTS[J["left_foot"], 1])
HEAD_MARKER_OFFSET = np.array([0.0, 0.08, 0.01])  # head joint -> head marker centroid (left, up, forward)
KNEE_HALF_WIDTH, ANKLE_HALF_WIDTH, TOE_DEPTH, SHOULDER_DROP = 0.05, 0.04, 0.025, 0.04
MIN_OBSERVED = 7  # joint centres a frame needs to be fitted (the lower body's)


@dataclass
class FitReport:
    frames: int = 0
    failed_frames: list[int] = field(default_factory=list)  # too few joint centres: pose held
    mean_residual: float = 0.0  # metres, over observed joint centres
    centres: np.ndarray | None = None  # (F, 24, 3) joint centres fitted (SMPL frame, metres)


# Reading -----------------------------------------------------------------------------
def read_markers(path: Path | str) -> tuple[dict[str, np.ndarray], float]:
    """{label: (F, 3) metres, NaN where invalid}, frame rate. MotionFileError on problems."""
    markers, rate, _ = read_c3d(path)
    return markers, rate


def read_c3d(path: Path | str) -> tuple[dict[str, np.ndarray], float, dict[str, float]]:
    """Markers and rate as `read_markers`, plus the PROCESSING group's numeric parameters
    (Vicon's subject measurements: LeftLegLength, LeftKneeWidth, ... in mm)."""
    path = Path(path)
    if not path.exists():
        raise MotionFileError(f"C3D file {path} does not exist")
    if path.stat().st_size == 0:
        raise MotionFileError(f"C3D file {path} is empty (0 bytes)")
    try:
        import ezc3d
    except ImportError:  # pragma: no cover - dependency missing
        raise MotionFileError(f"C3D file {path}: reading C3D needs the 'ezc3d' package (pip install ezc3d)") from None
    try:
        c3d = ezc3d.c3d(str(path))
    except (OSError, ValueError, RuntimeError, IndexError) as exc:
        reason = str(exc).replace("\n", " ").split(": iostream error")[0]
        raise MotionFileError(f"C3D file {path} cannot be read (damaged or not C3D): {reason}") from None
    point = c3d["parameters"]["POINT"]
    labels = list(point["LABELS"]["value"]) if "LABELS" in point else []
    i = 2
    while f"LABELS{i}" in point:
        labels += list(point[f"LABELS{i}"]["value"])
        i += 1
    points = np.asarray(c3d["data"]["points"], dtype=np.float64)
    if points.ndim != 3 or points.shape[1] == 0 or points.shape[2] == 0:
        raise MotionFileError(f"C3D file {path} holds no marker samples (empty: {points.shape[1] if points.ndim == 3 else 0} "
                              f"markers, {points.shape[2] if points.ndim == 3 else 0} frames)")
    header = c3d["header"]["points"]
    declared = int(header["last_frame"]) - int(header["first_frame"]) + 1
    if points.shape[2] < declared:
        raise MotionFileError(f"C3D file {path} is truncated: its header declares {declared} frames, "
                              f"the file holds {points.shape[2]}")
    _check_size(path, point, points.shape[1], points.shape[2])
    rate = float(np.asarray(point["RATE"]["value"]).reshape(-1)[0]) if "RATE" in point else float(header["frame_rate"])
    if not np.isfinite(rate) or rate <= 0:
        raise MotionFileError(f"C3D file {path}: POINT:RATE {rate} is not a positive frame rate")
    units = str(point["UNITS"]["value"][0]).strip().lower() if "UNITS" in point and len(point["UNITS"]["value"]) else "mm"
    scale = {"mm": 0.001, "cm": 0.01, "m": 1.0}.get(units)
    if scale is None:
        raise MotionFileError(f"C3D file {path}: POINT:UNITS {units!r} is not mm, cm or m")
    if len(labels) < points.shape[1]:
        labels += [f"unlabelled{k}" for k in range(len(labels), points.shape[1])]
    residuals = c3d["data"]["meta_points"].get("residuals") if "meta_points" in c3d["data"] else None
    markers: dict[str, np.ndarray] = {}
    for k in range(points.shape[1]):
        xyz = points[:3, k, :].T * scale
        if residuals is not None and residuals.shape[1] > k:
            xyz[residuals[0, k, :] < 0] = np.nan
        # Exporters that drop residuals write a missing sample as exactly (0, 0, 0).
        xyz[(xyz == 0.0).all(axis=1)] = np.nan
        markers[labels[k].split(":")[-1].strip()] = xyz
    if all(np.isnan(m).all() for m in markers.values()):
        raise MotionFileError(f"C3D file {path} holds no valid marker samples (every residual negative or every "
                              "sample zeroed)")
    processing: dict[str, float] = {}
    for name, entry in c3d["parameters"].get("PROCESSING", {}).items():
        try:
            value = np.asarray(entry["value"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError, KeyError):
            continue
        if len(value) and np.isfinite(value[0]):
            processing[str(name).split(":")[-1]] = float(value[0])
    return markers, rate, processing


def _declared_frames(path: Path) -> int | None:
    """The frame count the file's own 512-byte header declares (words 4 and 5), or None.

    ezc3d rewrites both its header view and POINT:FRAMES to what it managed to read, so only
    the raw header still says how long the trial was. Word order follows the processor type
    in the parameter block (86 = MIPS, big-endian; Intel and DEC are little-endian)."""
    with open(path, "rb") as handle:
        head = handle.read(512)
        if len(head) < 10 or head[0] < 2:
            return None
        handle.seek((head[0] - 1) * 512 + 3)
        processor = handle.read(1)
    order = "big" if processor == b"\x56" else "little"
    first, last = int.from_bytes(head[6:8], order), int.from_bytes(head[8:10], order)
    if last >= 65535 or last < first:  # long trials keep their count elsewhere
        return None
    return last - first + 1


def _check_size(path: Path, point: dict, num_points: int, num_frames: int) -> None:
    """Refuse a file too short for the frames its header declares.

    ezc3d returns the frames it could read from a cut file without a word, so a half-copied
    trial would convert into half a clip. The size the point data alone needs (analog data
    only adds to it) is a lower bound of any complete file."""
    try:
        data_start = int(np.asarray(point["DATA_START"]["value"]).reshape(-1)[0])
        scale = float(np.asarray(point["SCALE"]["value"]).reshape(-1)[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return
    declared = max(num_frames, _declared_frames(path) or 0)
    word = 4 if scale < 0 else 2  # a negative POINT:SCALE means float samples
    needed = (data_start - 1) * 512 + declared * num_points * 4 * word
    size = path.stat().st_size
    if size < needed:
        raise MotionFileError(f"C3D file {path} is truncated (or its header damaged): {declared} frames of {num_points} "
                              f"markers need at least {needed} bytes, the file has {size}; copy it again")


def fill_gaps(xyz: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly fill NaN runs of at most `max_gap` frames between valid samples."""
    out = xyz.copy()
    bad = np.isnan(out).any(axis=1)
    out[bad] = np.nan
    frames = np.arange(len(out))
    good = np.flatnonzero(~bad)
    if len(good) < 2:
        return out
    start = None
    for f in range(len(out) + 1):
        missing = f < len(out) and bad[f]
        if missing and start is None:
            start = f
        elif not missing and start is not None:
            if start > 0 and f < len(out) and f - start <= max_gap:
                run = frames[start:f]
                alpha = ((run - (start - 1)) / (f - (start - 1)))[:, None]
                out[start:f] = out[start - 1] * (1 - alpha) + out[f] * alpha
            start = None
    return out


# Joint centres ------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _mid(*vs: np.ndarray) -> np.ndarray:
    return np.mean(vs, axis=0)


# Segment directions the joint centres leave open (twist of the head and forearms):
# (SMPL joint whose world rotation carries it, axis in that joint's T-pose frame, markers).
DIRECTIONS = (
    ("head", (0.0, 0.0, 1.0), ("LFHD", "RFHD"), ("LBHD", "RBHD")),  # front minus back
    ("head", (1.0, 0.0, 0.0), ("LFHD", "LBHD"), ("RFHD", "RBHD")),  # left minus right
    ("left_elbow", (0.0, 0.0, 1.0), ("LWRA",), ("LWRB",)),  # wrist bar, thumb side forward
    ("right_elbow", (0.0, 0.0, 1.0), ("RWRA",), ("RWRB",)),
)


def segment_directions(markers: dict[str, np.ndarray]) -> np.ndarray:
    """(F, len(DIRECTIONS), 3) unit directions (NaN where markers are missing)."""
    frames = len(next(iter(markers.values())))
    out = np.full((frames, len(DIRECTIONS), 3), np.nan)
    for k, (_, _, plus, minus) in enumerate(DIRECTIONS):
        if all(n in markers for n in plus + minus):
            v = np.mean([markers[n] for n in plus], axis=0) - np.mean([markers[n] for n in minus], axis=0)
            out[:, k] = _unit(v)
    return out


def joint_centres(markers: dict[str, np.ndarray]) -> np.ndarray:
    """(F, 24, 3) SMPL joint centres from Plug-in Gait markers (NaN where unknown)."""
    frames = len(next(iter(markers.values())))
    nan = np.full((frames, 3), np.nan)
    m = lambda name: markers.get(name, nan)  # noqa: E731
    out = np.full((frames, NUM_JOINTS, 3), np.nan)

    lasi, rasi = m("LASI"), m("RASI")
    psis = _mid(m("LPSI"), m("RPSI")) if "LPSI" in markers and "RPSI" in markers else m("SACR")
    asis = _mid(lasi, rasi)
    left = _unit(lasi - rasi)
    fwd = asis - psis
    fwd = _unit(fwd - left * np.sum(fwd * left, axis=1, keepdims=True))
    up = np.cross(fwd, left)
    pw = np.linalg.norm(lasi - rasi, axis=1, keepdims=True)
    pd = np.linalg.norm(asis - psis, axis=1, keepdims=True)
    base = asis - fwd * (0.24 * pd + 0.0099) - up * (0.30 * pw + 0.0109)
    lateral = left * (0.33 * pw + 0.0073)
    out[:, J["left_hip"]] = base + lateral
    out[:, J["right_hip"]] = base - lateral
    out[:, J["pelvis"]] = base + up * (0.30 * pw) - fwd * (0.04 * pw)

    out[:, J["spine2"]] = _mid(m("T10"), m("STRN"))
    out[:, J["neck"]] = _mid(m("C7"), m("CLAV"))
    heads = [m(n) for n in ("LFHD", "RFHD", "LBHD", "RBHD")]
    h_left = _unit(_mid(heads[0], heads[2]) - _mid(heads[1], heads[3]))
    h_fwd = _mid(heads[0], heads[1]) - _mid(heads[2], heads[3])
    h_fwd = _unit(h_fwd - h_left * np.sum(h_fwd * h_left, axis=1, keepdims=True))
    h_up = np.cross(h_fwd, h_left)
    out[:, J["head"]] = _mid(*heads) - np.stack([h_left, h_up, h_fwd], axis=-1) @ HEAD_MARKER_OFFSET
    thorax_up = _unit(out[:, J["neck"]] - out[:, J["spine2"]])

    for side, sign in (("left", 1.0), ("right", -1.0)):
        s = side[0].upper()
        inward = -sign * left  # towards the midline
        if f"{s}KNM" in markers:
            knee = _mid(m(f"{s}KNE"), m(f"{s}KNM"))
        else:
            knee = m(f"{s}KNE") + KNEE_HALF_WIDTH * inward
        out[:, J[f"{side}_knee"]] = knee
        if f"{s}MMA" in markers:
            ankle = _mid(m(f"{s}ANK"), m(f"{s}MMA"))
        else:
            ankle = m(f"{s}ANK") + ANKLE_HALF_WIDTH * inward
        out[:, J[f"{side}_ankle"]] = ankle
        toe = m(f"{s}TOE")
        if f"{s}HEE" in markers:
            axis = _unit(toe - m(f"{s}HEE"))
            to_ankle = ankle - m(f"{s}HEE")
            foot_up = _unit(to_ankle - axis * np.sum(to_ankle * axis, axis=1, keepdims=True))
            out[:, J[f"{side}_foot"]] = toe - TOE_DEPTH * foot_up
        else:
            out[:, J[f"{side}_foot"]] = toe
        out[:, J[f"{side}_shoulder"]] = m(f"{s}SHO") - SHOULDER_DROP * thorax_up
        elbow = _mid(m(f"{s}ELB"), m(f"{s}MEP")) if f"{s}MEP" in markers else m(f"{s}ELB")
        out[:, J[f"{side}_elbow"]] = elbow
        out[:, J[f"{side}_wrist"]] = _mid(m(f"{s}WRA"), m(f"{s}WRB"))
        out[:, J[f"{side}_hand"]] = m(f"{s}FIN")
    return out


# Skeleton and IK -----------------------------------------------------------------------
def fit_skeleton(centres: np.ndarray) -> np.ndarray:
    """Rest joints (T-pose, generic directions) with bone lengths measured from the centres:
    each observed joint's path to its nearest observed ancestor is scaled to the median
    measured distance; bones without measurements take the median leg scale."""
    generic = GENERIC_REST_JOINTS
    observed = ~np.isnan(centres).any(axis=2)  # (F, 24)
    seen = observed.mean(axis=0) > 0.2
    ratio = np.full(NUM_JOINTS, np.nan)  # per bone (indexed by child)
    for c in range(1, NUM_JOINTS):
        if not seen[c]:
            continue
        a = int(PARENTS[c])
        path = [c]
        while a >= 0 and not seen[a]:
            path.append(a)
            a = int(PARENTS[a])
        if a < 0:
            continue
        both = observed[:, c] & observed[:, a]
        if both.sum() < 1:
            continue
        measured = np.median(np.linalg.norm(centres[both, c] - centres[both, a], axis=1))
        nominal = np.linalg.norm(generic[c] - generic[a])
        if nominal > 1e-6:
            ratio[path] = measured / nominal
    legs = [J[f"{s}_{n}"] for s in ("left", "right") for n in ("knee", "ankle")]
    fallback = np.nanmedian(ratio[legs]) if np.isfinite(ratio[legs]).any() else np.nanmedian(ratio)
    if not np.isfinite(fallback):
        fallback = 1.0
    ratio = np.where(np.isfinite(ratio), ratio, fallback)
    rest = np.empty_like(generic)
    rest[0] = generic[0]
    for j in range(1, NUM_JOINTS):
        rest[j] = rest[PARENTS[j]] + ratio[j] * (generic[j] - generic[PARENTS[j]])
    feet = [J["left_foot"], J["right_foot"]]
    return rest + np.array([-rest[0, 0], FOOT_HEIGHT - rest[feet, 1].min(), -rest[0, 2]])


_UNOBSERVED_PULL = 0.05  # metres of residual per radian, towards rest, joints without markers
_SMOOTH_PULL = 0.01  # metres per radian, towards the previous frame
_DIRECTION_WEIGHT = 0.1  # metres per unit of direction error
_STEP_TOL = 1e-4  # radians (metres for the translation): a frame's fit stops at a step this small
_COST_TOL = 1e-6  # ... or when a step lowers its cost by less than this fraction


def _initial_root(target: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Root rotation vector turning the rest hip line and spine onto the observed ones."""
    pairs = []
    for (a, b) in ((J["left_hip"], J["right_hip"]), (J["pelvis"], J["neck"]), (J["left_shoulder"], J["right_shoulder"])):
        if np.isfinite(target[[a, b]]).all():
            pairs.append((target[a] - target[b], rest[a] - rest[b]))
    if not pairs:
        return np.zeros(3)
    obs = np.array([p[0] for p in pairs])
    ref = np.array([p[1] for p in pairs])
    rot, _ = Rotation.align_vectors(obs, ref)
    return rot.as_rotvec()


# Analytic kinematics for the IK: forward kinematics and its exact Jacobian --------------
def _levels(parents: np.ndarray) -> list[np.ndarray]:
    depth = np.zeros(len(parents), dtype=int)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]


_LEVEL_PARENTS = [(level, PARENTS[level]) for level in _levels(PARENTS)[1:]]
# _ANCESTOR[i, j]: joint j is a strict ancestor of joint i (rotating j moves i).
_ANCESTOR = np.zeros((NUM_JOINTS, NUM_JOINTS), dtype=bool)
for _i in range(1, NUM_JOINTS):
    _a = int(PARENTS[_i])
    while _a >= 0:
        _ANCESTOR[_i, _a] = True
        _a = int(PARENTS[_a])
_ANCESTOR_OR_SELF = _ANCESTOR | np.eye(NUM_JOINTS, dtype=bool)


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices: _skew(a) @ b = a x b."""
    out = np.zeros(v.shape + (3,))
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    out[..., 1, 0], out[..., 2, 0], out[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return out


def _rotvec_and_left_jacobian(rotvec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(24, 3) rotation vectors -> rotation matrices R and SO(3) left Jacobians J_l, both
    (24, 3, 3): Exp(v + d) = Exp(J_l(v) d) Exp(v) to first order in d. With t = |v| and
    K = [v]x: R = I + sin t / t K + (1 - cos t) / t^2 K^2, J_l = I + (1 - cos t) / t^2 K
    + (t - sin t) / t^3 K^2 (series below t = 1e-3)."""
    t2 = np.einsum("ja,ja->j", rotvec, rotvec)
    t = np.sqrt(t2)
    small = t < 1e-3
    ts = np.where(small, 1.0, t)
    sin, cos = np.sin(ts), np.cos(ts)
    a = np.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, sin / ts)
    b = np.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, (1.0 - cos) / (ts * ts))
    c = np.where(small, 1.0 / 6.0 - t2 / 120.0 + t2 * t2 / 5040.0, (ts - sin) / (ts * ts * ts))
    k = _skew(rotvec)
    k2 = rotvec[:, :, None] * rotvec[:, None, :] - t2[:, None, None] * np.eye(3)  # K^2 = v v^T - t^2 I
    eye = np.eye(3)
    rot = eye + a[:, None, None] * k + b[:, None, None] * k2
    jl = eye + b[:, None, None] * k + c[:, None, None] * k2
    return rot, jl


def pose_kinematics(pose72: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World rotations (24, 3, 3), joint positions (24, 3) (as `forward_kinematics`) and the
    world angular velocity per unit of each pose parameter, (24, 3, 3): column c of [j] is
    how the world frame of joint j and everything below it turns (about joint j) when
    pose72[3 j + c] grows, = W_parent(j) J_l(pose72[3 j: 3 j + 3])."""
    rot, jl = _rotvec_and_left_jacobian(np.asarray(pose72, dtype=np.float64).reshape(NUM_JOINTS, 3))
    both = np.stack([rot, jl], axis=1)  # (24, 2, 3, 3): world rotation, angular velocity
    out = np.empty_like(both)
    pos = np.empty((NUM_JOINTS, 3))
    out[0], pos[0] = both[0], rest[0]
    offsets = rest - rest[PARENTS]  # [0] unused
    for level, par in _LEVEL_PARENTS:
        wp = out[par, 0]
        out[level] = np.einsum("jab,jkbc->jkac", wp, both[level])
        pos[level] = pos[par] + np.einsum("jab,jb->ja", wp, offsets[level])
    return out[:, 0], pos, out[:, 1]


def pose_jacobian(pos: np.ndarray, omega: np.ndarray, joints: np.ndarray, vectors: np.ndarray | None = None,
                  carriers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact derivatives w.r.t. the 72 pose parameters of (a) the positions of `joints`,
    (len(joints) * 3, 72), and (b) world vectors carried by the rotations of `carriers`
    (`vectors` (n, 3) in the world), (n * 3, 72). Joint j's parameter c moves a point p
    below it by omega[j, :, c] x (p - pos[j]) and turns a vector v it carries by
    omega[j, :, c] x v (omega from `pose_kinematics`)."""
    rel = (pos[joints][:, None, :] - pos[None, :, :]) * _ANCESTOR[joints][:, :, None]  # (k, 24 j, 3)
    d = np.einsum("kjab,jbc->kajc", _skew(-rel), omega)  # (k, xyz, 24 j, 3 c)
    jac_pos = d.reshape(3 * len(joints), 3 * NUM_JOINTS)
    if vectors is None or not len(vectors):
        return jac_pos, np.zeros((0, 3 * NUM_JOINTS))
    dv = np.einsum("kab,jbc->kajc", _skew(-vectors), omega) * _ANCESTOR_OR_SELF[carriers][:, None, :, None]
    return jac_pos, dv.reshape(3 * len(vectors), 3 * NUM_JOINTS)


def _solve_frame(x0: np.ndarray, rest: np.ndarray, target: np.ndarray, idx: np.ndarray, d_joint: np.ndarray,
                 d_axis: np.ndarray, d_obs: np.ndarray, reg_rest: np.ndarray, anchor: np.ndarray,
                 max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt (Marquardt's diagonal scaling) on one frame with the analytic
    Jacobian: min |pos(x) - target|^2 + |w_d (dirs(x) - d_obs)|^2 + |reg_rest x|^2
    + |_SMOOTH_PULL (x - anchor)|^2 over x = (72 pose parameters, translation).
    Returns (x, per observed joint position residuals (k, 3))."""
    n = 3 * NUM_JOINTS
    reg2 = np.concatenate([reg_rest ** 2 + _SMOOTH_PULL ** 2, np.zeros(3)])
    anchor_full = np.concatenate([anchor, np.zeros(3)])
    smooth2 = np.concatenate([np.full(n, _SMOOTH_PULL ** 2), np.zeros(3)])
    rest_weights2 = np.concatenate([reg_rest ** 2, np.zeros(3)])

    def evaluate(x):
        world, pos, omega = pose_kinematics(x[:n], rest)
        r_pos = pos[idx] + x[n:] - target[idx]
        dirs = np.einsum("kab,kb->ka", world[d_joint], d_axis)
        r_dir = _DIRECTION_WEIGHT * (dirs - d_obs)
        reg = rest_weights2 @ (x * x) + smooth2 @ ((x - anchor_full) ** 2)
        cost = float(np.sum(r_pos ** 2) + np.sum(r_dir ** 2) + reg)
        return cost, (pos, omega, dirs, r_pos, r_dir)

    def normal_equations(x, state):
        pos, omega, dirs, r_pos, r_dir = state
        jp, jd = pose_jacobian(pos, omega, idx, dirs, d_joint)  # position rows; translation: identity
        hess = np.empty((n + 3, n + 3))
        hess[:n, :n] = jp.T @ jp + (_DIRECTION_WEIGHT ** 2) * (jd.T @ jd)
        cross = jp.reshape(len(idx), 3, n).sum(axis=0)  # (3, 72): sum over joints of d pos / d pose
        hess[n:, :n], hess[:n, n:] = cross, cross.T
        hess[n:, n:] = len(idx) * np.eye(3)
        hess[np.diag_indices(n + 3)] += reg2
        grad = np.concatenate([jp.T @ r_pos.ravel() + _DIRECTION_WEIGHT * (jd.T @ r_dir.ravel()), r_pos.sum(axis=0)])
        grad += rest_weights2 * x + smooth2 * (x - anchor_full)
        return hess, grad

    x = x0.copy()
    cost, state = evaluate(x)
    hess, grad = normal_equations(x, state)
    lam = 1e-3
    for _ in range(max_iter):
        diag = np.diag(hess).copy()
        step = np.linalg.solve(hess + lam * np.diag(np.maximum(diag, 1e-12)), -grad)
        x_new = x + step
        cost_new, state_new = evaluate(x_new)
        if cost_new < cost:
            reduction = cost - cost_new
            x, cost, state = x_new, cost_new, state_new
            lam = max(lam * 0.2, 1e-9)
            if reduction <= _COST_TOL * cost or np.abs(step).max() <= _STEP_TOL:
                break
            hess, grad = normal_equations(x, state)
        else:
            lam *= 10.0
            if lam > 1e8 or np.abs(step).max() <= 1e-3 * _STEP_TOL:
                break
    return x, state[3]


def _one_blas_thread():
    """BLAS on one thread while fitting: the IK's matrices are 75 x 75, where BLAS threads only
    add synchronisation, which on a busy machine costs several times the work itself."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - dependency missing: correct, only slower
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def fit_poses(centres: np.ndarray, rest: np.ndarray, directions: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, FitReport]:
    """Per-frame IK: (poses (F, 72), trans (F, 3), report). directions: (F, len(DIRECTIONS), 3)
    observed segment directions (NaN where unknown), matched with weight _DIRECTION_WEIGHT.
    Each frame is solved by Levenberg-Marquardt with the analytic Jacobian
    (`pose_kinematics`, `pose_jacobian`), warm-started from the previous frame."""
    with _one_blas_thread():
        return _fit_poses(centres, rest, directions)


def _fit_poses(centres: np.ndarray, rest: np.ndarray, directions: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, FitReport]:
    frames = len(centres)
    rest = np.asarray(rest, dtype=np.float64)
    if directions is None:
        directions = np.full((frames, len(DIRECTIONS), 3), np.nan)
    dir_joint = np.array([J[d[0]] for d in DIRECTIONS])
    dir_axis = np.array([d[1] for d in DIRECTIONS])
    poses = np.zeros((frames, 3 * NUM_JOINTS))
    trans = np.zeros((frames, 3))
    report = FitReport(frames=frames)
    unobserved = ~(~np.isnan(centres).any(axis=2)).any(axis=0)  # joints never seen
    pull = np.where(np.repeat(unobserved, 3), _UNOBSERVED_PULL, 0.0)
    pull[:3] = 0.0
    prev = before = None
    last = -2
    residuals = []
    for f in range(frames):
        target = centres[f]
        ok = np.isfinite(target).all(axis=1)
        if ok.sum() < MIN_OBSERVED or not ok[J["pelvis"]]:
            report.failed_frames.append(f)
            if prev is not None:
                poses[f], trans[f] = prev[:72], prev[72:]
            continue
        if prev is None:
            x0 = np.zeros(3 * NUM_JOINTS + 3)
            x0[:3] = _initial_root(target, rest)
            x0[72:] = target[J["pelvis"]] - rest[0]
            anchor = x0[:72].copy()
        else:  # start at the previous frame moved on at its velocity; pulled towards the previous frame
            anchor = prev[:72].copy()
            x0 = 2.0 * prev - before if before is not None else prev
        idx = np.flatnonzero(ok)
        dok = np.flatnonzero(np.isfinite(directions[f]).all(axis=1))
        x, r_pos = _solve_frame(x0, rest, target, idx, dir_joint[dok], dir_axis[dok], directions[f, dok], pull,
                                anchor, max_iter=500 if prev is None else 100)
        before = prev if f - 1 == last else None
        prev, last = x, f
        poses[f], trans[f] = x[:72], x[72:]
        residuals.append(np.linalg.norm(r_pos, axis=1).mean())
    if prev is None:
        raise ValueError("no frame has enough joint centres (pelvis and at least "
                         f"{MIN_OBSERVED} joints) to fit")
    first = next(f for f in range(frames) if f not in set(report.failed_frames))
    poses[:first], trans[:first] = poses[first], trans[first]  # leading failures take the first fit
    report.mean_residual = float(np.mean(residuals)) if residuals else 0.0
    return poses, trans, report


# Whole file ---------------------------------------------------------------------------
def lab_to_smpl(centres: np.ndarray) -> np.ndarray:
    """Rotation taking the lab's up axis (head above pelvis, snapped to an axis) to +Y."""
    import warnings

    warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)  # joints a marker set lacks
    rise = np.nanmean(centres[:, J["head"]] - centres[:, J["pelvis"]], axis=0)
    if not np.isfinite(rise).all():
        rise = np.nanmean(centres[:, J["neck"]] - centres[:, J["pelvis"]], axis=0)
    if not np.isfinite(rise).all():  # lower-body marker sets: hips above ankles
        hips = np.nanmean(centres[:, [J["left_hip"], J["right_hip"]]], axis=1)
        ankles = np.nanmean(centres[:, [J["left_ankle"], J["right_ankle"]]], axis=1)
        rise = np.nanmean(hips - ankles, axis=0)
    if not np.isfinite(rise).all():
        raise ValueError("cannot find the up axis: no frame shows both the pelvis and the head, neck or ankles")
    axis = int(np.argmax(np.abs(rise)))
    up = np.zeros(3)
    up[axis] = np.sign(rise[axis])
    rot, _ = Rotation.align_vectors([[0.0, 1.0, 0.0]], [up])
    if np.allclose(up, [0, -1, 0]):
        rot = Rotation.from_rotvec([np.pi, 0.0, 0.0])
    return rot.as_matrix()


def c3d_to_clip(path: Path | str, fps: float | None = None, max_gap: float = 0.1,
                report: FitReport | None = None, markers: str | dict | None = None, info=None) -> MotionClip:
    """Read a C3D marker file into the canonical clip (see the module docstring).

    fps: output rate; the joint centres are resampled to it (linearly) before the fit.
    max_gap: longest gap (seconds) filled by interpolation. report: filled in. markers: the
    marker map, a built-in name ("pig", "isb", "davis") or a mapping (`read_marker_map`);
    default: Plug-in Gait, else the built-in map that covers the most joints. Subject
    measurements in the file (PROCESSING:LeftLegLength, ...) give Plug-in Gait's own joint
    centres; model outputs in the file (LKJC, LKneeJC, LFEO, ...) are used as they are.
    info: a `ConversionReport` to note what was used."""
    path = Path(path)
    raw, rate, meas = read_c3d(path)
    notes = info.notes if info is not None else []
    if isinstance(markers, str):
        if markers not in BUILTIN_MARKER_MAPS:
            raise MotionFileError(f"C3D file {path}: --markers {markers!r} is not a built-in marker map "
                                  f"({', '.join(BUILTIN_MARKER_MAPS)}) or a YAML file")
        candidates = [(markers, BUILTIN_MARKER_MAPS[markers])]
    elif markers is not None:
        candidates = [("the --markers file", markers)]
    else:
        candidates = list(BUILTIN_MARKER_MAPS.items())
    tried = []
    for label, table in candidates:
        mapped, direct = apply_marker_map(raw, table)
        missing = _coverage(mapped, direct)
        tried.append((len(missing), label, mapped, direct, missing))
        if not missing:
            break
    count, label, mapped, direct, missing = min(tried, key=lambda t: t[0])
    if missing:
        present = sorted(raw)
        shown = ", ".join(present[:16]) + ("..." if len(present) > 16 else "")
        raise MotionFileError(
            f"C3D file {path}: marker set {label if len(candidates) == 1 else 'tried ' + ', '.join(t[1] for t in tried)} "
            f"cannot give SMPL joints {', '.join(missing)} (Plug-in Gait needs LASI, RASI, LKNE, RKNE, LANK, RANK); "
            f"pass --markers map.yaml with 'markers: {{PiG label: your label}}' or 'joints: {{smpl_joint: [your "
            f"markers]}}' (see README 'Motion capture'); labels in the file: {shown}")
    notes.append(f"marker set: {label}")
    gap = max(int(round(max_gap * rate)), 0)
    mapped = {k: fill_gaps(v, gap) for k, v in mapped.items()}
    direct = {k: fill_gaps(v, gap) for k, v in direct.items()}
    centres = joint_centres(mapped)
    replaced: dict[str, np.ndarray] = {}
    if meas:
        replaced.update(pig_joint_centres(mapped, meas, notes))
    outputs = model_output_centres(mapped)
    if outputs:
        notes.append(f"model outputs used as joint centres: {', '.join(sorted(outputs))}")
        replaced.update(outputs)
    replaced.update(direct)
    if direct:
        notes.append(f"joints from the marker map: {', '.join(sorted(direct))}")
    hips_before = _mid(centres[:, J["left_hip"]], centres[:, J["right_hip"]])
    for joint, xyz in replaced.items():
        centres[:, J[joint]] = xyz
    if "pelvis" not in direct and ("left_hip" in replaced or "right_hip" in replaced):
        shift = _mid(centres[:, J["left_hip"]], centres[:, J["right_hip"]]) - hips_before
        centres[:, J["pelvis"]] += np.where(np.isfinite(shift), shift, 0.0)
    try:
        basis = lab_to_smpl(centres)
    except ValueError as exc:
        raise MotionFileError(f"C3D file {path}: {exc}") from None
    centres = np.concatenate([centres, segment_directions(mapped)], axis=1) @ basis.T
    out_rate = rate
    if fps is not None and float(fps) < rate:
        out_rate = float(fps)
        times = np.arange(int(np.floor((len(centres) - 1) / rate * out_rate + 1e-9)) + 1) / out_rate
        pos = times * rate
        lo = np.minimum(np.floor(pos).astype(int), len(centres) - 1)
        hi = np.minimum(lo + 1, len(centres) - 1)
        a = (pos - lo)[:, None, None]
        centres = centres[lo] * (1 - a) + centres[hi] * a
    centres, directions = centres[:, :NUM_JOINTS], _unit(centres[:, NUM_JOINTS:])
    rest = fit_skeleton(centres)
    try:
        poses, trans, fit = fit_poses(centres, rest, directions)
    except ValueError as exc:
        raise MotionFileError(f"C3D file {path}: {exc}") from None
    if report is not None:
        report.frames, report.failed_frames, report.mean_residual = fit.frames, fit.failed_frames, fit.mean_residual
        report.centres = centres
    clip = MotionClip(poses=poses, trans=trans, mocap_framerate=out_rate, rest_joints=rest, source=f"c3d:{path.name}")
    if fps is not None and abs(float(fps) - out_rate) > 1e-9:
        clip = resample(clip, fps)
    return clip


# Plug-in Gait joint centres from the subject measurements --------------------------------
# Vicon Plug-in Gait (Davis et al. 1991 hip regression; the "chord function" for knee,
# ankle, shoulder and elbow). Measurements are the PROCESSING parameters Nexus writes (mm):
# LeftLegLength, RightLegLength, InterAsisDistance, Left/RightAsisTrocanterDistance,
# Left/RightKneeWidth, Left/RightAnkleWidth, Left/RightShoulderOffset, Left/RightElbowWidth,
# Left/RightWristWidth, MarkerDiameter (default 14 mm).
PIG_THETA, PIG_BETA = 0.500000178813934, 0.314000427722931
DEFAULT_MARKER_DIAMETER = 14.0  # mm
# Model outputs some pipelines write as points (Nexus virtual points, pyCGM2): used as they are.
MODEL_OUTPUTS = {"hip": ("HJC", "HipJC"), "knee": ("KJC", "KneeJC", "FEO"), "ankle": ("AJC", "AnkleJC", "TIO"),
                 "shoulder": ("SJC", "ShoulderJC", "CLO"), "elbow": ("EJC", "ElbowJC", "HUO"),
                 "wrist": ("WJC", "WristJC", "RAO")}


def chord(proximal: np.ndarray, marker: np.ndarray, delta: float, side: np.ndarray) -> np.ndarray:
    """The chord function: the point J at distance `delta` from `marker`, with the angle
    proximal-J-marker a right angle, in the plane of proximal, marker and `side` (a direction,
    (F, 3)), on the side `side` points to."""
    along = proximal - marker
    length = np.linalg.norm(along, axis=-1, keepdims=True)
    u = along / length
    w = side - u * np.sum(side * u, axis=-1, keepdims=True)
    w = w / np.linalg.norm(w, axis=-1, keepdims=True)
    cos = np.clip(delta / length, -1.0, 1.0)
    return marker + delta * (cos * u + np.sqrt(1.0 - cos ** 2) * w)


def _measure(meas: dict[str, float], names: tuple[str, ...]) -> float | None:
    for n in names:
        v = meas.get(n)
        if v is not None and v > 0:
            return v / 1000.0
    return None


def pig_joint_centres(markers: dict[str, np.ndarray], meas: dict[str, float], notes: list[str]) -> dict[str, np.ndarray]:
    """{SMPL joint name: (F, 3)} Plug-in Gait joint centres (metres) that the measurements allow."""
    have = lambda *names: all(n in markers for n in names)  # noqa: E731
    r = (meas.get("MarkerDiameter") or DEFAULT_MARKER_DIAMETER) / 2000.0
    out: dict[str, np.ndarray] = {}
    lasi, rasi = markers["LASI"], markers["RASI"]
    psis = _mid(markers["LPSI"], markers["RPSI"]) if have("LPSI", "RPSI") else markers.get("SACR")
    legs = [_measure(meas, (f"{s}LegLength",)) for s in ("Left", "Right")]
    if psis is not None and all(v is not None for v in legs):
        origin = _mid(lasi, rasi)
        y = _unit(lasi - rasi)
        x = origin - psis
        x = _unit(x - y * np.sum(x * y, axis=1, keepdims=True))
        z = np.cross(x, y)
        mean_leg = 1000.0 * float(np.mean(legs))
        asis = _measure(meas, ("InterAsisDistance",))
        asis_mm = 1000.0 * asis if asis else float(np.nanmedian(np.linalg.norm(lasi - rasi, axis=1))) * 1000.0
        c = mean_leg * 0.115 - 15.3
        for side, sign, leg in (("left", 1.0, legs[0]), ("right", -1.0, legs[1])):
            at = _measure(meas, (f"{side.capitalize()}AsisTrocanterDistance",))
            at_mm = 1000.0 * at if at else 0.1288 * leg * 1000.0 - 48.56
            hx = c * np.cos(PIG_THETA) * np.sin(PIG_BETA) - (at_mm + r * 1000.0) * np.cos(PIG_BETA)
            hy = sign * (asis_mm / 2.0 - c * np.sin(PIG_THETA))
            hz = -c * np.cos(PIG_THETA) * np.cos(PIG_BETA) - (at_mm + r * 1000.0) * np.sin(PIG_BETA)
            out[f"{side}_hip"] = origin + (hx * x + hy * y + hz * z) / 1000.0
        notes.append("Plug-in Gait hip centres (Davis regression) from LegLength and InterAsisDistance")
    for side in ("left", "right"):
        s, cap = side[0].upper(), side.capitalize()
        hip = out.get(f"{side}_hip")
        knee_w = _measure(meas, (f"{cap}KneeWidth",))
        if hip is not None and knee_w is not None and have(f"{s}KNE", f"{s}THI"):
            kne = markers[f"{s}KNE"]
            out[f"{side}_knee"] = chord(hip, kne, knee_w / 2 + r, -(markers[f"{s}THI"] - kne))
        knee = out.get(f"{side}_knee")
        ankle_w = _measure(meas, (f"{cap}AnkleWidth",))
        if knee is not None and ankle_w is not None and have(f"{s}ANK", f"{s}TIB"):
            ank = markers[f"{s}ANK"]
            out[f"{side}_ankle"] = chord(knee, ank, ankle_w / 2 + r, -(markers[f"{s}TIB"] - ank))
    if have("C7", "T10", "CLAV", "STRN"):
        upper, lower = _mid(markers["CLAV"], markers["C7"]), _mid(markers["STRN"], markers["T10"])
        front, back = _mid(markers["CLAV"], markers["STRN"]), _mid(markers["T10"], markers["C7"])
        zt = _unit(lower - upper)
        xt = front - back
        xt = _unit(xt - zt * np.sum(xt * zt, axis=1, keepdims=True))
        origin = markers["CLAV"] - r * xt
        for side in ("left", "right"):
            s, cap = side[0].upper(), side.capitalize()
            offset = _measure(meas, (f"{cap}ShoulderOffset",))
            if offset is None or not have(f"{s}SHO"):
                continue
            sho = markers[f"{s}SHO"]
            to = _unit(sho - origin)
            wand = np.cross(xt, to) if side == "left" else np.cross(to, xt)
            sjc = chord(origin, sho, offset + r, -wand)
            out[f"{side}_shoulder"] = sjc
            elbow_w = _measure(meas, (f"{cap}ElbowWidth",))
            if elbow_w is None or not have(f"{s}ELB", f"{s}WRA", f"{s}WRB"):
                continue
            elb = markers[f"{s}ELB"]
            wri = _mid(markers[f"{s}WRA"], markers[f"{s}WRB"])
            n = _unit(np.cross(_unit(sjc - elb), _unit(wri - elb)))
            ejc = chord(sjc, elb, elbow_w / 2 + r, -n if side == "left" else n)
            out[f"{side}_elbow"] = ejc
            wrist_w = _measure(meas, (f"{cap}WristWidth",))
            if wrist_w is not None:
                zr = _unit(ejc - wri)
                yr = _unit(np.cross(zr, _unit(markers[f"{s}WRA"] - markers[f"{s}WRB"])))
                out[f"{side}_wrist"] = wri + (1.0 if side == "right" else -1.0) * (wrist_w / 2 + r) * yr
        if any(k.endswith(("shoulder", "elbow")) for k in out):
            notes.append("Plug-in Gait shoulder / elbow / wrist centres (chord function) from ShoulderOffset, "
                         "ElbowWidth and WristWidth")
    if any(k.endswith(("knee", "ankle")) for k in out):
        notes.append("Plug-in Gait knee / ankle centres (chord function) from KneeWidth and AnkleWidth")
    return out


def model_output_centres(markers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Joint centres the file carries as model outputs (LKJC, LKneeJC, LFEO, ...)."""
    out = {}
    for joint, suffixes in MODEL_OUTPUTS.items():
        for side in ("left", "right"):
            for suffix in suffixes:
                name = side[0].upper() + suffix
                if name in markers and np.isfinite(markers[name]).any():
                    out[f"{side}_{joint}"] = markers[name]
                    break
    return out


# Marker sets of other protocols ---------------------------------------------------------
# A marker map renames lab labels to the Plug-in Gait labels the joint centres use
# ("markers": {PiG label: lab label}) and may define joints directly as the centroid of
# lab markers ("joints": {SMPL joint: [lab labels]}). Labels compare without case, spaces,
# underscores, dots or dashes.
def _isb_side(prefix: str, s: str) -> dict[str, str]:
    return {f"{s}ASI": f"{prefix}IAS", f"{s}PSI": f"{prefix}IPS", f"{s}HEE": f"{prefix}FCC", f"{s}TOE": f"{prefix}FM2",
            f"{s}SHO": f"{prefix}SAE", f"{s}FIN": f"{prefix}HM2"}


BUILTIN_MARKER_MAPS: dict[str, dict] = {
    "pig": {"markers": {}, "joints": {}},
    # ISB / CAST / IOR anatomical landmarks (Qualisys, Visual3D, BTS IOR): L_IAS, L_FLE, L_FME ...
    "isb": {
        "markers": {**_isb_side("L_", "L"), **_isb_side("R_", "R"), "C7": "CV7", "T10": "TV10", "CLAV": "SJN",
                    "STRN": "SXS"},
        "joints": {**{f"{side}_{joint}": [f"{s}_{a}", f"{s}_{b}"] for side, s in (("left", "L"), ("right", "R"))
                      for joint, (a, b) in (("knee", ("FLE", "FME")), ("ankle", ("FAL", "TAM")),
                                            ("elbow", ("HLE", "HME")), ("wrist", ("RSP", "USP")))},
                   "head": ["L_HEAD", "R_HEAD", "HEAD"]},
    },
    # BTS Davis heel protocol: "r asis", "r bar 1" (thigh wand), "r knee 1", "r bar 2", "r mall" ...
    "davis": {
        "markers": {**{f"{s}{pig}": f"{s.lower()} {lab}" for s in ("L", "R") for pig, lab in
                       (("ASI", "asis"), ("THI", "bar 1"), ("KNE", "knee 1"), ("TIB", "bar 2"), ("ANK", "mall"),
                        ("TOE", "met"), ("HEE", "heel"), ("SHO", "should"), ("ELB", "elbow"), ("WRA", "wrist"))},
                    "SACR": "sacrum", "C7": "c7"},
        "joints": {},
    },
}
REQUIRED_C3D = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def _norm_label(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch not in " _.-")


def read_marker_map(path: Path | str) -> dict:
    """A marker map YAML: {"markers": {PiG label: lab label}, "joints": {SMPL joint: [labels]}}."""
    path = Path(path)
    data = read_map_file(path, "marker map")
    if not isinstance(data, dict) or set(data) - {"markers", "joints"}:
        raise MotionFileError(f"marker map {path} must be a mapping with 'markers' and / or 'joints'")
    joints = data.get("joints") or {}
    bad = [k for k in joints if k not in JOINT_INDEX]
    if bad:
        raise MotionFileError(f"marker map {path}: {', '.join(map(str, bad))} are not SMPL joints")
    return {"markers": {str(k): str(v) for k, v in (data.get("markers") or {}).items()},
            "joints": {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in joints.items()}}


def apply_marker_map(markers: dict[str, np.ndarray], marker_map: dict) -> tuple[dict[str, np.ndarray], dict]:
    """(markers under PiG labels as well, {SMPL joint: centroid (F, 3)} defined by the map)."""
    by_norm = {_norm_label(k): v for k, v in markers.items()}
    out = dict(markers)
    for pig, lab in marker_map.get("markers", {}).items():
        if _norm_label(lab) in by_norm and pig not in markers:
            out[pig] = by_norm[_norm_label(lab)]
    joints = {}
    for joint, labels in marker_map.get("joints", {}).items():
        found = [by_norm[_norm_label(n)] for n in labels if _norm_label(n) in by_norm]
        if found and (len(found) == len(labels) or joint == "head"):
            joints[joint] = np.mean(found, axis=0)
    return out, joints


def _coverage(markers: dict[str, np.ndarray], direct: dict) -> list[str]:
    """Required joints a marker set cannot give."""
    needs = {"pelvis": ("LASI", "RASI"), "left_hip": ("LASI", "RASI"), "right_hip": ("LASI", "RASI"),
             "left_knee": ("LKNE",), "right_knee": ("RKNE",), "left_ankle": ("LANK",), "right_ankle": ("RANK",)}
    return [j for j in REQUIRED_C3D if j not in direct and not all(m in markers for m in needs[j])]
