"""BVH motion capture -> the canonical clip (SMPL layout, Y up, facing +Z, metres).

Parser: our own, small and strict, not `bvhio`. bvhio 1.5.4 was tried here and rejected:
it loops forever on a truncated file (its line reader spins at end of file), silently
ignores extra values on a motion line, and builds a Python object per joint per frame
(slow on 120 Hz CMU files). This parser reads the motion block as one float array and checks
every line's value count, the frame count and finiteness, naming the file and line.

Retargeting follows the shared reference ("Retarget by aligning rest poses"):
1. BVH world rotations G_j(t) by chaining the local Euler rotations (scipy `Rotation`,
   the channel order as written, intrinsic: "Zrotation Xrotation Yrotation" is "ZXY");
   the BVH rest pose is the zero-rotation pose (its OFFSETs), whose world rotations are the
   identity, so the world delta D_j(t) = G_j(t) G_j(rest)^-1 = G_j(t);
2. a change of basis C from the file's world into SMPL's (Y up, facing +Z, left +X): up is
   the head-over-hips direction of the rest skeleton, left the hip line, each snapped to the
   nearest axis (mocap worlds are axis aligned); units are chosen from the rest skeleton's
   height among the usual ones (m, cm, mm, inch, CMU's 0.056444 m) unless given;
3. per SMPL joint a rest alignment Q_j turning the generic SMPL T-pose bone direction onto
   the source's rest bone direction (joints with several children: the spine direction
   exactly and the left-right line as well as possible);
4. SMPL world rotation W_j = C D_j C^-1 Q_j, local = W_parent^-1 W_j, as axis-angle;
5. the clip's rest skeleton is the source skeleton "un-posed" into the T-pose,
   T_c = T_j + Q_j^-1 (R_c - R_j) (R: source rest joints in SMPL's frame, metres), so forward
   kinematics of the clip reproduces the source's joint positions; it is put on the floor
   (balls of the feet at the generic skeleton's 2 cm) with the pelvis over the origin;
   trans = source root position (metres, SMPL frame; the file's floor stays at y = 0)
   minus the rest pelvis;
6. resampled to the requested frame rate by slerp (`clip.resample`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .clip import MotionClip, MotionFileError, resample
from .smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, children

# Candidate units (metres per file unit) and the expected extent of a rest skeleton's joints
# along its up axis (toes to head joint of a ~1.7 m person: about 1.5 m).
UNIT_CANDIDATES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.056444}
EXPECTED_JOINT_EXTENT = 1.5
FOOT_HEIGHT = float(GENERIC_REST_JOINTS[JOINT_INDEX["left_foot"], 1])


def _sides(smpl: str, left: str, right: str) -> dict[str, str]:
    return {left: f"left_{smpl}", right: f"right_{smpl}"}


# BVH joint name -> SMPL joint name.
CMU_MAP: dict[str, str] = {
    "Hips": "pelvis", "LowerBack": "spine1", "Spine": "spine2", "Spine1": "spine3",
    "Neck": "neck", "Head": "head",
    **_sides("hip", "LeftUpLeg", "RightUpLeg"), **_sides("knee", "LeftLeg", "RightLeg"),
    **_sides("ankle", "LeftFoot", "RightFoot"), **_sides("foot", "LeftToeBase", "RightToeBase"),
    **_sides("collar", "LeftShoulder", "RightShoulder"), **_sides("shoulder", "LeftArm", "RightArm"),
    **_sides("elbow", "LeftForeArm", "RightForeArm"), **_sides("wrist", "LeftHand", "RightHand"),
    **_sides("hand", "LeftFingerBase", "RightFingerBase"),
}
MIXAMO_MAP: dict[str, str] = {
    "Hips": "pelvis", "Spine": "spine1", "Spine1": "spine2", "Spine2": "spine3",
    "Neck": "neck", "Head": "head",
    **_sides("hip", "LeftUpLeg", "RightUpLeg"), **_sides("knee", "LeftLeg", "RightLeg"),
    **_sides("ankle", "LeftFoot", "RightFoot"), **_sides("foot", "LeftToeBase", "RightToeBase"),
    **_sides("collar", "LeftShoulder", "RightShoulder"), **_sides("shoulder", "LeftArm", "RightArm"),
    **_sides("elbow", "LeftForeArm", "RightForeArm"), **_sides("wrist", "LeftHand", "RightHand"),
    **_sides("hand", "LeftHandMiddle1", "RightHandMiddle1"),
}
_MIXAMO_PREFIX = re.compile(r"^mixamorig\d*[:_]")

# SMPL joints that must be mapped; the others (spine1..3 but one, neck, collars, hands,
# feet) are optional and follow their parent when missing.
REQUIRED_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                   "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                   "right_wrist")

_ROTATION_CHANNELS = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
_POSITION_CHANNELS = {"Xposition": 0, "Yposition": 1, "Zposition": 2}


@dataclass(frozen=True, eq=False)
class BvhData:
    """A parsed BVH file: joints in file order (parents before children)."""

    names: list[str]
    parents: np.ndarray  # (J,), -1 for the root
    offsets: np.ndarray  # (J, 3) file units
    channels: list[list[str]]
    end_sites: dict[int, np.ndarray]  # joint -> end site offset
    motion: np.ndarray  # (F, total channels)
    frame_time: float

    @property
    def num_frames(self) -> int:
        return len(self.motion)

    def rest_positions(self) -> np.ndarray:
        """Joint positions of the zero-rotation rest pose (file units, file frame)."""
        pos = np.zeros((len(self.names), 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos

    def world(self) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (F, J, 3, 3) and joint positions (F, J, 3) of every frame."""
        frames, count = self.num_frames, len(self.names)
        rot = np.empty((frames, count, 3, 3))
        pos = np.empty((frames, count, 3))
        column = 0
        for j, (parent, chans) in enumerate(zip(self.parents, self.channels)):
            values = self.motion[:, column:column + len(chans)]
            column += len(chans)
            order = "".join(_ROTATION_CHANNELS[c] for c in chans if c in _ROTATION_CHANNELS)
            if order:
                angles = values[:, [i for i, c in enumerate(chans) if c in _ROTATION_CHANNELS]]
                local = Rotation.from_euler(order, angles, degrees=True).as_matrix()  # upper case: intrinsic
            else:
                local = np.broadcast_to(np.eye(3), (frames, 3, 3))
            offset = np.broadcast_to(self.offsets[j], (frames, 3)).copy()
            if parent < 0:
                for i, c in enumerate(chans):  # root position channels are absolute
                    if c in _POSITION_CHANNELS:
                        offset[:, _POSITION_CHANNELS[c]] = values[:, i]
                rot[:, j] = local
                pos[:, j] = offset
            else:
                for i, c in enumerate(chans):  # position channels of other joints: the offset
                    if c in _POSITION_CHANNELS:
                        offset[:, _POSITION_CHANNELS[c]] = values[:, i]
                rot[:, j] = rot[:, parent] @ local
                pos[:, j] = pos[:, parent] + np.einsum("fab,fb->fa", rot[:, parent], offset)
        return rot, pos


