"""Box, mask, GPS and GPSm AP of DensePose predictions: the numbers DensePose's model zoo reports.

What each task is (as detectron2's DensePose training reports them):
- `bbox`: detectron2's COCOEvaluator box AP, i.e. plain pycocotools COCOeval "bbox" (IoU
  0.5:0.95, maxDets 1/10/100, areas all/small/medium/large; AR = AR@100).
- `segm`, `gps`, `gpsm`: DensePoseCOCOEvaluator's `densepose_segm`, `densepose_gps` and
  `densepose_gpsm` (`projects/DensePose/densepose/evaluation/evaluator.py` with
  `densepose_coco_evaluation.py`), see `gps.py`: maxDets 20, areas all/medium/large, so APs and
  ARs are None. The segm of DensePose models is this DensePose IoU mode (they have no mask head).

Values are percentages; pycocotools' -1 ("no ground truth for this entry") is None.
`metrics.json` (sorted keys) adds an `info` entry: the dp convention and its meaning, the kappa
table, the geodesic method and its measured error, and the counts of images, people and
predictions.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from densepose_train.errors import TrainUserError
from densepose_train.evaluate import geodesics
from densepose_train.evaluate.gps import (CONVENTIONS, KAPPA_2018, KAPPA_2019, MODES,
                                          DensePoseCOCOeval, DensePoseScorer, summarize_eval)

__all__ = ["evaluate_predictions", "format_table", "TASKS", "TABLE_COLUMNS"]

TASKS = ("bbox", "segm", "gps", "gpsm")
TABLE_COLUMNS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75")
_CHARTS_FIX = ("GPS needs the body surface the ground truth's charts live on: pass the dataset's charts.npz "
               "(every DenseSynth render writes DIR/charts.npz; for DensePose-COCO build one from your SMPL file)")


def evaluate_predictions(gt: str | Path | Mapping[str, Any], predictions: Sequence[Mapping[str, Any]],
                         charts: Any, out_dir: str | Path | None = None, dp_convention: str = "exact", *,
                         kappa: str | float = "2019", geodesic_cache: str | Path | None | bool = None,
                         ) -> dict[str, dict[str, float | None]]:
    """bbox, segm, gps and gpsm metrics of `predictions` against a COCO-DensePose ground truth.

    gt: a json path or the loaded dict. predictions: dicts with image_id, category_id (default 1),
    bbox XYWH, score, densepose (DensePoseResult over the box grid, or None). charts: a
    ChartSurface (or a charts.npz path). dp_convention: "exact" (DenseSynth's pixel-centre
    points) or "densepose" (DensePose's evaluator, for DensePose-COCO numbers), see
    `gps.CONVENTIONS`. kappa: "2019" (per part), "2018" (0.255) or metres.
    geodesic_cache: None = the user cache folder, False = memory only, or a folder.
    Returns {task: {metric: percent or None}}; writes `out_dir/metrics.json` when given.
    """
    if dp_convention not in CONVENTIONS:
        raise TrainUserError(f"dp convention {dp_convention!r} is unknown: use one of {', '.join(sorted(CONVENTIONS))}")
    if charts is None:
        raise TrainUserError(_CHARTS_FIX)
    if isinstance(charts, (str, Path)):
        from densepose_train.charts import ChartSurface

        charts = ChartSurface.load(charts)
    dataset = _load_gt(gt)
    predictions = list(predictions)
    _check_predictions(predictions, dataset)

    coco_gt = _coco(_with_defaults(dataset, for_densepose=False))
    coco_dp = _coco(_with_defaults(dataset, for_densepose=True))
    rows = [{"image_id": p["image_id"], "category_id": int(p.get("category_id", 1)),
             "bbox": [float(v) for v in p["bbox"]], "score": float(p["score"])} for p in predictions]
    results = {k + 1: p.get("densepose") for k, p in enumerate(predictions)}  # loadRes numbers ids from 1

    bbox_eval = COCOeval(coco_gt, _load_results(coco_gt, rows), iouType="bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        bbox_eval.evaluate()
        bbox_eval.accumulate()
    metrics: dict[str, dict[str, float | None]] = {"bbox": summarize_eval(bbox_eval, max_det=100)}

    distances = geodesics.for_surface(charts, cache_dir=geodesic_cache)
    coco_dt = _load_results(coco_dp, rows)
    scorer = DensePoseScorer(coco_dp, results, charts, distances, convention=dp_convention, kappa=kappa)
    for mode in MODES:
        metrics[mode] = DensePoseCOCOeval(coco_dp, coco_dt, scorer, mode).run()

    metrics = {task: metrics[task] for task in TASKS}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        info = _info(dataset, predictions, dp_convention, kappa, distances)
        (out / "metrics.json").write_text(json.dumps({**metrics, "info": info}, indent=2, sort_keys=True) + "\n")
    return metrics


def format_table(metrics: Mapping[str, Mapping[str, float | None]]) -> str:
    """Rows = tasks, columns AP AP50 AP75 APm APl AR AR50 AR75 (percent, two decimals, '-' for None)."""
    lines = [f"{'task':<6}" + "".join(f"{c:>8}" for c in TABLE_COLUMNS)]
    for task in TASKS:
        if task not in metrics:
            continue
        cells = [metrics[task].get(c) for c in TABLE_COLUMNS]
        lines.append(f"{task:<6}" + "".join(f"{'-':>8}" if v is None else f"{v:8.2f}" for v in cells))
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers
def _load_gt(gt: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(gt, (str, Path)):
        path = Path(gt)
        if not path.is_file():
            raise TrainUserError(f"{path}: ground-truth annotation file not found; pass a COCO-DensePose json")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainUserError(f"{path}: not a readable COCO json ({type(exc).__name__}); "
                                 "pass a COCO-DensePose json") from None
        name = str(path)
    else:
        data, name = dict(gt), "ground truth"
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)
            and isinstance(data.get("annotations"), list)):
        raise TrainUserError(f"{name}: needs 'images' and 'annotations' lists; pass a COCO-DensePose json")
    for img in data["images"]:
        if not all(k in img for k in ("id", "height", "width")):
            raise TrainUserError(f"{name}: every image needs id, height and width; fix the annotation file")
    for ann in data["annotations"]:
        if not all(k in ann for k in ("id", "image_id", "bbox")):
            raise TrainUserError(f"{name}: every annotation needs id, image_id and bbox; fix the annotation file")
        if "dp_x" in ann:
            sizes = {len(ann.get(k) or []) for k in ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")}
            if len(sizes) != 1:
                raise TrainUserError(f"{name}: annotation {ann['id']} has dp_x, dp_y, dp_I, dp_U, dp_V of different "
                                     "lengths; fix the annotation file")
    return data


def _with_defaults(data: dict[str, Any], for_densepose: bool) -> dict[str, Any]:
    """A copy pycocotools can use (and mutate): iscrowd, area and categories filled where missing;
    for the DensePose modes num_keypoints = 1 exactly for people with dp_x (DensePose's ignore rule)."""
    images = {img["id"]: img for img in data["images"]}
    anns = []
    for ann in data["annotations"]:
        ann = dict(ann)
        ann.setdefault("category_id", 1)
        ann["iscrowd"] = int(ann.get("iscrowd", 0) or 0)
        if "area" not in ann:
            ann["area"] = _area(ann, images.get(ann["image_id"]))
        if for_densepose:
            ann["num_keypoints"] = 1 if "dp_x" in ann else 0
        anns.append(ann)
    out = {k: v for k, v in data.items() if k not in ("annotations",)}
    out["annotations"] = anns
    out["images"] = [dict(img) for img in data["images"]]
    if not out.get("categories"):
        out["categories"] = [{"id": 1, "name": "person"}]
    return out


def _area(ann: dict[str, Any], img: dict[str, Any] | None) -> float:
    segm = ann.get("segmentation")
    if segm and img is not None:
        if isinstance(segm, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, img["height"], img["width"]))
        elif isinstance(segm.get("counts"), list):
            rle = mask_utils.frPyObjects(segm, img["height"], img["width"])
        else:
            rle = segm
        return float(mask_utils.area(rle))
    return float(ann["bbox"][2]) * float(ann["bbox"][3])


def _coco(dataset: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _load_results(coco_gt: COCO, rows: list[dict[str, Any]]) -> COCO:
    """pycocotools' loadRes (box area, ids from 1), or an empty result set (loadRes cannot)."""
    if rows:
        with contextlib.redirect_stdout(io.StringIO()):
            return coco_gt.loadRes(copy.deepcopy(rows))
    empty = {"images": list(coco_gt.dataset["images"]), "categories": copy.deepcopy(coco_gt.dataset["categories"]),
             "annotations": []}
    return _coco(empty)


def _check_predictions(predictions: list[Mapping[str, Any]], data: dict[str, Any]) -> None:
    image_ids = {img["id"] for img in data["images"]}
    for k, p in enumerate(predictions):
        for key in ("image_id", "bbox", "score"):
            if key not in p:
                raise ValueError(f"prediction {k} lacks {key!r}")
        if p["image_id"] not in image_ids:
            raise TrainUserError(f"prediction for image_id {p['image_id']!r}, which the ground truth does not have; "
                                 "evaluate against the annotation file the images came from")
        if len(p["bbox"]) != 4:
            raise ValueError(f"prediction {k}: bbox must be [x, y, w, h]")
        res = p.get("densepose")
        if res is not None:
            labels, uv = np.asarray(res.labels), np.asarray(res.uv)
            if labels.ndim != 2 or uv.shape != (2,) + labels.shape:
                raise ValueError(f"prediction {k}: densepose labels {labels.shape} and uv {uv.shape} do not agree")


def _info(data: dict[str, Any], predictions: list, convention: str, kappa: str | float,
          distances: geodesics.GeodesicDistances) -> dict[str, Any]:
    anns = data["annotations"]
    if isinstance(kappa, str) and kappa == "2019":
        kappa_info: Any = {"metric": "2019 (DensePose Mean_Distances per coarse part)", "metres": dict(KAPPA_2019)}
    else:
        kappa_info = {"metric": "2018 (fixed)" if kappa == "2018" else "fixed",
                      "metres": KAPPA_2018 if kappa == "2018" else float(kappa)}
    return {
        "dp_convention": convention,
        "dp_convention_meaning": CONVENTIONS[convention],
        "kappa": kappa_info,
        "geodesics": {"method": geodesics.METHOD, "error": geodesics.STATED_ERROR,
                      "mesh_vertices": distances.num_vertices},
        "protocol": ("bbox: pycocotools COCOeval bbox; segm/gps/gpsm: detectron2 DensePose "
                     "densepose_coco_evaluation.py modes IOU/GPS/GPSM (maxDets 20, areas all/medium/large) "
                     "on pycocotools matching"),
        "num_images": len(data["images"]),
        "num_instances": sum(1 for a in anns if not a.get("iscrowd")),
        "num_densepose_instances": sum(1 for a in anns if "dp_x" in a and not a.get("iscrowd")),
        "num_predictions": len(predictions),
    }
