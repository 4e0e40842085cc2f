"""How far rendered people are from photographed ones: image statistics of person crops.

`python bench/realism_gap.py [--samples 12] [--resolution 256]`

Renders the same number of samples with the default config, `configs/everything.yaml` and
`configs/realistic.yaml`, crops every synthetic person by its box, and compares simple,
well-understood statistics of the crops with those of real photographs of people that the
project can reach offline (no download): the two portraits bundled in scikit-image's wheel,
`astronaut.png` (Eileen Collins, NASA, public domain) and `camera.png` (a photographer with a
camera, CC0, Lav Varshney; greyscale, so it counts for the greyscale statistics only), and
matplotlib's `grace_hopper.jpg` (Grace Hopper, U.S. Navy photograph, public domain).
A Fréchet distance of backbone features would be the better measure, but no backbone's
weights ship inside a package here (torchvision downloads them), and three photographs are no
distribution: read the figures as a direction (which config is closer on which statistic),
not as a score. With COCO person crops on disk, pass `--real DIR` (a folder of crops) instead.

Statistics per crop (resized to 128 pixels high): colourfulness (Hasler and Suesstrunk),
mean saturation, luminance contrast (standard deviation), mean gradient magnitude, edge
density (Canny) and high-frequency energy (variance of the Laplacian). The gap of a config
is the mean, over statistics, of |synthetic - real| / real of the medians.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()
REPO = Path(__file__).resolve().parents[1]
COLOUR_STATS = ("colourfulness", "saturation")
GREY_STATS = ("contrast", "gradient", "edges", "laplacian")


def crop_statistics(bgr: np.ndarray) -> dict[str, float]:
    import cv2

    height = 128
    bgr = cv2.resize(bgr, (max(8, round(bgr.shape[1] * height / bgr.shape[0])), height), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    b, g, r = (bgr[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    return {
        "colourfulness": colourfulness,
        "saturation": float(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[..., 1].mean()),
        "contrast": float(grey.std()),
        "gradient": float(np.hypot(gx, gy).mean()),
        "edges": float((cv2.Canny(bgr, 100, 200) > 0).mean()),
        "laplacian": float(cv2.Laplacian(grey, cv2.CV_32F).var()),
    }


def real_crops(folder: str | None) -> list[tuple[np.ndarray, bool]]:
    """(BGR image, is colour) of the real photographs of people."""
    import cv2

    if folder:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        return [(cv2.imread(str(p), cv2.IMREAD_COLOR), True) for p in paths]
    import matplotlib
    import skimage

    data = Path(skimage.__file__).parent / "data"
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return [(cv2.imread(str(data / "astronaut.png"), cv2.IMREAD_COLOR), True),
            (cv2.imread(str(data / "camera.png"), cv2.IMREAD_COLOR), False),
            (cv2.imread(str(hopper), cv2.IMREAD_COLOR), True)]


def rendered_crops(config_path: Path | None, samples: int, resolution: int) -> list[np.ndarray]:
    import cv2

    from densesynth.config import config_hash, load_config
    from densesynth.pipeline import SampleRenderer

    config = load_config(config_path, {"render.resolution": [resolution, resolution]})
    crops = []
    with tempfile.TemporaryDirectory() as out:
        renderer = SampleRenderer(config, config_hash(config), 0, Path(out))
        for index in range(samples):
            record = renderer.render(renderer.draw_spec(index))
            image = cv2.imread(str(Path(out) / "images" / record["image"]["file_name"]), cv2.IMREAD_COLOR)
            for annotation in record["annotations"]:
                if annotation.get("source") == "photo":
                    continue
                x, y, w, h = (int(v) for v in annotation["bbox"])
                if h >= 16 and w >= 4:
                    crops.append(image[y : y + h, x : x + w])
    return crops


def medians(rows: list[dict[str, float]], keys) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in keys}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--real", help="a folder of real person crops (default: three bundled portraits)")
    args = parser.parse_args()

    real = real_crops(args.real)
    real_colour = medians([crop_statistics(c) for c, colour in real if colour], COLOUR_STATS + GREY_STATS)
    real_grey = medians([crop_statistics(c) for c, _ in real], GREY_STATS)
    reference = {**real_grey, **{k: real_colour[k] for k in COLOUR_STATS}}
    keys = COLOUR_STATS + GREY_STATS
    print(f"real: {len(real)} photographs; synthetic: {args.samples} samples per config at {args.resolution} px")
    print(f"  {'config':12s} " + " ".join(f"{k:>13s}" for k in keys) + f" {'gap':>6s}")
    print(f"  {'real':12s} " + " ".join(f"{reference[k]:13.3f}" for k in keys))
    for name, path in (("default", None), ("everything", REPO / "configs" / "everything.yaml"),
                       ("realistic", REPO / "configs" / "realistic.yaml")):
        crops = rendered_crops(path, args.samples, args.resolution)
        values = medians([crop_statistics(c) for c in crops], keys)
        gap = float(np.mean([abs(values[k] - reference[k]) / max(abs(reference[k]), 1e-9) for k in keys]))
        print(f"  {name:12s} " + " ".join(f"{values[k]:13.3f}" for k in keys) + f" {gap:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
