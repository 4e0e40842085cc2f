"""One PNG of N samples with their IUV overlaid, to see a dataset's variety at a glance.

`python farm/contact_sheet.py DIR [--num 16] [--columns 4] [--tile 256] [--out FILE]`
(also `python -m farm contact-sheet DIR ...`). Each tile shows the image and, beside it,
the image with the parts coloured and U/V iso-lines drawn every 0.1, the usual way of
looking at DensePose output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()


def iuv_overlay(image: np.ndarray, I: np.ndarray, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Parts in colour (half transparent) and white/black U/V iso-lines over the image."""
    colours = cv2.applyColorMap(np.linspace(0, 255, 25).astype(np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0]
    body = I > 0
    overlay = image.copy()
    overlay[body] = (0.45 * image[body] + 0.55 * colours[I[body]]).astype(np.uint8)
    for channel, colour in ((U, (255, 255, 255)), (V, (0, 0, 0))):
        levels = np.floor(channel * 10).astype(np.int16)
        edge = np.zeros_like(body)
        edge[:, 1:] |= (levels[:, 1:] != levels[:, :-1]) & body[:, 1:] & body[:, :-1] & (I[:, 1:] == I[:, :-1])
        edge[1:] |= (levels[1:] != levels[:-1]) & body[1:] & body[:-1] & (I[1:] == I[:-1])
        overlay[edge] = colour
    return overlay


def tile(out_dir: Path, stem: str, image_name: str, size: int) -> np.ndarray:
    from densesynth.decode.iuv_exr import read_iuv_exr
    from densesynth.errors import UserError

    image = cv2.imread(str(out_dir / "images" / image_name), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read {out_dir / 'images' / image_name}: render the sample again")
    maps = read_iuv_exr(out_dir / "iuv" / f"{stem}.exr")
    pair = np.hstack([image, iuv_overlay(image, maps.I.astype(np.int64), maps.U, maps.V)])
    scale = size / max(image.shape[:2])
    pair = cv2.resize(pair, (round(pair.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.full((size, 2 * size, 3), 24, np.uint8)
    canvas[: pair.shape[0], : pair.shape[1]] = pair
    cv2.putText(canvas, stem, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def contact_sheet(out_dir: Path, num: int, columns: int, size: int) -> np.ndarray:
    from densesynth.errors import UserError

    records = sorted((out_dir / "records").glob("*.json"))[:num] if (out_dir / "records").is_dir() else []
    if not records:
        raise UserError(f"{out_dir} holds no rendered samples (no records/*.json): render into it first")
    import json

    tiles = [tile(out_dir, path.stem, json.loads(path.read_text())["image"]["file_name"], size) for path in records]
    rows = [np.hstack(tiles[i : i + columns] + [np.zeros_like(tiles[0])] * (columns - len(tiles[i : i + columns])))
            for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> int:
    from densesynth.errors import UserError
    from densesynth.io_utils import atomic_write_bytes

    parser = argparse.ArgumentParser(prog="contact-sheet", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="a folder written by farm/render.py")
    parser.add_argument("--num", type=int, default=16)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--tile", type=int, default=256, help="tile height in pixels")
    parser.add_argument("--out", type=Path, help="PNG to write (default DIR/contact_sheet.png)")
    args = parser.parse_args(argv)
    try:
        sheet = contact_sheet(args.out_dir, args.num, args.columns, args.tile)
    except UserError as exc:
        print(f"contact-sheet: error: {exc}", file=sys.stderr)
        return 2
    target = args.out or args.out_dir / "contact_sheet.png"
    ok, data = cv2.imencode(".png", sheet)
    atomic_write_bytes(target, data.tobytes())
    print(f"wrote {target} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