# Parsing ------------------------------------------------------------------------------
def read_bvh(path: Path | str) -> BvhData:
    """Parse a BVH file strictly; raises MotionFileError naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise MotionFileError(f"BVH file {path} does not exist") from None
    except OSError as exc:
        raise MotionFileError(f"BVH file {path} cannot be read: {exc.strerror or exc}") from None
    lines = text.splitlines()

    def fail(message: str, line: int | None = None) -> MotionFileError:
        where = f" (line {line + 1})" if line is not None else ""
        return MotionFileError(f"BVH file {path}{where}: {message}")

    tokens: list[tuple[str, int]] = []  # hierarchy tokens with their line
    motion_line = None
    for i, line in enumerate(lines):
        if line.strip() == "MOTION":
            motion_line = i
            break
        tokens.extend((tok, i) for tok in line.split())
    if not tokens or tokens[0][0] != "HIERARCHY":
        raise fail("does not start with HIERARCHY (not a BVH file)")
    if motion_line is None:
        raise fail("no MOTION section (file truncated?)")

    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[list[str]] = []
    end_sites: dict[int, np.ndarray] = {}
    pos = 1

    def take() -> tuple[str, int]:
        nonlocal pos
        if pos >= len(tokens):
            raise fail("hierarchy ends early (file truncated?)", tokens[-1][1])
        tok = tokens[pos]
        pos += 1
        return tok

    def expect(word: str) -> int:
        tok, line = take()
        if tok != word:
            raise fail(f"expected {word!r}, found {tok!r}", line)
        return line

    def offset() -> np.ndarray:
        expect("OFFSET")
        values = [take() for _ in range(3)]
        try:
            vec = np.array([float(v) for v, _ in values])
        except ValueError:
            raise fail(f"OFFSET values must be numbers, got {[v for v, _ in values]}", values[0][1]) from None
        if not np.all(np.isfinite(vec)):
            raise fail("OFFSET holds NaN or inf", values[0][1])
        return vec

    def joint(parent: int) -> None:
        name, line = take()
        index = len(names)
        names.append(name)
        parents.append(parent)
        expect("{")
        offsets.append(offset())
        tok, line = take()
        if tok != "CHANNELS":
            raise fail(f"joint {name!r}: expected its CHANNELS line, found {tok!r}", line)
        count_tok, line = take()
        try:
            count = int(count_tok)
        except ValueError:
            raise fail(f"joint {name!r}: channel count {count_tok!r} is not a whole number", line) from None
        chans = []
        while pos < len(tokens) and tokens[pos][1] == line and len(chans) < count + 1:
            chans.append(take()[0])
        if len(chans) != count:
            raise fail(f"joint {name!r} declares {count} channels but lists {len(chans)}: {chans}", line)
        bad = [c for c in chans if c not in _ROTATION_CHANNELS and c not in _POSITION_CHANNELS]
        if bad:
            raise fail(f"joint {name!r}: unknown channel(s) {bad}", line)
        channels.append(chans)
        while True:
            tok, line = take()
            if tok == "JOINT":
                joint(index)
            elif tok == "End":
                expect("Site")
                expect("{")
                end_sites[index] = offset()
                expect("}")
            elif tok == "}":
                return
            else:
                raise fail(f"unexpected {tok!r} in joint {name!r}", line)

    tok, line = take()
    if tok != "ROOT":
        raise fail(f"expected ROOT, found {tok!r}", line)
    joint(-1)
    if pos != len(tokens):
        raise fail(f"unexpected {tokens[pos][0]!r} after the hierarchy", tokens[pos][1])

    # MOTION: "Frames: N", "Frame Time: dt", then N lines.
    header = [(i, lines[i].split()) for i in range(motion_line + 1, len(lines)) if lines[i].strip()]
    if len(header) < 2:
        raise fail("MOTION section has no 'Frames:' / 'Frame Time:' lines (file truncated?)", motion_line)
    (fl, frames_tok), (tl, time_tok) = header[0], header[1]
    try:
        if frames_tok[0] != "Frames:" or len(frames_tok) != 2:
            raise ValueError
        frame_count = int(frames_tok[1])
    except (ValueError, IndexError):
        raise fail(f"expected 'Frames: N', found {lines[fl].strip()!r}", fl) from None
    try:
        if time_tok[:2] != ["Frame", "Time:"] or len(time_tok) != 3:
            raise ValueError
        frame_time = float(time_tok[2])
    except (ValueError, IndexError):
        raise fail(f"expected 'Frame Time: seconds', found {lines[tl].strip()!r}", tl) from None
    if not np.isfinite(frame_time) or frame_time <= 0:
        raise fail(f"frame time must be a positive number of seconds, got {frame_time}", tl)
    if frame_count < 1:
        raise fail(f"holds {frame_count} frames; a clip needs at least one", fl)

    width = sum(len(c) for c in channels)
    rows = header[2:]
    if len(rows) < frame_count:
        raise fail(f"truncated: 'Frames: {frame_count}' but only {len(rows)} motion lines")
    if len(rows) > frame_count:
        raise fail(f"'Frames: {frame_count}' but {len(rows)} motion lines follow", rows[frame_count][0])
    motion = np.empty((frame_count, width))
    for f, (i, values) in enumerate(rows):
        if len(values) != width:
            raise fail(f"frame {f} has {len(values)} values; the hierarchy's channels need {width}", i)
        try:
            motion[f] = [float(v) for v in values]
        except ValueError:
            raise fail(f"frame {f} holds a value that is not a number", i) from None
        if not np.all(np.isfinite(motion[f])):
            raise fail(f"frame {f} holds NaN or inf", i)
    return BvhData(names=names, parents=np.array(parents, dtype=np.int64), offsets=np.array(offsets),
                   channels=channels, end_sites=end_sites, motion=motion, frame_time=frame_time)


# Name maps ----------------------------------------------------------------------------
def _canonical_name(name: str) -> str:
    return _MIXAMO_PREFIX.sub("", name)


def resolve_joint_map(bvh_names: list[str], joint_map: Mapping[str, str] | None = None,
                      where: str = "BVH file") -> dict[int, int]:
    """SMPL joint -> BVH joint index. A user map {bvh_joint: smpl_joint_name} wins; otherwise
    the CMU or Mixamo map (whichever matches more joints). Raises MotionFileError when the
    required joints are not all mapped."""
    index = {name: i for i, name in enumerate(bvh_names)}
    if joint_map is not None:
        out: dict[int, int] = {}
        for bvh_name, smpl_name in joint_map.items():
            if smpl_name not in JOINT_INDEX:
                raise MotionFileError(f"{where}: joint map names {smpl_name!r}, not an SMPL joint "
                                      f"(known: {', '.join(JOINT_NAMES)})")
            if bvh_name not in index:
                raise MotionFileError(f"{where}: joint map names BVH joint {bvh_name!r}, which the file lacks")
            out[JOINT_INDEX[smpl_name]] = index[bvh_name]
        label = "the joint map"
    else:
        stripped = {_canonical_name(n): i for i, n in enumerate(bvh_names)}
        best: dict[int, int] = {}
        label = "no known skeleton"
        for map_label, table in (("the CMU map", CMU_MAP), ("the Mixamo map", MIXAMO_MAP)):
            found = {JOINT_INDEX[s]: stripped[b] for b, s in table.items() if b in stripped}
            if len(found) > len(best):
                best, label = found, map_label
        out = best
    missing = [n for n in REQUIRED_JOINTS if JOINT_INDEX[n] not in out]
    if missing:
        hint = "" if joint_map is not None else " (unknown skeleton: pass a joint map {bvh_joint: smpl_joint})"
        raise MotionFileError(f"{where}: {label} leaves SMPL joints {', '.join(missing)} unmapped{hint}")
    if not any(JOINT_INDEX[n] in out for n in ("spine1", "spine2", "spine3")):
        raise MotionFileError(f"{where}: {label} maps no spine joint (spine1, spine2 or spine3)")
    return out


# Frame and units ----------------------------------------------------------------------
def _snap(v: np.ndarray) -> np.ndarray:
    axis = int(np.argmax(np.abs(v)))
    out = np.zeros(3)
    out[axis] = np.sign(v[axis])
    return out


def source_basis(rest: np.ndarray, smpl_to_src: dict[int, int]) -> np.ndarray:
    """C (3x3 rotation): file frame -> SMPL frame, from the rest skeleton."""
    pelvis = rest[smpl_to_src[JOINT_INDEX["pelvis"]]]
    up = _snap(rest[smpl_to_src[JOINT_INDEX["head"]]] - pelvis)
    hips = rest[smpl_to_src[JOINT_INDEX["left_hip"]]] - rest[smpl_to_src[JOINT_INDEX["right_hip"]]]
    hips = hips - up * (hips @ up)
    left = _snap(hips)
    if abs(left @ up) > 0.5:
        raise ValueError("the rest skeleton's hip line is parallel to its spine")
    forward = np.cross(left, up)
    return np.stack([left, up, forward])


def detect_scale(rest: np.ndarray, up_basis: np.ndarray) -> tuple[str, float]:
    """(unit name, metres per unit) whose rest joint extent along up is nearest ~1.5 m."""
    heights = rest @ up_basis
    extent = float(heights.max() - heights.min())
    if extent <= 0:
        raise ValueError("the rest skeleton has no height")
    name = min(UNIT_CANDIDATES, key=lambda k: abs(np.log(extent * UNIT_CANDIDATES[k] / EXPECTED_JOINT_EXTENT)))
    return name, UNIT_CANDIDATES[name]


# Retargeting --------------------------------------------------------------------------
_LEFT_RIGHT = {
    JOINT_INDEX["pelvis"]: (JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]),
    JOINT_INDEX["spine3"]: (JOINT_INDEX["left_shoulder"], JOINT_INDEX["right_shoulder"]),
}
_PRIMARY_CHILD = {JOINT_INDEX["pelvis"]: JOINT_INDEX["spine1"], JOINT_INDEX["spine3"]: JOINT_INDEX["neck"]}
_MIN_BONE = 1e-3  # metres


def _first_child(j: int, kids: list[list[int]]) -> int | None:
    if not kids[j]:
        return None
    return _PRIMARY_CHILD.get(j, kids[j][0])


@dataclass(frozen=True, eq=False)
class RestAlignment:
    """Per-SMPL-joint rest alignment and the T-posed rest skeleton of a source."""

    q: np.ndarray  # (24, 3, 3)
    t_rest: np.ndarray  # (24, 3) T-posed source skeleton (metres, SMPL frame, not yet floored)
    proxy: np.ndarray  # (24,) source joint whose world delta drives each SMPL joint


def align_rest(source_rest: np.ndarray, smpl_to_src: Mapping[int, int]) -> RestAlignment:
    """source_rest: (24, 3) SMPL-frame metres positions for the mapped SMPL joints (others are
    ignored). smpl_to_src: SMPL joint -> source joint index."""
    generic = GENERIC_REST_JOINTS
    kids = children(PARENTS)
    mapped_set = set(smpl_to_src)
    # Fill positions of unmapped SMPL joints: between mapped ancestor and mapped descendant
    # (generic proportions), or extrapolated from the parent for leaves (done after Q).
    r = np.array(source_rest, dtype=np.float64)
    proxy = np.full(NUM_JOINTS, -1, dtype=np.int64)
    for j in range(NUM_JOINTS):
        if j in mapped_set:
            proxy[j] = smpl_to_src[j]
        else:
            proxy[j] = proxy[PARENTS[j]]

    def descendant(j: int) -> int | None:
        c = _first_child(j, kids)
        while c is not None and c not in mapped_set:
            c = _first_child(c, kids)
        return c

    for j in range(NUM_JOINTS):
        if j in mapped_set or PARENTS[j] < 0:
            continue
        d = descendant(j)
        if d is not None:
            a = int(PARENTS[j])
            ga, gj, gd = generic[a], generic[j], generic[d]
            frac = np.linalg.norm(gj - ga) / max(np.linalg.norm(gj - ga) + np.linalg.norm(gd - gj), 1e-9)
            r[j] = r[a] + frac * (r[d] - r[a])

    def src_dir(j: int, c: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(source direction, generic direction) from j towards c, stepping past zero-length bones."""
        while c is not None:
            s = r[c] - r[j]
            if np.linalg.norm(s) > _MIN_BONE and (c in mapped_set or descendant(c) is not None or c in filled):
                g = generic[c] - generic[j]
                return s / np.linalg.norm(s), g / np.linalg.norm(g)
            c = _first_child(c, kids)
        return None

    filled: set[int] = set(j for j in range(NUM_JOINTS) if j in mapped_set or descendant(j) is not None)
    q = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    scale = _leg_length(r) / _leg_length(generic)
    for j in range(NUM_JOINTS):
        if j not in filled:  # unmapped leaf: extrapolate from the parent
            p = int(PARENTS[j])
            r[j] = r[p] + scale * (q[p] @ (generic[j] - generic[p]))
            filled.add(j)
            q[j] = q[p]
            continue
        c = _first_child(j, kids)
        primary = src_dir(j, c) if c is not None else None
        if primary is None:
            q[j] = q[PARENTS[j]] if PARENTS[j] >= 0 else np.eye(3)
            continue
        if j in _LEFT_RIGHT:
            left, right = _LEFT_RIGHT[j]
            s_lr, g_lr = r[left] - r[right], generic[left] - generic[right]
            rot, _ = Rotation.align_vectors([primary[0], s_lr / np.linalg.norm(s_lr)],
                                            [primary[1], g_lr / np.linalg.norm(g_lr)], weights=[np.inf, 1.0])
        else:
            rot, _ = Rotation.align_vectors(primary[0][None], primary[1][None])
        q[j] = rot.as_matrix()

    t_rest = np.empty((NUM_JOINTS, 3))
    t_rest[0] = r[0]
    for j in range(1, NUM_JOINTS):
        p = int(PARENTS[j])
        t_rest[j] = t_rest[p] + q[p].T @ (r[j] - r[p])
    return RestAlignment(q=q, t_rest=t_rest, proxy=proxy)


