"""Retarget SMPL-format motion onto another skeleton (by default, anny's 104-bone rig).

The recipe (shared reference, "Retarget by aligning rest poses"):
1. the source's world delta per joint, D_j = G_j(t) G_j(rest)^-1; SMPL's rest frames are the
   identity, so D_j is simply the world rotation from forward kinematics;
2. a change of basis C from SMPL's world (Y up, facing +Z, left +X) into the target's
   (for anny: Z up, facing -Y, left +X, so SMPL (x, y, z) -> (x, -z, y));
3. per mapped target bone a rest alignment Q_j turning the target's rest bone direction (its
   head to the head of the bone mapped to the SMPL child joint) onto the source's rest
   direction mapped through C; where a joint has several children (pelvis: spine and hips;
   spine3: neck and collars) the frames built from the spine direction and the left-right
   line are aligned (the spine direction exactly, the left-right line as well as possible);
   a joint without a mapped child (head, hands, feet) takes its parent joint's alignment;
4. the target bone's world delta C D_j C^-1 Q_j; unmapped bones inherit their parent's
   world delta (their local rotation stays rest);
5. the root translation is SMPL's trans through C, scaled by the leg-length ratio.

Output rotations are rest-to-posed world deltas of every target bone, as
`AnnyBody.pose` takes them (each bone turns about its head: x -> D (x - h) + h', h' carried
down from the parent). With the identity SMPL pose the target takes the source's rest pose
(a T-pose for SMPL and the generic skeleton), not its own.

Translation: the canonical format puts the floor at y = 0 with the rest skeleton standing
on it, so trans is the displacement from standing at the origin. `root_translation` is that
displacement in the target's frame and scale, to be added to the target's rest-posed body
(the `translation` argument of `AnnyBody.pose`); where the source stands, the target stands
on the floor of its own rest pose.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .clip import MotionClip
from .kinematics import forward_kinematics
from .smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX, NUM_JOINTS, PARENTS, children

# SMPL's (x, y, z) -> anny's (x, -z, y): up +Y -> +Z, forward +Z -> -Y, left +X -> +X.
SMPL_TO_ANNY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

JointMap = Mapping[int, "str | Sequence[str]"]


def _sided(name: str, left: str, right: str) -> dict[int, str]:
    return {JOINT_INDEX[f"left_{name}"]: left, JOINT_INDEX[f"right_{name}"]: right}


def _both(name: str, bone: str) -> dict[int, str]:
    return _sided(name, f"{bone}.L", f"{bone}.R")


def _both_group(name: str, bones: Sequence[str]) -> dict[int, tuple[str, ...]]:
    return {
        JOINT_INDEX[f"left_{name}"]: tuple(f"{b}.L" for b in bones),
        JOINT_INDEX[f"right_{name}"]: tuple(f"{b}.R" for b in bones),
    }


# SMPL joint -> anny bone (default rig, anny 0.6.2), read off the rest bone heads:
# - 'root', 'pelvis.L/R' and 'spine05' all start at the pelvis joint; the hip joints are
#   'upperleg01.L/R' (about 10 cm either side). The pelvis maps to 'root'; 'pelvis.L/R' and
#   'spine05' follow it.
# - spine: anny's 'spine04' (7 cm above the pelvis joint), 'spine02' (21 cm) and 'spine01'
#   (34 cm, the chest bone carrying the clavicles and the neck) stand for SMPL's spine1
#   (about 11 cm), spine2 (24 cm) and spine3 (30 cm); 'spine05' and 'spine03' are carried.
# - SMPL's shoulder joint is the glenohumeral joint: 'upperarm01' ('shoulder01' between the
#   clavicle and it is carried by the clavicle); 'upperleg02', 'lowerleg02', 'upperarm02',
#   'lowerarm02', 'neck02/03' and the metacarpals are twist / in-between bones and follow
#   their parents.
# - SMPL's foot joint is the ball of the foot: all five 'toe?-1' bones bend with it
#   ('toe3-1', the middle toe, gives the direction). SMPL's hand joint is the knuckles:
#   the four finger bases bend with it ('finger3-1' gives the direction); the thumb follows
#   the wrist.
ANNY_JOINT_MAP: dict[int, str | tuple[str, ...]] = {
    JOINT_INDEX["pelvis"]: "root",
    JOINT_INDEX["spine1"]: "spine04",
    JOINT_INDEX["spine2"]: "spine02",
    JOINT_INDEX["spine3"]: "spine01",
    JOINT_INDEX["neck"]: "neck01",
    JOINT_INDEX["head"]: "head",
    **_both("hip", "upperleg01"),
    **_both("knee", "lowerleg01"),
    **_both("ankle", "foot"),
    **_both_group("foot", ("toe3-1", "toe1-1", "toe2-1", "toe4-1", "toe5-1")),
    **_both("collar", "clavicle"),
    **_both("shoulder", "upperarm01"),
    **_both("elbow", "lowerarm01"),
    **_both("wrist", "wrist"),
    **_both_group("hand", ("finger3-1", "finger2-1", "finger4-1", "finger5-1")),
}

# Joints with several children: (primary child, left child, right child). The primary
# direction is matched exactly, the left-right line as well as it can be.
_FRAME_CHILDREN = {
    JOINT_INDEX["pelvis"]: (JOINT_INDEX["spine1"], JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]),
    JOINT_INDEX["spine3"]: (JOINT_INDEX["neck"], JOINT_INDEX["left_collar"], JOINT_INDEX["right_collar"]),
}


@dataclass(frozen=True, eq=False)  # array fields: no element-wise ==
class RetargetedPose:
    """Target pose: world_rotations (B, 3, 3) rest-to-posed deltas in the target's world
    frame, root_translation (3,); with a leading frame axis (T, ...) for whole clips."""

    world_rotations: np.ndarray
    root_translation: np.ndarray


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        raise ValueError(f"zero-length rest direction for {what}")
    return v / n


class Retargeter:
    """Precomputed rest alignment from one SMPL-layout skeleton onto one target skeleton."""

    def __init__(
        self,
        rest_heads: np.ndarray,
        parents: Sequence[int] | np.ndarray,
        labels: Sequence[str],
        joint_map: JointMap = ANNY_JOINT_MAP,
        source_rest_joints: np.ndarray = GENERIC_REST_JOINTS,
        change_of_basis: np.ndarray = SMPL_TO_ANNY,
    ):
        heads = np.asarray(rest_heads, dtype=np.float64)
        parents = np.asarray(parents, dtype=np.int64)
        labels = [str(label) for label in labels]
        if heads.ndim != 2 or heads.shape[1] != 3 or len(parents) != len(heads) or len(labels) != len(heads):
            raise ValueError(
                f"target skeleton needs heads (B, 3), parents (B,), labels (B,); got "
                f"{heads.shape}, {parents.shape}, {len(labels)}"
            )
        source = np.asarray(source_rest_joints, dtype=np.float64)
        if source.shape != (NUM_JOINTS, 3):
            raise ValueError(f"source_rest_joints must be ({NUM_JOINTS}, 3), got {source.shape}")
        source = _repair_zero_bones(source)
        basis = np.asarray(change_of_basis, dtype=np.float64)
        if basis.shape != (3, 3) or not np.allclose(basis @ basis.T, np.eye(3), atol=1e-6) or np.linalg.det(basis) < 0:
            raise ValueError("change_of_basis must be a 3x3 rotation matrix")

        index = {label: i for i, label in enumerate(labels)}
        bones_of: dict[int, tuple[int, ...]] = {}
        owner = np.full(len(heads), -1, dtype=np.int64)  # target bone -> SMPL joint
        for joint, names in joint_map.items():
            joint = int(joint)
            if not 0 <= joint < NUM_JOINTS:
                raise ValueError(f"joint map names SMPL joint {joint}; joints are 0..{NUM_JOINTS - 1}")
            names = (names,) if isinstance(names, str) else tuple(names)
            missing = [n for n in names if n not in index]
            if missing or not names:
                raise ValueError(f"joint map: target has no bone {missing or names} (for SMPL joint {joint})")
            bones = tuple(index[n] for n in names)
            for bone in bones:
                if owner[bone] >= 0:
                    raise ValueError(f"joint map: bone {labels[bone]!r} is mapped twice")
                owner[bone] = joint
            bones_of[joint] = bones

        self.heads = heads
        self.parents = parents
        self.labels = labels
        self.source_rest_joints = source
        self.change_of_basis = basis
        self.joint_bones = bones_of  # SMPL joint -> target bones, first = primary
        self.bone_joint = owner  # target bone -> SMPL joint, -1 if unmapped
        self.order = _parent_first_order(parents)
        self.rest_alignment = self._rest_alignment()  # (24, 3, 3); identity where unmapped
        self.leg_ratio = self._leg_ratio()

    # Rest alignment -----------------------------------------------------------------
    def _directions(self, joint: int, child: int) -> tuple[np.ndarray, np.ndarray]:
        """(source rest direction in target frame, target rest direction), unit length."""
        src = self.change_of_basis @ (self.source_rest_joints[child] - self.source_rest_joints[joint])
        tgt = self.heads[self.joint_bones[child][0]] - self.heads[self.joint_bones[joint][0]]
        what = f"SMPL joint {joint} -> {child}"
        return _unit(src, what), _unit(tgt, f"target bones for {what}")

    def _rest_alignment(self) -> np.ndarray:
        kids = children(PARENTS)
        q = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
        done = np.zeros(NUM_JOINTS, dtype=bool)
        for joint in range(NUM_JOINTS):  # SMPL joints are parent-first
            if joint not in self.joint_bones:
                continue
            mapped = [c for c in kids[joint] if c in self.joint_bones]
            frame = _FRAME_CHILDREN.get(joint)
            if frame is not None and all(c in self.joint_bones for c in frame):
                primary, left, right = frame
                src_p, tgt_p = self._directions(joint, primary)
                src_l = self.change_of_basis @ (self.source_rest_joints[left] - self.source_rest_joints[right])
                tgt_l = self.heads[self.joint_bones[left][0]] - self.heads[self.joint_bones[right][0]]
                rot, _ = Rotation.align_vectors(
                    [src_p, _unit(src_l, "source left-right line")],
                    [tgt_p, _unit(tgt_l, "target left-right line")],
                    weights=[np.inf, 1.0],
                )
                q[joint] = rot.as_matrix()
            elif mapped:
                # One child (or a multi-child joint mapped only partly): its first mapped child.
                src, tgt = self._directions(joint, mapped[0])
                rot, _ = Rotation.align_vectors(src[None], tgt[None])
                q[joint] = rot.as_matrix()
            else:
                ancestor = int(PARENTS[joint])
                while ancestor >= 0 and not done[ancestor]:
                    ancestor = int(PARENTS[ancestor])
                q[joint] = q[ancestor] if ancestor >= 0 else np.eye(3)
            done[joint] = True
        return q

    def _leg_ratio(self) -> float:
        lengths = []
        for side in ("left", "right"):
            chain = [JOINT_INDEX[f"{side}_{n}"] for n in ("hip", "knee", "ankle")]
            if not all(j in self.joint_bones for j in chain):
                continue
            src = self.source_rest_joints[chain]
            tgt = self.heads[[self.joint_bones[j][0] for j in chain]]
            lengths.append(
                (np.linalg.norm(np.diff(tgt, axis=0), axis=1).sum(), np.linalg.norm(np.diff(src, axis=0), axis=1).sum())
            )
        if not lengths:
            return 1.0
        tgt_len, src_len = np.mean(lengths, axis=0)
        return float(tgt_len / src_len)

    # Posing -------------------------------------------------------------------------
    def __call__(self, pose72: np.ndarray, trans: np.ndarray | None = None) -> RetargetedPose:
        """Retarget one pose (72,) or a sequence (T, 72), with trans (3,) / (T, 3)."""
        pose = np.asarray(pose72, dtype=np.float64)
        single = pose.ndim == 1
        pose = pose.reshape(-1, 3 * NUM_JOINTS)
        frames = len(pose)
        if trans is None:
            trans = np.zeros((frames, 3))
        trans = np.asarray(trans, dtype=np.float64).reshape(-1, 3)
        if len(trans) != frames:
            raise ValueError(f"{frames} poses but {len(trans)} translations")

        world, _ = forward_kinematics(pose, self.source_rest_joints)  # (T, 24, 3, 3)
        c = self.change_of_basis
        # C D_j C^-1 Q_j for every SMPL joint.
        joint_rot = np.einsum("ab,tjbc,dc,jde->tjae", c, world, c, self.rest_alignment)
        out = np.empty((frames, len(self.heads), 3, 3))
        for bone in self.order:
            joint = self.bone_joint[bone]
            if joint >= 0:
                out[:, bone] = joint_rot[:, joint]
            elif self.parents[bone] >= 0:
                out[:, bone] = out[:, self.parents[bone]]
            else:
                out[:, bone] = np.eye(3)
        root = self.leg_ratio * trans @ c.T
        if single:
            return RetargetedPose(world_rotations=out[0], root_translation=root[0])
        return RetargetedPose(world_rotations=out, root_translation=root)


def _repair_zero_bones(source: np.ndarray) -> np.ndarray:
    """Clips converted by older versions can hold zero-length bones (CMU's LowerBack, Neck,
    collars, finger bases at their parents): give each a 1 cm bone along the generic
    skeleton's direction, so rest directions exist (coincident collars come apart too)."""
    out = np.array(source, dtype=np.float64)
    for joint in range(1, NUM_JOINTS):
        parent = int(PARENTS[joint])
        if np.linalg.norm(out[joint] - out[parent]) < 1e-4:
            step = GENERIC_REST_JOINTS[joint] - GENERIC_REST_JOINTS[parent]
            out[joint] = out[parent] + 0.01 * step / np.linalg.norm(step)
    return out


