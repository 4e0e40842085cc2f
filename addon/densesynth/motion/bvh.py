"""BVH motion capture -> the canonical clip (SMPL layout, Y up, facing +Z, metres).

Parser: our own, small and strict, not `bvhio`. bvhio 1.5.4 was tried here and rejected:
it loops forever on a truncated file (its line reader spins at end of file), silently
ignores extra values on a motion line, and builds a Python object per joint per frame
(slow on 120 Hz CMU files). This parser reads the motion block as one float array and checks
every line's value count, the frame count and finiteness, naming the file and line. It is
iterative (a 100,000-deep joint chain is an error, not a RecursionError), reads UTF-8 only,
bounds joint count and depth, every value (MAX_VALUE), the frame time and --fps, and refuses a
file that ends without a line break (cut in the middle of its last number).

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
from dataclasses import dataclass, field
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

# Limits of what the parser takes as a body's motion capture (hostile or broken files fail
# in one line instead of a RecursionError, an overflow or a multi-gigabyte allocation).
MAX_JOINTS = 10_000  # MetaHuman-style rigs with faces have about 1,100 bones
MAX_DEPTH = 1_000  # joints nested inside each other; bodies are about 30 deep
MAX_VALUE = 1e7  # |OFFSET| and |motion value|, in file units or degrees (10 km in mm)
MIN_FRAME_TIME, MAX_FRAME_TIME = 1e-4, 60.0  # seconds: 10 kHz to one frame a minute
MAX_FPS = 1000.0  # --fps: the rate a clip is resampled to


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
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MotionFileError(f"BVH file {path} does not exist") from None
    except OSError as exc:
        raise MotionFileError(f"BVH file {path} cannot be read: {exc.strerror or exc}") from None
    try:  # strictly UTF-8 (a leading byte-order mark is allowed): no silently replaced joint names
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise MotionFileError(f"BVH file {path} (line {line}): byte 0x{raw[exc.start]:02x} is not UTF-8 text; "
                              "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    del raw
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
        if not np.all(np.abs(vec) <= MAX_VALUE):
            raise fail(f"OFFSET {' '.join(v for v, _ in values)} is beyond ±{MAX_VALUE:g} file units "
                       "(not a body's skeleton)", values[0][1])
        return vec

    def begin_joint(parent: int, depth: int) -> int:
        """A joint's name, '{', OFFSET and CHANNELS; returns its index."""
        name, line = take()
        while pos < len(tokens) and tokens[pos][1] == line and tokens[pos][0] != "{":
            name += " " + take()[0]  # names with spaces ("Bip01 L Thigh") run to the end of the line
        if len(names) >= MAX_JOINTS:
            raise fail(f"more than {MAX_JOINTS} joints (at {name!r}): not a body's skeleton", line)
        if depth > MAX_DEPTH:
            raise fail(f"joint {name!r} is nested {depth} deep, more than {MAX_DEPTH}: not a body's skeleton", line)
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
        twice = sorted({c for c in chans if chans.count(c) > 1})
        if twice:
            raise fail(f"joint {name!r} lists channel(s) {twice} more than once", line)
        channels.append(chans)
        return index

    tok, line = take()
    if tok != "ROOT":
        raise fail(f"expected ROOT, found {tok!r}", line)
    open_joints = [begin_joint(-1, 1)]  # iterative, not recursive: nesting depth costs no stack
    while open_joints:
        tok, line = take()
        if tok == "JOINT":
            open_joints.append(begin_joint(open_joints[-1], len(open_joints) + 1))
        elif tok == "End":
            expect("Site")
            expect("{")
            end_sites[open_joints[-1]] = offset()
            expect("}")
        elif tok == "}":
            open_joints.pop()
        else:
            raise fail(f"unexpected {tok!r} in joint {names[open_joints[-1]]!r}", line)
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
    if not MIN_FRAME_TIME <= frame_time <= MAX_FRAME_TIME:
        raise fail(f"frame time {frame_time:g} s is outside {MIN_FRAME_TIME:g} to {MAX_FRAME_TIME:g} s "
                   f"({1 / MAX_FRAME_TIME:g} to {1 / MIN_FRAME_TIME:g} frames a second)", tl)
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
        if not np.all(np.abs(motion[f]) <= MAX_VALUE):
            big = values[int(np.argmax(np.abs(motion[f])))]
            raise fail(f"frame {f} holds {big}, beyond ±{MAX_VALUE:g} (file units or degrees)", i)
    if not text.endswith(("\n", "\r")):  # every writer ends its frame lines; a cut file does not
        raise fail("ends without a line break after the last frame: truncated, perhaps in the middle of a "
                   "number (if the file is complete, add a line break at its end)", rows[-1][0])
    return BvhData(names=names, parents=np.array(parents, dtype=np.int64), offsets=np.array(offsets),
                   channels=channels, end_sites=end_sites, motion=motion, frame_time=frame_time)


# Name maps ----------------------------------------------------------------------------
@dataclass
class ConversionReport:
    """What a conversion did with one file: the mapping used, what was dropped and why."""

    source: str = ""
    family: str = ""
    mapping: dict[str, str] = field(default_factory=dict)  # SMPL joint -> source joint
    dropped: list[str] = field(default_factory=list)  # "spine1 (LowerBack): why"
    unused: list[str] = field(default_factory=list)  # source joints no SMPL joint uses
    frame: str = ""  # up / forward / units and how they were found
    notes: list[str] = field(default_factory=list)  # calibration frames, ground, fit ...

    def lines(self) -> list[str]:
        out = [f"{self.source}: skeleton {self.family}"] if self.family else [f"{self.source}:"]
        if self.mapping:
            out.append("  mapping: " + ", ".join(f"{k} <- {v}" for k, v in self.mapping.items()))
        out += [f"  dropped: {d}" for d in self.dropped]
        if self.unused:
            shown = ", ".join(self.unused[:12]) + (f" (+{len(self.unused) - 12} more)" if len(self.unused) > 12 else "")
            out.append(f"  not used (follow their parents): {shown}")
        if self.frame:
            out.append(f"  frame: {self.frame}")
        out += [f"  {n}" for n in self.notes]
        return out


def _path_to_root(parents: np.ndarray, j: int) -> list[int]:
    out = [j]
    while parents[out[-1]] >= 0:
        out.append(int(parents[out[-1]]))
    return out


def _common_ancestor(parents: np.ndarray, joints: list[int]) -> int:
    paths = [_path_to_root(parents, j) for j in joints]
    shared = set(paths[0]).intersection(*map(set, paths[1:]))
    return next(a for a in paths[0] if a in shared)


def _infer_spine(names: list[str], parents: np.ndarray, found: dict[str, int]) -> dict[str, int]:
    """spine1..3 from the structure: the chain from the pelvis up to the joint carrying the
    neck and both collars (or shoulders)."""
    top = found.get("neck", found.get("head"))
    arms = [found.get(f"{s}_collar", found.get(f"{s}_shoulder")) for s in ("left", "right")]
    if top is None or None in arms or "pelvis" not in found:
        return {}
    chest = _common_ancestor(parents, [top, *arms])
    if chest == found.get("neck") and parents[chest] >= 0:  # Biped: clavicles hang from the neck
        chest = int(parents[chest])
    path = _path_to_root(parents, chest)
    if found["pelvis"] not in path or chest == found["pelvis"]:
        return {}
    chain = path[:path.index(found["pelvis"])][::-1]  # pelvis child ... chest
    out = {"spine3": chain[-1]}
    if len(chain) >= 2:
        out["spine1"] = chain[0]
    if len(chain) >= 3:
        out["spine2"] = chain[len(chain) // 2]
    return out


def resolve_joint_map(bvh_names: list[str], joint_map: Mapping[str, str] | None = None,
                      where: str = "BVH file", parents: np.ndarray | None = None,
                      report: ConversionReport | None = None) -> dict[int, int]:
    """SMPL joint -> BVH joint index. A user map {bvh_joint: smpl_joint} wins; otherwise the
    built-in family (see `name_maps`) that names the most joints, with the spine found from
    the structure. Raises MotionFileError (one line, with a suggested --map) when required
    joints stay unmapped."""
    from .name_maps import detect_family, suggest_map

    index = {name: i for i, name in enumerate(bvh_names)}
    if joint_map is not None:
        found: dict[str, int] = {}
        for bvh_name, smpl_name in joint_map.items():
            if smpl_name not in JOINT_INDEX:
                raise MotionFileError(f"{where}: joint map names {smpl_name!r}, not an SMPL joint "
                                      f"(known: {', '.join(JOINT_NAMES)})")
            if bvh_name not in index:
                raise MotionFileError(f"{where}: joint map names BVH joint {bvh_name!r}, which the file lacks "
                                      f"(joints: {', '.join(bvh_names[:30])})")
            found[smpl_name] = index[bvh_name]
        label = "the --map file"
    else:
        label, by_name = detect_family(bvh_names)
        found = {k: index[v] for k, v in by_name.items()}
    if parents is not None and not any(s in found for s in ("spine1", "spine2", "spine3")):
        found.update(_infer_spine(bvh_names, parents, found))
    missing = [n for n in REQUIRED_JOINTS if n not in found]
    if not missing and not any(s in found for s in ("spine1", "spine2", "spine3")):
        missing = ["spine1/spine2/spine3 (no joint between the pelvis and the neck)"]
    if missing:
        taken = [bvh_names[i] for i in found.values()]
        guess = suggest_map(bvh_names, [m for m in missing if m in JOINT_INDEX], taken)
        known = {bvh_names[i]: k for k, i in found.items()}
        entries = {**known, **guess}
        suggestion = ", ".join(f"{k}: {v}" for k, v in entries.items() if v in missing) or ", ".join(
            f"<BVH joint>: {m}" for m in missing[:3] if m in JOINT_INDEX)
        raise MotionFileError(
            f"{where}: {'skeleton family ' + label if joint_map is None else label} leaves SMPL joints "
            f"{', '.join(missing)} unmapped; pass --map map.yaml, a joint map (YAML: BVH joint: SMPL joint, every "
            f"joint of the skeleton; see README 'Motion capture'); suggested entries for the missing joints: "
            f"{{{suggestion}}}")
    if report is not None:
        report.family = label
    return {JOINT_INDEX[k]: v for k, v in sorted(found.items(), key=lambda kv: JOINT_INDEX[kv[0]])}


# Frame and units ----------------------------------------------------------------------
AXES = {"+x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0), "+y": (0.0, 1.0, 0.0), "-y": (0.0, -1.0, 0.0),
        "+z": (0.0, 0.0, 1.0), "-z": (0.0, 0.0, -1.0)}


def parse_axis(text: str | None, what: str) -> np.ndarray | None:
    if text is None:
        return None
    key = str(text).strip().lower()
    key = key if key[:1] in "+-" else "+" + key
    if key not in AXES:
        raise MotionFileError(f"--{what} must be one of x, y, z, -x, -y, -z (got {text!r})")
    return np.array(AXES[key])


def _snap(v: np.ndarray) -> np.ndarray:
    axis = int(np.argmax(np.abs(v)))
    out = np.zeros(3)
    out[axis] = np.sign(v[axis]) or 1.0
    return out


def _axis_name(v: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(v)))
    return ("+" if v[axis] > 0 else "-") + "xyz"[axis]


def source_basis(rest: np.ndarray, smpl_to_src: dict[int, int], posed: np.ndarray | None = None,
                 up: np.ndarray | None = None, forward: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(C, how): C (3x3 rotation, rows left, up, forward) takes the file frame into SMPL's.

    Up, unless given: the head-over-pelvis direction averaged over the frames (people stand
    in most of a capture; a zero pose that lies down does not decide), or over the rest pose
    when the frames do not agree on one. Forward, unless given: the facing of the rest pose
    (hip line x up); when the zero pose lies with its hip line along up, the front that pose
    has (its hip line x its own head-over-pelvis direction); else the facing of the first frame
    (which then always faces +Z: its heading is lost, give --forward). Each is snapped to the
    nearest axis."""
    pelvis, head = smpl_to_src[JOINT_INDEX["pelvis"]], smpl_to_src[JOINT_INDEX["head"]]
    lhip, rhip = smpl_to_src[JOINT_INDEX["left_hip"]], smpl_to_src[JOINT_INDEX["right_hip"]]
    how = []
    if up is None:
        rest_up = _snap(rest[head] - rest[pelvis])
        up, source = rest_up, "rest pose"
        if posed is not None and len(posed):
            rise = posed[:, head] - posed[:, pelvis]
            rise = rise / np.maximum(np.linalg.norm(rise, axis=1, keepdims=True), 1e-12)
            mean = rise.mean(axis=0)
            if np.linalg.norm(mean) > 0.5:
                up, source = _snap(mean), "head over pelvis in the frames"
                if not np.allclose(up, rest_up):
                    source += f"; the zero pose stands along {_axis_name(rest_up)}, not used"
        how.append(f"up {_axis_name(up)} ({source})")
    else:
        how.append(f"up {_axis_name(up)} (--up)")
    if forward is None:
        left = None
        rest_left = rest[lhip] - rest[rhip]
        # A zero pose lying with its hip line vertical (a rig along +X) still faces somewhere:
        # its own front, hip line x its own up, kept as the file's forward so headings survive.
        rest_facing = np.cross(rest_left, rest[head] - rest[pelvis])
        first_left = posed[0, lhip] - posed[0, rhip] if posed is not None and len(posed) else None
        for pose_left, size, what in ((rest_left, np.linalg.norm(rest_left), "rest pose"),
                                      (np.cross(up, rest_facing), np.linalg.norm(rest_facing), "rest pose, which lies down"),
                                      (first_left, None if first_left is None else np.linalg.norm(first_left), "first frame")):
            if pose_left is None:
                continue
            flat = pose_left - up * (pose_left @ up)
            if np.linalg.norm(flat) > 0.3 * size and np.linalg.norm(flat) > 1e-9:
                left = _snap(flat)
                how.append(f"forward {_axis_name(np.cross(left, up))} (facing of the {what})")
                break
        if left is None:
            raise ValueError("cannot tell left from right: the hip line is parallel to the up axis "
                             "in the rest pose and the first frame (give --forward)")
    else:
        if abs(forward @ up) > 0.5:
            raise ValueError(f"--forward {_axis_name(forward)} is parallel to up {_axis_name(up)}")
        left = np.cross(up, forward)
        how.append(f"forward {_axis_name(forward)} (--forward)")
    forward_axis = np.cross(left, up)
    return np.stack([left, up, forward_axis]), ", ".join(how)


def _size(points: Mapping[str, np.ndarray]) -> float:
    """Orientation-free size of a skeleton: pelvis->head plus the left (or right) leg."""
    total = np.linalg.norm(points["head"] - points["pelvis"])
    legs = []
    for side in ("left", "right"):
        legs.append(np.linalg.norm(points[f"{side}_knee"] - points[f"{side}_hip"])
                    + np.linalg.norm(points[f"{side}_ankle"] - points[f"{side}_knee"]))
    return float(total + max(legs))


GENERIC_SIZE = _size({n: GENERIC_REST_JOINTS[i] for i, n in enumerate(JOINT_NAMES)})


def detect_scale(rest: np.ndarray, smpl_to_src: Mapping[int, int]) -> tuple[str, float]:
    """(unit name, metres per unit) that makes the skeleton's size nearest a ~1.7 m person's
    (from bone lengths, so it does not depend on how the rest pose is oriented)."""
    size = _size({JOINT_NAMES[j]: rest[s] for j, s in smpl_to_src.items()})
    if size <= 0:
        raise ValueError("the rest skeleton has no size (all joints at one point)")
    name = min(UNIT_CANDIDATES, key=lambda k: abs(np.log(size * UNIT_CANDIDATES[k] / GENERIC_SIZE)))
    return name, UNIT_CANDIDATES[name]


# Retargeting --------------------------------------------------------------------------
_PRIMARY_CHILD = {JOINT_INDEX["pelvis"]: JOINT_INDEX["spine1"], JOINT_INDEX["spine3"]: JOINT_INDEX["neck"]}
_LEFT_RIGHT = {  # frame joints: their left-right line
    JOINT_INDEX["pelvis"]: (JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]),
    JOINT_INDEX["spine3"]: (JOINT_INDEX["left_collar"], JOINT_INDEX["right_collar"]),
}
MIN_BONE = 0.01  # metres: a mapped joint nearer than this to its mapped SMPL parent is merged


def _first_child(j: int, kids: list[list[int]]) -> int | None:
    if not kids[j]:
        return None
    return _PRIMARY_CHILD.get(j, kids[j][0])


def _frames(p: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3) with columns p^, (s - p^ p^.s)^, their cross product."""
    e1 = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    s = s - e1 * np.sum(s * e1, axis=-1, keepdims=True)
    e2 = s / np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), 1e-12)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations (..., 3, 3) turning directions a onto b (any length, broadcast)."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    a, b = np.broadcast_arrays(a, b)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    denom = np.where(c > -1 + 1e-9, 1.0 + c, 1.0)[..., None, None]
    out = np.eye(3) + k + k @ k / denom
    flip = c <= -1 + 1e-9
    if np.any(flip):  # opposite directions: half a turn about any perpendicular axis
        af = a[flip]
        axis = np.cross(af, np.where(np.abs(af[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]))
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        out[flip] = 2.0 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return out


@dataclass(frozen=True, eq=False)
class RestAlignment:
    """How a source skeleton stands in for SMPL's: per-SMPL-joint rest alignment, the
    T-posed rest skeleton, and where each SMPL joint's position and twist come from."""

    q: np.ndarray  # (24, 3, 3) T-pose frame -> source rest frame
    t_rest: np.ndarray  # (24, 3) T-posed source skeleton (metres, SMPL frame, not yet floored)
    anchor: dict[int, int]  # SMPL joint -> source joint whose position it takes (mapped joints)
    between: dict[int, tuple[int, int, float]]  # SMPL joint -> (ancestor, descendant, fraction): interpolated
    follow: tuple[int, ...]  # SMPL joints with no source below them: rotate with their driver / parent
    driver: dict[int, int]  # SMPL joint -> source joint whose rotation twists its bone


def align_rest(rest_src: np.ndarray, smpl_to_src: Mapping[int, int], src_parents: np.ndarray,
               src_offsets: np.ndarray) -> RestAlignment:
    """rest_src: (S, 3) source rest joints (SMPL frame, metres); smpl_to_src after merging."""
    generic = GENERIC_REST_JOINTS
    kids = children(PARENTS)
    mapped = dict(smpl_to_src)

    def descendant(j: int) -> int | None:
        c = _first_child(j, kids)
        while c is not None and c not in mapped:
            c = _first_child(c, kids)
        return c

    def ancestor(j: int) -> int:
        a = int(PARENTS[j])
        while a not in mapped:
            a = int(PARENTS[a])
        return a

    r = np.zeros((NUM_JOINTS, 3))
    between: dict[int, tuple[int, int, float]] = {}
    follow: list[int] = []
    for j in range(NUM_JOINTS):
        if j in mapped:
            r[j] = rest_src[mapped[j]]
            continue
        d = descendant(j)
        if d is None:
            follow.append(j)
            continue
        a = ancestor(j)
        path = [j]
        while PARENTS[path[-1]] != a:
            path.append(int(PARENTS[path[-1]]))
        below = np.linalg.norm(generic[j] - generic[a])
        above = np.linalg.norm(generic[d] - generic[j])
        frac = below / max(below + above, 1e-9)
        between[j] = (a, d, frac)
        r[j] = rest_src[mapped[a]] + frac * (rest_src[mapped[d]] - rest_src[mapped[a]])
    placed = set(mapped) | set(between)

    # Rest alignment: per placed joint with a placed primary child.
    q = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    for j in range(NUM_JOINTS):
        c = _first_child(j, kids)
        if j in placed and c is not None and c in placed:
            if j in _LEFT_RIGHT and all(x in placed for x in _LEFT_RIGHT[j]):
                left, right = _LEFT_RIGHT[j]
                src = _frames(r[c] - r[j], r[left] - r[right])
                gen = _frames(generic[c] - generic[j], generic[left] - generic[right])
                q[j] = src @ gen.T
            else:
                q[j] = _min_rotation(generic[c] - generic[j], r[c] - r[j])
        elif j > 0:
            q[j] = q[PARENTS[j]]
    scale = _leg_length(r) / _leg_length(generic)
    t_rest = np.empty((NUM_JOINTS, 3))
    t_rest[0] = r[0]
    for j in range(1, NUM_JOINTS):
        p = int(PARENTS[j])
        if j in placed:
            t_rest[j] = t_rest[p] + q[p].T @ (r[j] - r[p])
        else:
            t_rest[j] = t_rest[p] + scale * (generic[j] - generic[p])

    # Drivers: the source joint whose rotation carries the bone from j towards its child.
    driver: dict[int, int] = {}
    for j in range(NUM_JOINTS):
        low = j if j in mapped else (ancestor(j) if j > 0 else None)
        if low is None:
            continue
        d = descendant(j) if j in placed else None
        if d is None:
            driver[j] = mapped[low]
            continue
        top, s = mapped[low], mapped[d]
        found = None
        while s >= 0 and s != top:
            if np.linalg.norm(src_offsets[s]) > 1e-9:
                found = int(src_parents[s])
                break
            s = int(src_parents[s])
        driver[j] = found if found is not None and found >= 0 else top
    return RestAlignment(q=q, t_rest=t_rest, anchor=mapped, between=between, follow=tuple(follow), driver=driver)


def _leg_length(joints: np.ndarray) -> float:
    chain = [JOINT_INDEX[n] for n in ("left_hip", "left_knee", "left_ankle")]
    return float(np.linalg.norm(np.diff(joints[chain], axis=0), axis=1).sum())


def place_on_floor(t_rest: np.ndarray) -> np.ndarray:
    """Shift a rest skeleton so its pelvis is over the origin and the balls of its feet at
    the generic skeleton's height (the floor is y = 0)."""
    feet = [JOINT_INDEX["left_foot"], JOINT_INDEX["right_foot"]]
    shift = np.array([-t_rest[0, 0], FOOT_HEIGHT - t_rest[feet, 1].min(), -t_rest[0, 2]])
    return t_rest + shift


def retarget_frames(deltas: np.ndarray, positions: np.ndarray, align: RestAlignment,
                    fps: float, source: str) -> MotionClip:
    """deltas: (F, S, 3, 3) source world rotation deltas (rest -> posed) already in SMPL's
    frame (C D C^-1); positions: (F, S, 3) source joints (SMPL frame, metres) -> clip.

    Per SMPL joint, parent first: its position follows from its parent's rotation; its own
    rotation is the driver's delta times the rest alignment, turned by the smallest rotation
    that points its bone at the source's child joint (frame joints: the frame of the spine
    direction and the left-right line). Bones whose chain in the source is rigid therefore
    reproduce the source's joint positions; twist comes from the source's rotations."""
    frames = len(positions)
    kids = children(PARENTS)
    t = align.t_rest
    x = np.zeros((frames, NUM_JOINTS, 3))  # targets: source positions of placed joints
    for j, s in align.anchor.items():
        x[:, j] = positions[:, s]
    for j, (a, d, frac) in sorted(align.between.items()):
        x[:, j] = x[:, a] + frac * (x[:, d] - x[:, a])
    placed = set(align.anchor) | set(align.between)
    w = np.empty((frames, NUM_JOINTS, 3, 3))
    y = np.empty((frames, NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        p = int(PARENTS[j])
        y[:, j] = x[:, 0] if p < 0 else y[:, p] + w[:, p] @ (t[j] - t[p])
        c = _first_child(j, kids)
        if j in placed and c is not None and c in placed:
            if j in _LEFT_RIGHT and all(k in placed for k in _LEFT_RIGHT[j]):
                left, right = _LEFT_RIGHT[j]
                # The spine direction turns with the joint's own source rotation (so the hips stay
                # rigid with the source's pelvis even when a zero-length LowerBack bends).
                primary = (deltas[:, align.anchor[j]] @ align.q[j] @ (t[c] - t[j]) if j in align.anchor
                           else x[:, c] - y[:, j])
                posed = _frames(primary, x[:, left] - x[:, right])
                rest = _frames(t[c] - t[j], t[left] - t[right])
                w[:, j] = posed @ rest.T
            else:
                base = deltas[:, align.driver[j]] @ align.q[j]
                w[:, j] = _min_rotation(base @ (t[c] - t[j]), x[:, c] - y[:, j]) @ base
        elif j in align.driver and (j in align.anchor):
            w[:, j] = deltas[:, align.driver[j]] @ align.q[j]
        else:
            w[:, j] = w[:, p] if p >= 0 else np.eye(3)
    local = np.empty_like(w)
    local[:, 0] = w[:, 0]
    local[:, 1:] = np.einsum("fjba,fjbc->fjac", w[:, PARENTS[1:]], w[:, 1:])
    poses = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(frames, 3 * NUM_JOINTS)
    rest = place_on_floor(t)
    trans = x[:, 0] - rest[0]
    return MotionClip(poses=poses, trans=trans, mocap_framerate=fps, rest_joints=rest, source=source)


def merge_coincident(rest: np.ndarray, smpl_to_src: dict[int, int], names: list[str],
                     report: ConversionReport | None) -> dict[int, int]:
    """Drop mapped joints that sit where their mapped SMPL parent sits (zero offsets: CMU's
    LowerBack, Neck, collars and finger bases); they are placed between their neighbours.
    rest: (S, 3) metres."""
    out = dict(smpl_to_src)
    for j in range(1, NUM_JOINTS):
        if j not in out:
            continue
        a = int(PARENTS[j])
        while a not in out:
            a = int(PARENTS[a])
        gap = float(np.linalg.norm(rest[out[j]] - rest[out[a]]))
        if gap < MIN_BONE:
            if JOINT_NAMES[j] in REQUIRED_JOINTS:
                raise ValueError(f"SMPL joint {JOINT_NAMES[j]} ({names[out[j]]}) is at the same place as "
                                 f"{JOINT_NAMES[a]} ({names[out[a]]}) in the rest pose ({gap * 1000:.1f} mm apart)")
            if report is not None:
                report.dropped.append(f"{JOINT_NAMES[j]} ({names[out[j]]}): {gap * 1000:.0f} mm from "
                                      f"{JOINT_NAMES[a]} ({names[out[a]]}) (zero-length bone); placed between "
                                      "its neighbours")
            del out[j]
    return out


def bvh_to_clip(path: Path | str, fps: float | None = None, joint_map: Mapping[str, str] | None = None,
                scale: float | None = None, *, up: str | None = None, forward: str | None = None,
                rest_frame: int | None = None, report: ConversionReport | None = None) -> MotionClip:
    """Read a BVH file into the canonical clip (see the module docstring).

    fps: resample to this rate (default: the file's). joint_map: {bvh_joint: smpl_joint}
    (default: detected family). scale: metres per file unit (default: detected). up /
    forward: the file's up and forward axes ("y", "-z", ...; default: detected). rest_frame:
    take this frame, not the zero-rotation pose, as the rest pose (a T-pose frame).
    report: filled with the mapping used, what was dropped and why.
    """
    path = Path(path)
    where = f"BVH file {path}"
    if fps is not None and not 0 < float(fps) <= MAX_FPS:  # NaN too: before a huge resampling allocation
        raise MotionFileError(f"{where}: --fps {float(fps):g} is out of range; give a frame rate above 0 "
                              f"and at most {MAX_FPS:g}")
    report = report if report is not None else ConversionReport()
    report.source = str(path)
    data = read_bvh(path)
    smpl_to_src = resolve_joint_map(data.names, joint_map, where=where, parents=data.parents, report=report)
    up_axis, forward_axis = parse_axis(up, "up"), parse_axis(forward, "forward")
    world_rot, world_pos = data.world()
    if rest_frame is None:
        rest_file, rest_rot = data.rest_positions(), None
    else:
        if not 0 <= int(rest_frame) < data.num_frames:
            raise MotionFileError(f"{where}: --rest-frame {rest_frame} is outside its frames 0..{data.num_frames - 1}")
        rest_file, rest_rot = world_pos[int(rest_frame)], world_rot[int(rest_frame)]
    try:
        basis, how = source_basis(rest_file, smpl_to_src, world_pos, up_axis, forward_axis)
        unit_name, unit_scale = detect_scale(rest_file, smpl_to_src) if scale is None else ("given", float(scale))
        rest_src = unit_scale * rest_file @ basis.T
        smpl_to_src = merge_coincident(rest_src, smpl_to_src, data.names, report)
        align = align_rest(rest_src, smpl_to_src, data.parents, data.offsets)
    except ValueError as exc:
        raise MotionFileError(f"{where}: {exc}") from None
    report.frame = f"{how}; units {unit_name} ({unit_scale:g} m)" + (
        f"; rest pose from frame {rest_frame}" if rest_frame is not None else "")
    report.mapping = {JOINT_NAMES[j]: data.names[s] for j, s in smpl_to_src.items()}
    used = set(smpl_to_src.values()) | set(align.driver.values())
    report.unused = [n for i, n in enumerate(data.names) if i not in used]
    if rest_rot is not None:
        world_rot = world_rot @ np.swapaxes(rest_rot, -1, -2)[None]
    deltas = np.einsum("ab,fsbc,dc->fsad", basis, world_rot, basis)
    positions = unit_scale * world_pos @ basis.T
    rate = 1.0 / data.frame_time
    if abs(rate - round(rate)) < 1e-4 * rate:  # "Frame Time: 0.0083333" is 120 Hz
        rate = float(round(rate))
    clip = retarget_frames(deltas, positions, align, rate, f"bvh:{path.name}")
    if fps is not None and abs(float(fps) - clip.mocap_framerate) > 1e-9:
        clip = resample(clip, fps)
    return clip