def _leg_length(joints: np.ndarray) -> float:
    chain = [JOINT_INDEX[n] for n in ("left_hip", "left_knee", "left_ankle")]
    return float(np.linalg.norm(np.diff(joints[chain], axis=0), axis=1).sum())


def place_on_floor(t_rest: np.ndarray) -> np.ndarray:
    """Shift a rest skeleton so its pelvis is over the origin and the balls of its feet at
    the generic skeleton's height (the floor is y = 0)."""
    feet = [JOINT_INDEX["left_foot"], JOINT_INDEX["right_foot"]]
    shift = np.array([-t_rest[0, 0], FOOT_HEIGHT - t_rest[feet, 1].min(), -t_rest[0, 2]])
    return t_rest + shift


def world_to_clip(world_rot: np.ndarray, root_pos: np.ndarray, align: RestAlignment, basis: np.ndarray,
                  fps: float, source: str) -> MotionClip:
    """Source world rotation deltas (F, S, 3, 3) in the file frame and root positions (F, 3)
    already in SMPL's frame and metres -> clip."""
    deltas = world_rot[:, align.proxy]  # (F, 24, 3, 3)
    w = np.einsum("ab,fjbc,dc,jde->fjae", basis, deltas, basis, align.q)
    local = np.empty_like(w)
    local[:, 0] = w[:, 0]
    local[:, 1:] = np.einsum("fjba,fjbc->fjac", w[:, PARENTS[1:]], w[:, 1:])
    poses = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(len(w), 3 * NUM_JOINTS)
    rest = place_on_floor(align.t_rest)
    trans = root_pos - rest[0]
    return MotionClip(poses=poses, trans=trans, mocap_framerate=fps, rest_joints=rest, source=source)


