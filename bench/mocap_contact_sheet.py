"""Contact sheet of converted motion capture, one row per skeleton family (issue 11, acceptance 3).

`python bench/mocap_contact_sheet.py [--work /tmp/mocap_contact_sheet] [--samples 3] [--tile 256]`

For each family it writes a short source file with the fixture generators of
tests/test_mocap_wild.py and tests/test_mocap_c3d.py (CMU with MotionBuilder names, CMU with
3ds Max names, Mixamo, a Maya-style rig lying along +X at zero rotation, 3ds Max Biped,
Unreal, a Plug-in Gait C3D trial with subject measurements, the stairs trial). Each source is
turned to its own heading first, so a converter that lost the heading would show it. The
file goes through the real converter (`python -m farm.motion convert`), and a few frames go
through the real renderer (`python farm/render.py ... --debug-geometry`) with a fixed camera.
The sheet (WORK/mocap_contact_sheet.png) shows each render beside its IUV overlay, with the
floor (z = 0) drawn as a grid, the heading the source has at that frame as a green arrow and
the rendered body's heading (from its hip keypoints) as a red arrow. Per sample it prints
the checks: the head above the hips and the trunk leaning as in the source (upright), the
lowest vertex on the floor (z = 0; the stairs trial stands on the step under its supporting
foot), the heading against the source's at that frame. Exit status 1 if any sample fails.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()

HIPS, NOSE, EARS = (11, 12), 0, (3, 4)  # COCO keypoints
SMPL_TO_RENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Y up, +Z forward -> Z up
CAMERA_AZIMUTH = 35.0  # degrees, 0 = in front of a person facing -Y (SMPL +Z)
MAX_HEADING_ERROR = 20.0  # degrees
MAX_TILT_ERROR = 12.0  # degrees: the trunk's lean (ears over hips against the source's head over pelvis)
MAX_FLOAT, MAX_SINK = 0.05, 0.02  # metres: lowest vertex above / below the floor
CONFIG = """
render:
  resolution: [192, 160]
  beauty_samples: 2
  denoise: false
  shadow_catcher: false
appearance:
  texture_size: 256
harmonise:
  probability: 0.0
camera_effects:
  blur_probability: 0.0
  noise_probability: 0.0
  jpeg_probability: 0.0
annotation:
  points_per_person: 80
camera:
  azimuth_deg: [{az}, {az}]
  elevation_deg: [12.0, 12.0]
  roll_deg: [0.0, 0.0]
  person_height_fraction: [0.6, 0.6]
  look_at_jitter: 0.0
motion:
  clips: []
  clip_folders: [{folder}]
  mirror_probability: 0.0
"""


def yaw_matrix(deg: float) -> np.ndarray:
    """Rotation about +Y (SMPL / BVH up) by `deg`: turns +Z (forward) towards +X."""
    a = np.radians(deg)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


def yaw_clip(clip, deg: float):
    """Turn a SMPL-layout clip about +Y (through the world origin)."""
    from scipy.spatial.transform import Rotation

    from densesynth.motion.clip import MotionClip

    turn = yaw_matrix(deg)
    poses = clip.poses.copy()
    poses[:, :3] = (Rotation.from_matrix(turn) * Rotation.from_rotvec(clip.poses[:, :3])).as_rotvec()
    root = clip.rest_joints[0]
    trans = (clip.trans + root) @ turn.T - root
    return MotionClip(poses, trans, clip.mocap_framerate, clip.rest_joints, clip.source)


def heading_deg(forward_render: np.ndarray) -> np.ndarray:
    """Heading in the render's ground plane: 0 = -Y (SMPL +Z), positive towards +X."""
    return np.degrees(np.arctan2(forward_render[..., 0], -forward_render[..., 1]))


def _smpl_heading(left: np.ndarray) -> np.ndarray:
    """Per-frame heading from a left-minus-right hip vector in a Y-up frame."""
    forward = np.cross(left, [0.0, 1.0, 0.0])
    return heading_deg(forward @ SMPL_TO_RENDER.T)


def _tilt(rise: np.ndarray, up: tuple = (0.0, 1.0, 0.0)) -> np.ndarray:
    """Degrees between a pelvis-to-head vector and up (how far the trunk leans)."""
    rise = np.asarray(rise, dtype=float)
    return np.degrees(np.arccos(np.clip(rise @ np.array(up) / np.linalg.norm(rise, axis=-1), -1.0, 1.0)))


