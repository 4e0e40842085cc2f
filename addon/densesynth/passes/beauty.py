"""The beauty pass: the photograph (Cycles path tracing, composited over the backdrop)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io_utils import atomic_write_bytes
from .base import LINEAR, BlenderSetup, Layer, Output, Pass, SampleContext, register, remove


def image_name(spec: dict[str, Any]) -> str:
    """The file name of a sample's image in images/."""
    return f"{spec['stem']}.{'jpg' if spec['render']['image_format'] == 'jpg' else 'png'}"


@register
class BeautyPass(Pass):
    name = "beauty"
    # image: BGR uint8 over the backdrop; image_alpha: the render's coverage in [0, 1] (what
    # harmonisation weighs by). Occluders are composited into the image, not cleared from it.
    layers = (Layer("image", LINEAR, occludable=False), Layer("image_alpha", LINEAR, occludable=False))
    outputs = (Output("images", (".png", ".jpg")),)
    raw = ("images", ".beauty.png")
    stage = "beauty_pass"

    def blender_setup(self, spec: dict[str, Any]) -> BlenderSetup:
        """RGBA PNG with a transparent background (and shadow-catcher alpha), for compositing."""
        r = spec["render"]
        return BlenderSetup(settings=(
            ("world.cycles.sampling_method", "MANUAL"),
            ("cycles.samples", r["beauty_samples"]),
            ("cycles.use_adaptive_sampling", r["adaptive_threshold"] > 0),
            ("cycles.adaptive_threshold", r["adaptive_threshold"]),
            ("cycles.use_denoising", r["denoise"]),
            ("cycles.denoiser", "OPENIMAGEDENOISE"),
            ("cycles.denoising_input_passes", "RGB_ALBEDO_NORMAL"),
            ("cycles.denoising_quality", r["denoise_quality"].upper()),
            ("cycles.denoising_prefilter", r["denoise_prefilter"].upper()),
            ("cycles.seed", r["cycles_seed"]),
            ("cycles.max_bounces", r["max_bounces"]),
            ("cycles.use_light_tree", r["light_tree"]),
            ("render.filter_size", 1.5),
            ("view_settings.view_transform", "AgX"),
            ("render.image_settings.file_format", "PNG"),
            ("render.image_settings.color_mode", "RGBA"),
            ("render.image_settings.color_depth", "8"),
        ), emit=None, show_ground=r["shadow_catcher"])

    def decode(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The render over the backdrop: (BGR uint8 image, the render's alpha in [0, 1])."""
        import cv2

        rgba = cv2.imread(str(raw), cv2.IMREAD_UNCHANGED)
        remove(raw)
        if rgba is None:
            raise RuntimeError(f"Blender wrote no readable beauty image at {raw}")
        rgba = rgba.astype(np.float32) / 255.0
        alpha = rgba[..., 3:4]
        composite = rgba[..., :3] * alpha + sample.backdrop[..., ::-1] * (1.0 - alpha)
        image = np.clip(np.round(composite * 255.0), 0, 255).astype(np.uint8)
        return {"image": image, "image_alpha": alpha[..., 0]}

    def write(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        import cv2

        name = image_name(sample.spec)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if name.endswith(".jpg") else []
        ok, encoded = cv2.imencode(name[name.rindex("."):], layers["image"], params)
        if not ok:
            raise RuntimeError(f"could not encode image {sample.stem}")
        atomic_write_bytes(sample.out / "images" / name, encoded.tobytes())
        return [f"images/{name}"]
