"""A dataset report: one HTML page with PNGs, written from the output folder alone.

`python farm/report.py DIR` (also `python -m farm report DIR`) writes `DIR/report/index.html`:
counts, per-part pixel and point statistics, distributions of every drawn quantity
(camera, body shape, motion, lighting, people), and a contact sheet. It reads the specs,
records and label images, so it works for any run, finished or not, local or distributed.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()

NUMERIC_DRAWS = {
    "camera focal length (mm)": lambda s: [s["camera"]["rig"]["focal_length_mm"] if s["camera"].get("rig")
                                           else s["camera"]["focal_length_mm"]],
    "camera distance (m)": lambda s: [s["camera"]["fitted"]["distance_m"]],
    "camera elevation (deg)": lambda s: [s["camera"]["fitted"]["elevation_deg"]],
    "camera azimuth (deg)": lambda s: [s["camera"]["azimuth_deg"]],
    "sun strength": lambda s: [s["lights"]["sun"]["strength"]],
    "sun colour temperature (K)": lambda s: [s["lights"]["sun"]["temperature_k"]],
    "ambient strength": lambda s: [s["lights"]["ambient"]["strength"]],
    "motion phase": lambda s: [p["motion"]["phase"] for p in s["persons"]],
    "people per image": lambda s: [len(s["persons"])],
    "anny gender / age / weight / height": lambda s: [p["body"]["phenotype"][k] for p in s["persons"]
                                                      if "phenotype" in p["body"]
                                                      for k in ("gender", "age", "weight", "height")],
    "SMPL betas": lambda s: [b for p in s["persons"] for b in p["body"].get("betas", [])],
}
CATEGORICAL_DRAWS = {
    "motion clip": lambda s: [p["motion"]["clip"] for p in s["persons"]],
    "camera rig": lambda s: [(s["camera"].get("rig") or {}).get("name", "random")],
    "environment light": lambda s: [s["lights"]["ambient"].get("kind", "uniform")],
    "top pattern": lambda s: [a.get("top", {}).get("pattern", "texture") for a in s["appearance"]],
    "backdrop": lambda s: [s["backdrop"]["kind"]],
}


def _values(pick, spec: dict) -> list:
    """A draw's values in one spec; none when the spec predates that draw."""
    try:
        return list(pick(spec))
    except (KeyError, TypeError):
        return []


def collect(out_dir: Path) -> dict:
    from densesynth.core.parts import FINE_PART_NAMES

    from densesynth.spec.model import read_spec

    specs = [read_spec(p) for p in sorted((out_dir / "specs").glob("*.json"))]
    records = [json.loads(p.read_text()) for p in sorted((out_dir / "records").glob("*.json"))]
    pixels = np.zeros(25, dtype=np.int64)
    for path in sorted((out_dir / "labels24").glob("*.png")):
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is not None:
            pixels += np.bincount(labels.ravel(), minlength=25)[:25]
    points = np.zeros(25, dtype=np.int64)
    people = 0
    for record in records:
        for annotation in record["annotations"]:
            people += 1
            points += np.bincount(np.asarray(annotation["dp_I"], dtype=int), minlength=25)[:25]
    failed = len(list((out_dir / "failed").glob("*.json"))) if (out_dir / "failed").is_dir() else 0
    return {"specs": specs, "records": len(records), "people": people, "failed": failed, "pixels": pixels,
            "points": points, "part_names": FINE_PART_NAMES}


def _figure_png(path: Path, draw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3), dpi=90)
    draw(axis)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_report(out_dir: Path) -> Path:
    from densesynth.errors import UserError

    data = collect(out_dir)
    if not data["specs"]:
        raise UserError(f"{out_dir} holds no samples (no specs/*.json): render into it first")
    report = out_dir / "report"
    report.mkdir(exist_ok=True)
    figures = []
    names = data["part_names"]

    def parts(axis, values, title):
        axis.bar(range(1, 25), values[1:] / max(values[1:].sum(), 1))
        axis.set_xticks(range(1, 25), [names[i] for i in range(1, 25)], rotation=90, fontsize=5)
        axis.set_title(title, fontsize=9)

    for key, values, title in (("pixels", data["pixels"], "share of body pixels per fine part"),
                               ("points", data["points"], "share of dp points per fine part")):
        _figure_png(report / f"{key}.png", lambda ax, v=values, t=title: parts(ax, v, t))
        figures.append((title, f"{key}.png"))
    for number, (title, pick) in enumerate(NUMERIC_DRAWS.items()):
        values = [v for spec in data["specs"] for v in _values(pick, spec)]
        if values:
            _figure_png(report / f"draw{number}.png", lambda ax, v=values, t=title: (ax.hist(v, bins=20),
                                                                                      ax.set_title(t, fontsize=9)))
            figures.append((title, f"draw{number}.png"))
    for number, (title, pick) in enumerate(CATEGORICAL_DRAWS.items()):
        counts = Counter(v for spec in data["specs"] for v in _values(pick, spec))
        labels = sorted(counts)
        _figure_png(report / f"cat{number}.png", lambda ax, c=counts, k=labels, t=title: (
            ax.bar(range(len(k)), [c[x] for x in k]), ax.set_xticks(range(len(k)), k, rotation=45, fontsize=7),
            ax.set_title(t, fontsize=9)))
        figures.append((title, f"cat{number}.png"))
    from farm.contact_sheet import contact_sheet

    ok, encoded = cv2.imencode(".png", contact_sheet(out_dir, 16, 4, 192))
    (report / "contact_sheet.png").write_bytes(encoded.tobytes())
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in (
        ("samples specified", len(data["specs"])), ("samples finished", data["records"]),
        ("samples failed", data["failed"]), ("annotated people", data["people"]),
        ("DensePose points", int(data["points"].sum())), ("body pixels", int(data["pixels"][1:].sum()))))
    images = "".join(f'<figure><img src="{html.escape(f)}"><figcaption>{html.escape(t)}</figcaption></figure>'
                     for t, f in figures)
    page = (f"<!doctype html><meta charset='utf-8'><title>DenseSynth report: {html.escape(str(out_dir))}</title>"
            "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:.5em}"
            "td{padding:.2em 1em}</style>"
            f"<h1>DenseSynth dataset report</h1><p>{html.escape(str(out_dir.resolve()))}</p>"
            f"<table>{rows}</table><h2>Distributions</h2>{images}"
            "<h2>Contact sheet</h2><img src='contact_sheet.png' style='max-width:100%'>")
    (report / "index.html").write_text(page, encoding="utf-8")
    return report / "index.html"


def main(argv: list[str] | None = None) -> int:
    from densesynth.errors import UserError

    parser = argparse.ArgumentParser(prog="report", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="a folder written by farm/render.py")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.out_dir)
    except UserError as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