def build_sources(folder: Path) -> list[dict]:
    """Write one source file per family; return [{family, path, fps, heading (per source frame)}]."""
    from test_mocap_c3d import markers_from, short
    from test_mocap_wild import (BIPED, CMU_HIERARCHY, CMU_MAX, MIXAMO, UNREAL, add_thigh_tibia_wands, fk,
                                 make_motion, on_its_feet, parse_hierarchy, renamed, stairs_clip, turn_bvh_motion,
                                 write, write_lying_rig, write_pig_c3d)

    from densesynth.motion.clip import resample, save_clip
    from densesynth.motion.kinematics import forward_kinematics
    from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX

    J = JOINT_INDEX
    cmu_names = parse_hierarchy(CMU_HIERARCHY)[0]
    lhip, rhip = cmu_names.index("LeftUpLeg"), cmu_names.index("RightUpLeg")  # renamings keep the order
    head, hips = cmu_names.index("Head"), cmu_names.index("Hips")
    sources = []

    def standing_motion(text, yaw, seed):
        """The fixture's motion turned to `yaw` and put on its feet (`on_its_feet`: the
        generator holds the hips at one height, so with bent knees both feet leave the floor,
        a jump in the file that the renderer would keep)."""
        names, parents, offsets, chans = parse_hierarchy(text)
        motion = turn_bvh_motion(make_motion(names, chans, frames=90, fps=30.0, seed=seed), chans, yaw)
        return names, parents, offsets, chans, on_its_feet(motion, text)

    def bvh_family(family, text, yaw, label, seed):
        names, parents, offsets, chans, motion = standing_motion(text, yaw, seed)
        path = folder / f"{family}.bvh"
        write(path, text, motion)
        pos = fk(parents, offsets, chans, motion)
        sources.append({"family": family, "label": label, "path": path, "fps": 30.0, "yaw": yaw,
                        "heading": _smpl_heading(pos[:, lhip] - pos[:, rhip]), "tilt": _tilt(pos[:, head] - pos[:, hips])})

    bvh_family("cmu_motionbuilder", CMU_HIERARCHY, 0.0, "CMU, MotionBuilder names (zero offsets)", 0)
    bvh_family("cmu_3dsmax", renamed(CMU_HIERARCHY, CMU_MAX), 90.0, "CMU, 3ds Max names", 1)
    bvh_family("mixamo", renamed(CMU_HIERARCHY, MIXAMO, "mixamorig:"), -90.0, "Mixamo (mixamorig: prefix)", 2)
    bvh_family("biped", renamed(CMU_HIERARCHY, BIPED), 150.0, "3ds Max Biped", 3)
    bvh_family("unreal", renamed(CMU_HIERARCHY, UNREAL), -45.0, "Unreal / game rig", 4)
    # Maya-style rig lying along +X at zero rotation (the fixture of test_maya_rig_lying...).
    *_, motion = standing_motion(renamed(CMU_HIERARCHY, MIXAMO), 180.0, 5)
    path = folder / "maya_lying.bvh"
    names2, src, _ = write_lying_rig(path, motion)
    sources.append({"family": "maya_lying", "label": "Maya-style rig lying along +X at zero rotation (cm)",
                    "path": path, "fps": 30.0, "yaw": 180.0,
                    "heading": _smpl_heading(src[:, names2.index("LeftUpLeg")] - src[:, names2.index("RightUpLeg")]),
                    "tilt": _tilt(src[:, head] - src[:, hips])})

    # Plug-in Gait C3D trial (mm, Z up, 100 Hz) with the subject measurements.
    skeleton = np.array(GENERIC_REST_JOINTS)
    clip = yaw_clip(resample(short("walk", 2.0), 100.0), 60.0)
    markers, joints = markers_from(clip, skeleton)
    add_thigh_tibia_wands(markers, joints, forward_kinematics(clip.poses, skeleton)[0])
    path = folder / "plug_in_gait.c3d"
    write_pig_c3d(path, markers, 100.0)
    # Expected heading from the markers alone (SMPL frame here; the file holds them Z up).
    sources.append({"family": "c3d_plug_in_gait", "label": "C3D Plug-in Gait, subject measurements (mm, Z up)",
                    "path": path, "fps": 100.0, "yaw": 60.0, "heading": _smpl_heading(markers["LASI"] - markers["RASI"]),
                    "tilt": _tilt(np.mean([markers[n] for n in ("LFHD", "RFHD", "LBHD", "RBHD")], axis=0)
                                  - np.mean([markers[n] for n in ("LASI", "RASI", "LPSI", "RPSI")], axis=0))})

    # The stairs trial: walking down four 17 cm steps, the file's floor at the bottom.
    stairs, _ = stairs_clip()
    stairs = yaw_clip(stairs, -120.0)
    path = folder / "stairs.npz"
    save_clip(path, stairs)
    pos = forward_kinematics(stairs.poses, stairs.rest_joints)[1]
    sources.append({"family": "stairs", "label": "Stairs trial (down 4 x 17 cm steps)", "path": path,
                    "fps": stairs.mocap_framerate, "yaw": -120.0,
                    "heading": _smpl_heading(pos[:, J["left_hip"]] - pos[:, J["right_hip"]]),
                    "tilt": _tilt(pos[:, J["head"]] - pos[:, J["pelvis"]])})
    return sources


