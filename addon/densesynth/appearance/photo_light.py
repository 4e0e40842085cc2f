"""Light from the photograph: an environment map built from the backdrop the person stands in.

A person lit by drawn lights over a photograph keeps the drawn lights' colour and direction,
whatever the photograph shows. Image-based lighting fixes that with what Cycles already does
well: the backdrop becomes the world's environment texture, so the photograph's colour,
brightness and bright directions (a window, the sky) reach the person through the path tracer.

The photograph covers only the camera's field of view. Each direction of the (equirectangular)
map looks the photograph up through the render camera; a direction behind the camera uses its
mirror image through the image plane (the unseen half of the scene is assumed to resemble the
seen half, the usual single-image assumption), and directions outside the frame take the
nearest edge. The photograph is blurred first (lighting is low-frequency) and linearised from
sRGB, as Cycles expects radiance. Blender has no operator for "photo to environment", hence
these lines; the projection is the camera model of scene/camera.py.
"""
from __future__ import annotations

import numpy as np

MAP_SIZE = (128, 64)  # (width, height) of the equirectangular map: lighting needs no more
BLUR_FRACTION = 0.04  # Gaussian sigma as a share of the photograph's width


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float32)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def map_directions(size: tuple[int, int] = MAP_SIZE) -> np.ndarray:
    """(H, W, 3) world directions of the texel centres of Blender's equirectangular mapping
    (row 0 at the bottom, v = 0: straight down), inverse of Blender's direction_to_equirectangular:
    u = -atan2(y, x) / 2 pi + 0.5, v = atan2(z, hypot(x, y)) / pi + 0.5."""
    width, height = size
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    phi = -(u - 0.5) * 2 * np.pi  # atan2(y, x)
    theta = (v - 0.5) * np.pi  # elevation
    phi, theta = np.meshgrid(phi, theta)
    return np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), np.sin(theta)], axis=-1)


def environment_map(backdrop_rgb: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray,
                    size: tuple[int, int] = MAP_SIZE) -> np.ndarray:
    """(H, W, 4) float32 linear RGBA environment map (Blender pixel order) of a backdrop
    photograph (H, W, 3 sRGB in [0, 1]) seen by the camera (K; world_to_camera: OpenCV)."""
    import cv2

    height, width = backdrop_rgb.shape[:2]
    sigma = max(1.0, BLUR_FRACTION * width)
    blurred = cv2.GaussianBlur(srgb_to_linear(backdrop_rgb), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    directions = map_directions(size).reshape(-1, 3)
    camera = directions @ np.asarray(world_to_camera)[:3, :3].T
    camera[:, 2] = np.abs(camera[:, 2])  # behind the camera: the mirror image through the image plane
    depth = np.maximum(camera[:, 2], 1e-3)  # sideways directions land far outside: the nearest edge
    cols = K[0, 0] * camera[:, 0] / depth + K[0, 2]
    rows = K[1, 1] * camera[:, 1] / depth + K[1, 2]
    map_x = np.clip(cols, 0, width - 1).astype(np.float32).reshape(size[1], size[0])
    map_y = np.clip(rows, 0, height - 1).astype(np.float32).reshape(size[1], size[0])
    rgb = cv2.remap(blurred, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rgba = np.ones((size[1], size[0], 4), dtype=np.float32)
    rgba[..., :3] = rgb
    return rgba
