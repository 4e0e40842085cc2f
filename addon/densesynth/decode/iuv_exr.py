"""Read the renderer's IUV pass (``DIR/iuv/<stem>.exr``) into label and chart maps.

The EXR is float32 RGBA written by Blender with 1 sample, pixel filter 0 and no denoiser:
R = fine part index I as a float (0 = background), G = U, B = V, A = 1 on the body and 0
elsewhere. Because the pass is exact, a body pixel whose R is not (almost) an integer means
the render settings were wrong (pixel filter or denoiser left on); reading such a file as
labels would silently produce garbage parts, so it is an error by default.
"""

from __future__ import annotations

import os

import numpy as np

from ..core.parts import NUM_FINE_PARTS
from ..core.label_maps import IUVMaps  # re-exported: decode's own result type

__all__ = ["IUVMaps", "IUVDecodeError", "read_iuv_exr"]

# A body pixel's R may differ from its integer label by at most this much (float32 and
# codec noise is ~1e-7; a filtered edge pixel is off by far more).
_LABEL_TOLERANCE = 1e-3


class IUVDecodeError(ValueError):
    """The IUV EXR is missing, unreadable, lacks channels or does not hold exact labels."""


def _read_channels(path: str) -> dict[str, np.ndarray]:
    """All channels of the EXR as separate 2-D arrays, keyed by their full names."""
    import OpenEXR  # imported lazily: only this reader needs the compiled module

    try:
        exr = OpenEXR.File(path, separate_channels=True)
    except Exception as exc:  # OpenEXR raises plain RuntimeError/OSError with no path
        raise IUVDecodeError(f"cannot read IUV EXR {path!r}: {exc}") from exc
    try:
        return {name: np.asarray(ch.pixels) for name, ch in exr.channels().items()}
    finally:
        close = getattr(exr, "close", None)
        if close is not None:
            close()


def _find_channel(channels: dict[str, np.ndarray], letter: str, path: str) -> np.ndarray:
    """The channel named ``letter`` or, in a layered file, ``<layer>.<letter>``.

    Blender's single-layer EXR uses plain R, G, B, A; a multilayer EXR prefixes them with
    view layer and pass names. More than one candidate is ambiguous and an error.
    """
    if letter in channels:
        return channels[letter]
    hits = sorted(name for name in channels if name.rsplit(".", 1)[-1] == letter)
    if len(hits) == 1:
        return channels[hits[0]]
    if not hits:
        raise IUVDecodeError(
            f"IUV EXR {path!r} lacks channel {letter!r} (has {sorted(channels)}); "
            "expected R=I, G=U, B=V, A=coverage"
        )
    raise IUVDecodeError(f"IUV EXR {path!r} has several {letter!r} channels: {hits}")


def read_iuv_exr(path: str | os.PathLike, strict: bool = True) -> IUVMaps:
    """Decode one IUV EXR.

    Args:
        path: the ``.exr`` file.
        strict: raise if a body pixel's R is not within 1e-3 of an integer in 0..24 (the
            tell-tale of a pixel filter or denoiser). With ``strict=False`` such values are
            rounded and clipped to 0..24 instead.

    Raises:
        IUVDecodeError (a ValueError) naming the file when it is missing, unreadable, lacks
        one of R, G, B, A, or (strict) holds non-label values.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IUVDecodeError(f"IUV EXR not found: {path!r}")
    channels = _read_channels(path)
    r, g, b, a = (
        np.asarray(_find_channel(channels, letter, path), dtype=np.float32) for letter in "RGBA"
    )
    if not (r.shape == g.shape == b.shape == a.shape) or r.ndim != 2:
        raise IUVDecodeError(f"IUV EXR {path!r}: channels differ in shape")

    body = a > 0.5
    labels = np.rint(r)
    if strict:
        _check_labels(r, labels, body, path)
    labels = np.where(body, np.clip(labels, 0, NUM_FINE_PARTS), 0).astype(np.uint8)
    on_body = labels > 0
    u = np.where(on_body, g, np.float32(0)).astype(np.float32)
    v = np.where(on_body, b, np.float32(0)).astype(np.float32)
    return IUVMaps(I=labels, U=u, V=v, alpha=a)


def _check_labels(r: np.ndarray, labels: np.ndarray, body: np.ndarray, path: str) -> None:
    """Fail loudly when body pixels do not carry exact integer part labels."""
    # R = 0 under full coverage is allowed: geometry without a chart (e.g. SMPL's two
    # uncharted toe triangles) is opaque but unlabelled, and decodes as background.
    bad = body & (
        (np.abs(r - labels) > _LABEL_TOLERANCE) | (labels < 0) | (labels > NUM_FINE_PARTS)
    )
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise IUVDecodeError(
            f"IUV EXR {path!r}: {rows.size} body pixels hold R values that are not part "
            f"labels 0..{NUM_FINE_PARTS} (e.g. R={float(r[rows[0], cols[0]])!r} at row "
            f"{int(rows[0])}, col {int(cols[0])}); render the label pass with filter size 0 "
            "and the denoiser off"
        )


def read_exr_channel(path: str | os.PathLike, letter: str) -> np.ndarray:
    """One channel (e.g. 'R') of an EXR written by Blender, as float32 (H, W)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise IUVDecodeError(f"EXR not found: {path!r}")
    return _find_channel(_read_channels(path), letter, path).astype(np.float32)