def convert_source(source: dict, clips: Path) -> dict:
    folder = clips / source["family"]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{source['family']}.npz"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "farm.motion", "convert", str(source["path"]), "--out", str(out),
                             "--fps", "30"], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"convert {source['path']} failed: {result.stderr.strip()}")
    skipped = re.search(r"calibration pose: frames 0-(\d+)", result.stdout)
    return {"folder": folder, "report": result.stdout.strip(), "seconds": time.perf_counter() - start,
            "calibration": int(skipped.group(1)) + 1 if skipped else 0}


def render_family(family: str, folder: Path, runs: Path, samples: int) -> Path:
    out = runs / family
    config = runs / f"{family}.yaml"
    config.write_text(CONFIG.format(az=CAMERA_AZIMUTH, folder=folder))
    import hashlib

    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.npz")))).hexdigest()
    digest += hashlib.sha256(config.read_bytes()).hexdigest()
    stamp = runs / f"{family}.sha256"
    if (out.exists() and stamp.exists() and stamp.read_text() == digest
            and len(list((out / "records").glob("*.json"))) == samples):
        return out  # rendered before from the same clip and config (--work reused)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    command = [sys.executable, str(REPO / "farm" / "render.py"), "--out", str(out), "--num-samples", str(samples),
               "--seed", "0", "--config", str(config), "--quiet", "--debug-geometry"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"render {family} failed: {result.stderr.strip()[-2000:]}")
    stamp.write_text(digest)
    return out


def measure(out: Path, stem: str, source: dict, converted: dict) -> dict:
    geometry = np.load(out / "geometry" / f"{stem}.npz")
    spec = json.loads((out / "specs" / f"{stem}.json").read_text())
    motion = spec["persons"][0]["motion"]
    keypoints = geometry["keypoints"][0]
    vertices = geometry["vertices"]
    hips = keypoints[list(HIPS)]
    left = hips[0] - hips[1]
    forward = np.cross(left, [0.0, 0.0, 1.0])
    got = float(heading_deg(forward))
    t = (motion["frame"] + converted["calibration"]) / 30.0
    index = min(int(round(t * source["fps"])), len(source["heading"]) - 1)
    want = float(source["heading"][index])
    error = (got - want + 180.0) % 360.0 - 180.0
    rise = float(keypoints[NOSE, 2] - hips[:, 2].mean())
    tilt = float(_tilt(keypoints[list(EARS)].mean(axis=0) - hips.mean(axis=0), (0.0, 0.0, 1.0)))
    source_tilt = float(source["tilt"][index])
    lowest = float(vertices[:, 2].min())
    ok = (rise > 0.3 and -MAX_SINK <= lowest <= MAX_FLOAT and abs(error) < MAX_HEADING_ERROR
          and abs(tilt - source_tilt) < MAX_TILT_ERROR)
    return {"stem": stem, "frame": motion["frame"], "heading": got, "expected": want, "error": error, "rise": rise,
            "tilt": tilt, "source_tilt": source_tilt, "lowest": lowest, "ok": ok, "geometry": geometry}


