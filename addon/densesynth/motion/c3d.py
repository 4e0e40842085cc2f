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
centre distances) is posed per frame by `scipy.optimize.least_squares` on the 72 pose
parameters and the translation, warm-started from the previous frame, with a small pull
towards the previous pose (and towards rest for the unobserved joints).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from .clip import MotionClip, MotionFileError, resample
from .kinematics import forward_kinematics
from .smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX, NUM_JOINTS, PARENTS

J = JOINT_INDEX
FOOT_HEIGHT = float(GENERIC_REST_JOINTS[J["left_foot"], 1])
HEAD_MARKER_OFFSET = np.array([0.0, 0.08, 0.01])  # head joint -> head marker centroid (left, up, forward)
KNEE_HALF_WIDTH, ANKLE_HALF_WIDTH, TOE_DEPTH, SHOULDER_DROP = 0.05, 0.04, 0.025, 0.04
MIN_OBSERVED = 8  # joint centres a frame needs to be fitted


@dataclass
class FitReport:
    frames: int = 0
    failed_frames: list[int] = field(default_factory=list)  # too few joint centres: pose held
    mean_residual: float = 0.0  # metres, over observed joint centres


# Reading -----------------------------------------------------------------------------
def read_markers(path: Path | str) -> tuple[dict[str, np.ndarray], float]:
    """{label: (F, 3) metres, NaN where invalid}, frame rate. MotionFileError on problems."""
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
        markers[labels[k].split(":")[-1].strip()] = xyz
    if all(np.isnan(m).all() for m in markers.values()):
        raise MotionFileError(f"C3D file {path} holds no valid marker samples (all residuals negative)")
    return markers, rate


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


def fit_poses(centres: np.ndarray, rest: np.ndarray, directions: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, FitReport]:
    """Per-frame IK: (poses (F, 72), trans (F, 3), report). directions: (F, len(DIRECTIONS), 3)
    observed segment directions (NaN where unknown), matched with weight _DIRECTION_WEIGHT."""
    frames = len(centres)
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
    prev = None
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
        else:
            x0 = prev.copy()
        anchor = x0[:72].copy()
        idx = np.flatnonzero(ok)
        dok = np.flatnonzero(np.isfinite(directions[f]).all(axis=1))
        d_joint, d_axis, d_obs = dir_joint[dok], dir_axis[dok], directions[f, dok]

        def directions_of(world: np.ndarray) -> np.ndarray:  # world (..., 24, 3, 3)
            return np.einsum("...kab,kb->...ka", world[..., d_joint, :, :], d_axis)

        def residual(x: np.ndarray) -> np.ndarray:
            world, joints = forward_kinematics(x[:72], rest)
            pos = (joints[idx] + x[72:] - target[idx]).ravel()
            dirs = (_DIRECTION_WEIGHT * (directions_of(world) - d_obs)).ravel()
            return np.concatenate([pos, dirs, pull * x[:72], _SMOOTH_PULL * (x[:72] - anchor)])

        def jacobian(x: np.ndarray) -> np.ndarray:
            h = 1e-6
            batch = np.tile(x[:72], (73, 1))
            batch[1:] += np.eye(72) * h
            world, joints = forward_kinematics(batch, rest)
            d = (joints[1:, idx] - joints[0, idx]) / h  # (72, k, 3)
            jac_pos = np.concatenate([d.reshape(72, -1).T, np.tile(np.eye(3), (len(idx), 1))], axis=1)
            dirs = directions_of(world)
            dd = _DIRECTION_WEIGHT * (dirs[1:] - dirs[0]) / h
            jac_dir = np.concatenate([dd.reshape(72, -1).T, np.zeros((dd.shape[1] * 3, 3))], axis=1)
            reg_rest = np.concatenate([np.diag(pull), np.zeros((72, 3))], axis=1)
            reg_prev = np.concatenate([np.eye(72) * _SMOOTH_PULL, np.zeros((72, 3))], axis=1)
            return np.concatenate([jac_pos, jac_dir, reg_rest, reg_prev], axis=0)

        result = least_squares(residual, x0, jac=jacobian, method="lm" if prev is not None else "trf",
                               xtol=1e-8, ftol=1e-8, max_nfev=200)
        x = result.x
        prev = x
        poses[f], trans[f] = x[:72], x[72:]
        residuals.append(np.linalg.norm(result.fun[:3 * len(idx)].reshape(-1, 3), axis=1).mean())
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
    rise = np.nanmean(centres[:, J["head"]] - centres[:, J["pelvis"]], axis=0)
    if not np.isfinite(rise).all():
        rise = np.nanmean(centres[:, J["neck"]] - centres[:, J["pelvis"]], axis=0)
    if not np.isfinite(rise).all():
        raise ValueError("cannot find the up axis: no frame shows both the pelvis and the head or neck")
    axis = int(np.argmax(np.abs(rise)))
    up = np.zeros(3)
    up[axis] = np.sign(rise[axis])
    rot, _ = Rotation.align_vectors([[0.0, 1.0, 0.0]], [up])
    if np.allclose(up, [0, -1, 0]):
        rot = Rotation.from_rotvec([np.pi, 0.0, 0.0])
    return rot.as_matrix()


def c3d_to_clip(path: Path | str, fps: float | None = None, max_gap: float = 0.1,
                report: FitReport | None = None) -> MotionClip:
    """Read a C3D file of Plug-in Gait markers into the canonical clip (see the module
    docstring). fps: output rate; the joint centres are resampled to it (linearly) before
    the fit. max_gap: longest gap (seconds) filled by interpolation. report: filled in."""
    path = Path(path)
    markers, rate = read_markers(path)
    needed = ("LASI", "RASI", "LKNE", "RKNE", "LANK", "RANK")
    missing = [n for n in needed if n not in markers]
    if missing:
        raise MotionFileError(f"C3D file {path}: no Plug-in Gait markers {', '.join(missing)} "
                              f"(labels present: {', '.join(sorted(markers)[:12])}{'...' if len(markers) > 12 else ''})")
    gap = max(int(round(max_gap * rate)), 0)
    markers = {k: fill_gaps(v, gap) for k, v in markers.items()}
    centres = joint_centres(markers)
    try:
        basis = lab_to_smpl(centres)
    except ValueError as exc:
        raise MotionFileError(f"C3D file {path}: {exc}") from None
    centres = np.concatenate([centres, segment_directions(markers)], axis=1) @ basis.T
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
    clip = MotionClip(poses=poses, trans=trans, mocap_framerate=out_rate, rest_joints=rest, source=f"c3d:{path.name}")
    if fps is not None and abs(float(fps) - out_rate) > 1e-9:
        clip = resample(clip, fps)
    return clip
