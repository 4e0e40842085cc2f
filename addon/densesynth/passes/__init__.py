"""Ground-truth passes as plug-ins: each module registers one pass by name (see base.py).

Adding a pass: a new module here with a `Pass` subclass under `@register`, imported below,
and its test. A config lists the passes to produce under `passes:`.
"""
from .base import (EXACT, LINEAR, NEAREST, RESAMPLING, VECTOR, BlenderSetup, Emission, Layer, Output, Pass,
                   SampleContext, exact_exr_settings, get_pass, output_folders, pass_names, register, resolve, run_folders,
                   sample_file_candidates, unregister)
from . import beauty, iuv, person_index  # noqa: E402,F401  (registers the built-in passes, in render order)
from . import depth, normals, surface  # noqa: E402,F401  (optional: depth, normals, face/barycentrics/vertex ids)
from . import body3d  # noqa: E402,F401  (per-person 3D truth; no render)
from . import flow  # noqa: E402,F401  (optical flow between the frames of a sequence; no render)
from . import joint_parts, depth_bins  # noqa: E402,F401  (SURREAL's parts by joint and quantised depth; no render)

# Passes every run produces: the COCO-DensePose annotations are made from them.
REQUIRED_PASSES = ("beauty", "iuv")

__all__ = ["EXACT", "LINEAR", "NEAREST", "RESAMPLING", "VECTOR", "BlenderSetup", "Emission", "Layer", "Output", "Pass",
           "SampleContext", "get_pass", "output_folders", "pass_names", "register", "resolve", "run_folders",
           "sample_file_candidates", "unregister", "exact_exr_settings", "REQUIRED_PASSES"]
