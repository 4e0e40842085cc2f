"""Joint names of the common humanoid skeleton families -> SMPL joints.

A source joint name is first split into a side (left / right / none) and a base: the
namespace (`mixamorig:`, `Subject:`), a 3ds Max Biped prefix (`Bip01 `, `Bip001 `), the side
(`Left…`, `…_l`, `.L`, `L_…`, `L …`, `lThigh`, `…Left`) and separators are removed and the
rest lower-cased, so `mixamorig:LeftUpLeg`, `LeftUpLeg` and `Left_UpLeg` all read
("left", "upleg"), and `Bip01 L Thigh`, `thigh_l` and `Thigh.L` read ("left", "thigh").

Each family lists, per SMPL joint, the bases that stand for it. The family matching the most
joints wins; ties go to the order below. The spine (SMPL spine1..spine3) is not named by a
family: it is found from the structure (the chain between the pelvis and the joint carrying
the neck and the collars, see `bvh.py`), because spines have 1 to 5 joints under any name.
A user map ({source joint: SMPL joint}) replaces the detection; for joints no family knows,
`suggest_map` proposes entries by name similarity.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from .smpl_skeleton import JOINT_NAMES

_NAMESPACE = re.compile(r"^.*:")
_BIPED = re.compile(r"^bip\d+[\s_]*", re.IGNORECASE)
_TRAILING = {"jnt", "joint", "bone", "bind", "def", "jt", "j"}

# Per family: SMPL joint -> sideless bases (normalised); sided joints use the base for both sides.
FAMILIES: dict[str, dict[str, tuple[str, ...]]] = {
    # CMU (MotionBuilder-friendly release), Mixamo, Rokoko, Perception Neuron, MocapBank,
    # Maya HumanIK: LeftUpLeg / LeftLeg / LeftFoot / LeftShoulder (collar) / LeftArm ...
    "CMU (MotionBuilder names) / Mixamo / Rokoko / Perception Neuron / HumanIK": {
        "pelvis": ("hips", "hip", "pelvis"), "neck": ("neck",), "head": ("head",),
        "hip": ("upleg",), "knee": ("leg",), "ankle": ("foot",), "foot": ("toebase", "toe", "footend"),
        "collar": ("shoulder",), "shoulder": ("arm",), "elbow": ("forearm",), "wrist": ("hand",),
        "hand": ("fingerbase", "handmiddle1", "handindex1", "inhandmiddle"),
    },
    # CMU (3ds Max-friendly release), BVH exports of many older tools: LeftHip / LeftKnee ...
    "CMU (3ds Max names)": {
        "pelvis": ("hips", "hip", "pelvis", "root"), "neck": ("neck",), "head": ("head",),
        "hip": ("hip",), "knee": ("knee",), "ankle": ("ankle",), "foot": ("toe", "toes"),
        "collar": ("collar",), "shoulder": ("shoulder",), "elbow": ("elbow",), "wrist": ("wrist",),
        "hand": ("finger", "fingers", "fingerbase", "hand"),
    },
    # 3ds Max Biped: Bip01 Pelvis / Bip01 L Thigh / Bip01 L Calf / Bip01 L Clavicle ...
    "3ds Max Biped": {
        "pelvis": ("pelvis",), "neck": ("neck",), "head": ("head",),
        "hip": ("thigh",), "knee": ("calf",), "ankle": ("foot",), "foot": ("toe0", "toe"),
        "collar": ("clavicle",), "shoulder": ("upperarm",), "elbow": ("forearm",), "wrist": ("hand",),
        "hand": ("finger2", "finger1"),
    },
    # Unreal / MPFB game engine rig / many Maya game rigs: thigh_l / calf_l / upperarm_l ...
    "Unreal / game engine": {
        "pelvis": ("pelvis", "hips"), "neck": ("neck01", "neck"), "head": ("head",),
        "hip": ("thigh",), "knee": ("calf",), "ankle": ("foot",), "foot": ("ball",),
        "collar": ("clavicle",), "shoulder": ("upperarm",), "elbow": ("lowerarm",), "wrist": ("hand",),
        "hand": ("middle01", "middle1", "middlemetacarpal"),
    },
    # MakeHuman / MPFB default rig: upperleg01.L / lowerleg01.L / upperarm01.L ...
    "MakeHuman / MPFB": {
        "pelvis": ("root", "pelvis"), "neck": ("neck01",), "head": ("head",),
        "hip": ("upperleg01",), "knee": ("lowerleg01",), "ankle": ("foot",), "foot": ("toe31", "toe11"),
        "collar": ("clavicle",), "shoulder": ("upperarm01",), "elbow": ("lowerarm01",), "wrist": ("wrist",),
        "hand": ("finger31", "finger21"),
    },
    # Poser / DAZ: hip / lThigh / lShin / lShldr / lForeArm ...
    "Poser / DAZ": {
        "pelvis": ("hip", "hips", "pelvis"), "neck": ("neck", "necklower"), "head": ("head",),
        "hip": ("thigh", "thighbend"), "knee": ("shin",), "ankle": ("foot",), "foot": ("toe", "toes"),
        "collar": ("collar",), "shoulder": ("shldr", "shldrbend"), "elbow": ("forearm", "forearmbend"),
        "wrist": ("hand",), "hand": ("mid1",),
    },
    # Kinect-style / anatomical names: HipLeft / KneeLeft / femur / tibia ...
    "anatomical (Kinect-like)": {
        "pelvis": ("spinebase", "pelvis", "hips", "root"), "neck": ("neck",), "head": ("head",),
        "hip": ("hip", "femur", "upperleg"), "knee": ("knee", "tibia", "lowerleg", "shin"),
        "ankle": ("ankle",), "foot": ("foot", "ball", "toe"),
        "collar": ("clavicle", "collar"), "shoulder": ("shoulder", "humerus", "upperarm"),
        "elbow": ("elbow", "radius", "lowerarm"), "wrist": ("wrist",), "hand": ("hand", "handtip"),
    },
}

SIDED = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist", "hand")


def split_name(name: str) -> tuple[str | None, str]:
    """(side, base) of a joint name: side "left", "right" or None; base lower case without
    separators, namespace, Biped prefix or side."""
    n = _NAMESPACE.sub("", name.strip())
    n = _BIPED.sub("", n)
    side: str | None = None
    tokens = [t for t in re.split(r"[\s_.\-]+", n) if t]
    if len(tokens) > 1 and tokens[-1].lower() in _TRAILING:
        tokens = tokens[:-1]
    if len(tokens) > 1 and tokens[0].lower() in ("l", "r", "left", "right"):
        side = "left" if tokens[0].lower().startswith("l") else "right"
        tokens = tokens[1:]
    elif len(tokens) > 1 and tokens[-1].lower() in ("l", "r", "left", "right"):
        side = "left" if tokens[-1].lower().startswith("l") else "right"
        tokens = tokens[:-1]
    joined = "".join(tokens)
    low = joined.lower()
    if side is None:
        if low.startswith("left") and len(low) > 4:
            side, low = "left", low[4:]
        elif low.startswith("right") and len(low) > 5:
            side, low = "right", low[5:]
        elif re.match(r"^[lr][A-Z]", joined):  # lThigh, LHipJoint, rShldr
            side, low = ("left" if joined[0] == "l" or joined[0] == "L" else "right"), low[1:]
        elif low.endswith("left") and len(low) > 4:
            side, low = "left", low[:-4]
        elif low.endswith("right") and len(low) > 5:
            side, low = "right", low[:-5]
    return side, low


def _table(family: dict[str, tuple[str, ...]]) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """[(SMPL joint, side, bases)] for every SMPL joint a family names."""
    out = []
    for key, bases in family.items():
        if key in SIDED:
            out += [(f"left_{key}", "left", bases), (f"right_{key}", "right", bases)]
        else:
            out.append((key, None, bases))
    return out


def match_family(names: Sequence[str], family: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """{SMPL joint: source joint} that one family gives for these names (first name wins)."""
    split = [split_name(n) for n in names]
    found: dict[str, str] = {}
    used: set[int] = set()
    for smpl, side, bases in _table(family):
        for base in bases:  # the earlier base wins over later ones
            hit = next((i for i, (s, b) in enumerate(split) if b == base and s == side and i not in used), None)
            if hit is not None:
                found[smpl] = names[hit]
                used.add(hit)
                break
    return found


def detect_family(names: Sequence[str]) -> tuple[str, dict[str, str]]:
    """(family label, {SMPL joint: source joint}) of the family that names the most joints."""
    best_label, best = "no known family", {}
    for label, family in FAMILIES.items():
        found = match_family(names, family)
        if len(found) > len(best):
            best_label, best = label, found
    return best_label, best


def suggest_map(names: Sequence[str], missing: Sequence[str], taken: Sequence[str] = ()) -> dict[str, str]:
    """{source joint: SMPL joint} guesses for the SMPL joints in `missing`, by the similarity
    of the source names (not yet taken) to the names the families use for each joint."""
    free = [n for n in names if n not in set(taken)]
    out: dict[str, str] = {}
    for smpl in missing:
        key = smpl.split("_", 1)[1] if smpl.startswith(("left_", "right_")) else smpl
        side = smpl.split("_", 1)[0] if smpl.startswith(("left_", "right_")) else None
        bases = {b for fam in FAMILIES.values() for b in fam.get(key, ())} | {key}
        best, score = None, 0.0
        for n in free:
            if n in out:
                continue
            s, b = split_name(n)
            if side is not None and s not in (side, None):
                continue
            ratio = max(difflib.SequenceMatcher(None, b, base).ratio() for base in bases)
            if side is not None and s == side:
                ratio += 0.05
            if ratio > score:
                best, score = n, ratio
        if best is not None and score >= 0.5:
            out[best] = smpl
    return out


assert all(k in SIDED or k in JOINT_NAMES for fam in FAMILIES.values() for k in fam)