def draw_overlay(canvas: np.ndarray, m: dict, image_size: tuple[int, int], size: int) -> None:
    """Floor grid, expected (green) and rendered (red) headings over the image half of a tile."""
    import cv2

    g = m["geometry"]
    w, h = image_size
    scale = size / max(w, h)
    w2c, K = g["world_to_camera"], g["K"]

    def project(points):
        cam = points @ w2c[:3, :3].T + w2c[:3, 3]
        uv = cam[:, :2] / cam[:, 2:3] * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]
        return uv * scale, cam[:, 2]

    hips = g["keypoints"][0][list(HIPS)]
    centre = np.array([hips[:, 0].mean(), hips[:, 1].mean(), 0.0])
    view = canvas[: int(round(h * scale)), : int(round(w * scale))]
    steps = np.arange(-2.0, 2.01, 0.5)
    for a in steps:
        for line in (np.array([[a, -2.0, 0.0], [a, 2.0, 0.0]]), np.array([[-2.0, a, 0.0], [2.0, a, 0.0]])):
            pts = centre + np.linspace(line[0], line[1], 20)
            uv, depth = project(pts)
            uv = uv[depth > 0.05]
            if len(uv) > 1:
                cv2.polylines(view, [np.round(uv).astype(np.int32)], False, (150, 150, 150), 1, cv2.LINE_AA)
    for deg, colour, width in ((m["expected"], (40, 220, 40), 5), (m["heading"], (40, 40, 255), 2)):
        a = np.radians(deg)  # green drawn wide under red: where they agree, red has a green rim
        tip = centre + 0.7 * np.array([np.sin(a), -np.cos(a), 0.0])
        uv, _ = project(np.stack([centre, tip]))
        p0, p1 = (tuple(int(v) for v in np.round(p)) for p in uv)
        cv2.arrowedLine(view, p0, p1, colour, width, cv2.LINE_AA, tipLength=0.25)
    text = f"f{m['frame']} low{m['lowest']:+.3f} head{m['error']:+.0f} lean{m['tilt'] - m['source_tilt']:+.0f}"
    cv2.putText(canvas, text, (4, size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255) if m["ok"] else (0, 0, 255),
                1, cv2.LINE_AA)


def label_panel(lines: list[str], size: int) -> np.ndarray:
    import cv2

    panel = np.full((size, size, 3), 40, np.uint8)
    y = 18
    for line in lines:
        for k in range(0, len(line), 34):
            cv2.putText(panel, line[k:k + 34], (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            y += 15
    return panel


def main() -> int:
    import cv2

    from farm.contact_sheet import tile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mocap_contact_sheet"))
    parser.add_argument("--samples", type=int, default=3, help="renders per family")
    parser.add_argument("--tile", type=int, default=256, help="tile height in pixels")
    parser.add_argument("--only", nargs="*", default=None, help="families to do (default: all)")
    args = parser.parse_args()
    work = args.work
    for sub in ("sources", "clips", "runs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    sources = build_sources(work / "sources")
    if args.only:
        sources = [s for s in sources if s["family"] in args.only]
    rows, failures = [], 0
    for source in sources:
        converted = convert_source(source, work / "clips")
        start = time.perf_counter()
        out = render_family(source["family"], converted["folder"], work / "runs", args.samples)
        print(f"== {source['family']}: converted in {converted['seconds']:.1f} s, rendered in "
              f"{time.perf_counter() - start:.0f} s; source heading {source['yaw']:+.0f} deg")
        print("   " + converted["report"].replace("\n", "\n   "))
        tiles = []
        for record in sorted((out / "records").glob("*.json")):
            image_name = json.loads(record.read_text())["image"]["file_name"]
            m = measure(out, record.stem, source, converted)
            failures += not m["ok"]
            print(f"   sample {record.stem}: frame {m['frame']:3d}  head above hips {m['rise']:+.2f} m  lowest vertex "
                  f"z {m['lowest']:+.3f} m  heading {m['heading']:+6.1f} deg (source {m['expected']:+6.1f}, error "
                  f"{m['error']:+5.1f})  lean {m['tilt']:4.1f} deg (source {m['source_tilt']:4.1f})  "
                  f"{'ok' if m['ok'] else 'FAIL'}")
            canvas = tile(out, record.stem, image_name, args.tile)
            size = tuple(int(v) for v in m["geometry"]["image_size"])
            draw_overlay(canvas, m, size, args.tile)
            tiles.append(canvas)
        lines = [source["label"], f"file: {source['path'].name}", f"source heading {source['yaw']:+.0f} deg",
                 "green: source heading", "red: rendered heading", "grey: floor z=0 (0.5 m)"]
        rows.append(np.hstack([label_panel(lines, args.tile)] + tiles))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    path = work / "mocap_contact_sheet.png"
    cv2.imwrite(str(path), sheet)
    print(f"contact sheet: {path} ({len(rows)} families); {failures} samples failed the checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