def bvh_to_clip(path: Path | str, fps: float | None = None, joint_map: Mapping[str, str] | None = None,
                scale: float | None = None) -> MotionClip:
    """Read a BVH file into the canonical clip (see the module docstring).

    fps: resample to this rate (default: the file's). joint_map: {bvh_joint: smpl_joint}
    (default: CMU or Mixamo names). scale: metres per file unit (default: detected).
    """
    path = Path(path)
    data = read_bvh(path)
    smpl_to_src = resolve_joint_map(data.names, joint_map, where=f"BVH file {path}")
    rest_file = data.rest_positions()
    try:
        basis = source_basis(rest_file, smpl_to_src)
        unit_scale = detect_scale(rest_file[list(smpl_to_src.values())], basis[1])[1] if scale is None else float(scale)
    except ValueError as exc:
        raise MotionFileError(f"BVH file {path}: {exc}") from None
    source_rest = np.zeros((NUM_JOINTS, 3))
    for j, s in smpl_to_src.items():
        source_rest[j] = unit_scale * (basis @ rest_file[s])
    try:
        align = align_rest(source_rest, smpl_to_src)
    except (ValueError, ZeroDivisionError) as exc:
        raise MotionFileError(f"BVH file {path}: cannot align its rest pose: {exc}") from None
    world_rot, world_pos = data.world()
    root_pos = unit_scale * world_pos[:, smpl_to_src[0]] @ basis.T
    rate = 1.0 / data.frame_time
    if abs(rate - round(rate)) < 1e-4 * rate:  # "Frame Time: 0.0083333" is 120 Hz
        rate = float(round(rate))
    clip = world_to_clip(world_rot, root_pos, align, basis, rate, f"bvh:{path.name}")
    if fps is not None and abs(float(fps) - clip.mocap_framerate) > 1e-9:
        clip = resample(clip, fps)
    return clip