def _parent_first_order(parents: np.ndarray) -> list[int]:
    order: list[int] = []
    placed = np.zeros(len(parents), dtype=bool)
    remaining = list(range(len(parents)))
    while remaining:
        progressed = False
        rest = []
        for bone in remaining:
            parent = int(parents[bone])
            if parent < 0 or placed[parent]:
                order.append(bone)
                placed[bone] = True
                progressed = True
            else:
                rest.append(bone)
        if not progressed:
            raise ValueError("target parents contain a cycle or an out-of-range parent")
        remaining = rest
    return order


def retarget_pose(
    pose72: np.ndarray,
    trans: np.ndarray | None,
    rest_heads: np.ndarray,
    parents: Sequence[int] | np.ndarray,
    labels: Sequence[str],
    joint_map: JointMap = ANNY_JOINT_MAP,
    source_rest_joints: np.ndarray = GENERIC_REST_JOINTS,
    change_of_basis: np.ndarray = SMPL_TO_ANNY,
) -> RetargetedPose:
    """One-off retargeting; build a `Retargeter` once to pose many frames."""
    retargeter = Retargeter(rest_heads, parents, labels, joint_map, source_rest_joints, change_of_basis)
    return retargeter(pose72, trans)


def retarget_clip(
    clip: MotionClip,
    rest_heads: np.ndarray,
    parents: Sequence[int] | np.ndarray,
    labels: Sequence[str],
    joint_map: JointMap = ANNY_JOINT_MAP,
    change_of_basis: np.ndarray = SMPL_TO_ANNY,
) -> RetargetedPose:
    """Every frame of `clip` on the target: world_rotations (T, B, 3, 3), root_translation (T, 3)."""
    retargeter = Retargeter(rest_heads, parents, labels, joint_map, clip.rest_joints, change_of_basis)
    return retargeter(clip.poses, clip.trans)