def write_iuv_exr(path: str | os.PathLike, maps: IUVMaps) -> None:
    """Write label maps in the label pass's own layout (float32 RGBA = I, U, V, coverage; ZIP),
    atomically. Used when a post-render step (lens distortion, occluders) changed the labels,
    so the EXR in `iuv/` always describes the image in `images/`."""
    rgba = np.zeros(maps.I.shape + (4,), dtype=np.float32)
    rgba[..., 0] = maps.I
    rgba[..., 1] = np.where(maps.I > 0, maps.U, 0.0)
    rgba[..., 2] = np.where(maps.I > 0, maps.V, 0.0)
    rgba[..., 3] = (maps.I > 0).astype(np.float32)
    write_exr_channels(path, {"RGBA": rgba})


def write_exr_channels(path: str | os.PathLike, channels: dict[str, np.ndarray]) -> None:
    """Write float32 channels (name -> (H, W) array, or "RGBA" -> (H, W, 4)) as a ZIP
    scanline EXR, atomically: the one writer of every EXR the passes produce themselves."""
    import OpenEXR

    from ..io_utils import temporary_sibling

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    path = os.fspath(path)
    tmp = temporary_sibling(path)
    OpenEXR.File(header, {name: np.ascontiguousarray(data, dtype=np.float32) for name, data in channels.items()}
                 ).write(str(tmp))
    os.replace(tmp, path)


# Blender stamps wall-clock statistics into every EXR it writes; without them a sample's
# files are byte-identical wherever and whenever it is rendered.
VOLATILE_EXR_KEYS = ("Date", "RenderTime", "cycles.ViewLayer.render_time", "cycles.ViewLayer.synchronization_time",
                     "cycles.ViewLayer.total_time")


def strip_volatile_metadata(path: str | os.PathLike) -> bool:
    """Rewrite an EXR in place without Blender's timing attributes (pixels and every other
    attribute unchanged); returns whether it had any."""
    import OpenEXR

    exr = OpenEXR.File(os.fspath(path), separate_channels=True)
    if len(exr.parts) > 1:  # a shared exact render's layers: a temporary, split and deleted, never kept
        return False
    header = exr.header()
    if not any(key in header for key in VOLATILE_EXR_KEYS):
        return False
    kept = {key: value for key, value in header.items() if key not in VOLATILE_EXR_KEYS}
    channels = exr.channels()
    OpenEXR.File(kept, channels).write(os.fspath(path))
    return True


def split_aov_layers(path: str | os.PathLike, targets: dict[str, str | os.PathLike]) -> None:
    """Split a shared exact render (a multilayer EXR with one layer per AOV) into one
    single-layer EXR per AOV, so each pass decodes its layer exactly as its own render:
    a VALUE AOV (channel X) becomes R, a COLOR AOV keeps R, G, B. Values are copied as is."""
    import OpenEXR

    path = os.fspath(path)
    try:
        exr = OpenEXR.File(path, separate_channels=True)
    except Exception as exc:
        raise IUVDecodeError(f"cannot read the shared exact render {path!r}: {exc}") from exc
    channels = {name: np.asarray(ch.pixels) for part in exr.parts for name, ch in part.channels.items()}
    for aov, target in targets.items():
        mine = {name.rsplit(".", 1)[-1]: data for name, data in channels.items()
                if name.rsplit(".", 2)[-2:-1] == [aov]}
        if "X" in mine:
            write_exr_channels(target, {"R": mine["X"]})
        elif {"R", "G", "B"} <= set(mine):
            write_exr_channels(target, {c: mine[c] for c in "RGB"})
        else:
            raise IUVDecodeError(f"shared exact render {path!r} lacks layer {aov!r} (has {sorted(channels)})")
