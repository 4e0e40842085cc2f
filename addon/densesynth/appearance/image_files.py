"""The one safe reader for the user's image assets (textures, backdrop photos, occluders).

Asset folders come from the user and from the internet, so every image goes through
:func:`read_image`: only regular files are listed or opened (a FIFO or device never blocks
the run: it is opened non-blocking and refused by type), a file larger than
:data:`MAX_IMAGE_BYTES` is refused, and the pixel count the header declares is checked
against :data:`MAX_IMAGE_PIXELS` *before* anything is decoded (PNG, JPEG and WebP headers are
read here; for other formats OpenCV's own limit applies and its error is reported). Every
refusal is a :class:`UserError` naming the file, raised once: a bad asset stops the run
instead of failing sample after sample.
"""
from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import numpy as np

from ..errors import UserError

MAX_IMAGE_BYTES = 256 << 20  # 256 MiB: far above any texture or photograph
MAX_IMAGE_PIXELS = 100_000_000  # 100 megapixels (10,000 x 10,000)


def image_files(root: str | os.PathLike, suffixes, recursive: bool = True) -> list[Path]:
    """Regular files (symlinks to them included) under `root` with one of `suffixes`, sorted;
    FIFOs, sockets and devices are skipped without being opened."""
    root = Path(root)
    found = []
    for path in (root.rglob("*") if recursive else root.iterdir()):
        if path.suffix.lower() not in suffixes:
            continue
        try:
            if stat.S_ISREG(path.stat().st_mode):
                found.append(path)
        except OSError:
            continue  # a dangling link or a file removed meanwhile
    return sorted(found)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG or WebP header; None when the format is another one
    or the header is too short to tell."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L" and len(data) >= 25:
            bits = int.from_bytes(data[21:25], "little")
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame size of the first SOF marker of a JPEG."""
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        position += 2 + length
    return None


def read_image_bytes(path: str | os.PathLike, what: str) -> bytes:
    """The bytes of one image file: regular files only, opened without blocking, size-limited."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc}): replace or remove the file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{what} {path} is not a regular file (a pipe or device?): remove it from the folder")
        if info.st_size > MAX_IMAGE_BYTES:
            raise UserError(f"{what} {path} is {info.st_size / 2**20:.0f} MiB, more than the "
                            f"{MAX_IMAGE_BYTES >> 20} MiB an image asset may have: shrink or remove it")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_IMAGE_BYTES + 1)
    finally:
        os.close(fd)


def read_image(path: str | os.PathLike, flags: int, what: str = "image") -> np.ndarray:
    """Decode one image asset like ``cv2.imread(path, flags)``, refusing (UserError naming the
    file) what is not a regular file, too large on disk, or declares more than
    MAX_IMAGE_PIXELS pixels (a decompression bomb) before decoding it."""
    import cv2

    data = read_image_bytes(path, what)
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise UserError(f"{what} {os.fspath(path)} declares {size[0]}x{size[1]} pixels, more than the "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels an image asset may have (a decompression bomb?): "
                        "shrink or remove it")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags) if data else None
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
        raise UserError(f"{what} {os.fspath(path)} cannot be decoded ({reason}): replace or remove the file") from None
    if image is None:
        raise UserError(f"{what} {os.fspath(path)} cannot be read: not a valid image file; replace or remove it")
    return image
