"""GPS, GPSm and DensePose mask AP the way DensePose computes them, on pycocotools' COCOeval.

The protocol is detectron2's `projects/DensePose/densepose/evaluation/densepose_coco_evaluation.py`
(`DensePoseCocoEval`, modes GPS, GPSM and IOU) driven by `densepose/evaluation/evaluator.py`
(`_evaluate_predictions_on_coco`); matching, accumulation and summaries are left to pycocotools:
`DensePoseCOCOeval` subclasses `COCOeval` with iouType "keypoints", whose parameters are exactly
DensePose's `setUvParams` (GPS thresholds 0.5:0.05:0.95, maxDets 20, areas all / medium / large,
summary AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl), and overrides `computeOks` to
return the DensePose score of every (detection, ground truth) pair instead of OKS.

Per pair (DensePose's `computeOgps`):
- GPS = mean over the GT person's points of exp(-d^2 / (2 kappa^2)), d the geodesic distance
  between the GT point's and the predicted point's nearest mesh vertices (`ChartSurface.locate`,
  as DensePose's `findAllClosestVerts*`), kappa by the GT point's part: the 2019 metric's
  `Mean_Distances[CoarseParts[I]]` (`KAPPA_2019`), or the 2018 paper's fixed 0.255.
  A point outside the detection's box, or where the prediction is background (label 0), scores
  0 (DensePose: vertex 0 -> distance inf). A pair where no point falls in the box scores 0.
- GPSm = sqrt(GPS x mask IoU) and the segm score = mask IoU, masks as `computeDPIoU`: the
  prediction's `labels > 0` pasted into the image at its grid; the GT's `dp_masks` resized to the
  box (or its `segmentation` when it has no dp_masks), see `CONVENTIONS`.
- GT people without `dp_x` (and crowds) are ignored (`gt["ignore"]`), via pycocotools' keypoint
  rule with num_keypoints = "has dp_x" (`DensePoseCOCOeval` needs that GT copy, see
  `coco_metrics._with_defaults`).
- Matching: pycocotools' `evaluateImg` is DensePose's first pass (greedy by score over the
  thresholds); `evaluateImg` then applies DensePose's two extra rules exactly: in an image (and
  area range) where every GT is ignored, or that has no GT, all detections are ignored; and its
  second pass on box IoU >= 0.8 (`_box_pass`, with DensePose's quirks kept).

Checked against a transcription of DensePose's own `evaluateImg` (first pass with its
`new_iou == 0` rule, second pass, area rule) on 40 random images with people with and without
points, duplicates and stray detections: identical summaries in all three modes.

Deviations from DensePose (stated):
- geodesics on the chart surface's own mesh (`geodesics.py`), not `Pdist_matrix.pkl`;
- `ignore_regions_x/y` images (not in DensePose-COCO) are not supported;
- no predictions at all gives AP 0 (pycocotools on an empty result set), where DensePose's
  evaluator reports -1.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.ndimage import zoom

__all__ = ["KAPPA_2019", "KAPPA_2018", "COARSE_OF_FINE", "CONVENTIONS", "MODES", "kappa_per_part",
           "DensePoseScorer", "DensePoseCOCOeval", "summarize_eval", "METRIC_KEYS"]

# DensePose's `Mean_Distances[1:]` (metres), per coarse group of `CoarseParts`.
KAPPA_2019 = {"torso": 0.351, "hands": 0.107, "feet": 0.126, "upper legs": 0.237, "lower legs": 0.173,
              "upper arms": 0.142, "lower arms": 0.128, "head": 0.150}
KAPPA_2018 = 0.255
# DensePose's `CoarseParts`: fine part I (0..24) -> group 1..8 of KAPPA_2019 (in its order).
COARSE_OF_FINE = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8)
MODES = ("gps", "gpsm", "segm")
BOX_IGNORE_IOU = 0.8  # DensePose's `ioub = 0.8`
METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR", "AR50", "AR75", "ARs", "ARm", "ARl")

CONVENTIONS = {
    "exact": ("a GT point (dp_x, dp_y) is at x = x0 + dp_x * w / 256 (pixel centres, how DenseSynth writes "
              "them), read from the result cell of image pixel floor(x); U, V as predicted (float); GT mask = "
              "`segmentation` (dp_masks sampled at pixel centres where there is none)"),
    "densepose": ("as densepose_coco_evaluation.py: x = x0 + dp_x * w / 255, cell int(x - box x0) with the "
                  "float box corner; U, V quantised to int(255 u) / 255 like DensePose's uint8 results; "
                  "GT mask = dp_masks resized to the box with scipy zoom (segmentation where there are none)"),
}


def kappa_per_part(kappa: str | float = "2019") -> np.ndarray:
    """(25,) kappa in metres indexed by fine part I ("2019" per part, "2018" = 0.255, or a number)."""
    if isinstance(kappa, str) and kappa == "2019":
        groups = np.array([np.nan, *KAPPA_2019.values()])
        return groups[np.array(COARSE_OF_FINE)]
    value = KAPPA_2018 if kappa == "2018" else float(kappa)
    out = np.full(25, value)
    out[0] = np.nan
    return out


@dataclass(frozen=True)
class _GtPoints:
    x: np.ndarray  # (P,) float64 image x as the convention places it
    y: np.ndarray
    vertex: np.ndarray  # (P,) int64 nearest mesh vertex, -1 where the part has no chart
    kappa: np.ndarray  # (P,) float64


class DensePoseScorer:
    """DensePose pair scores (GPS, mask IoU, box IoU) with per-annotation caches, shared by all modes.

    `results` maps detection ids (of `coco_dt`) to DensePoseResult-like objects (`labels` (h, w),
    `uv` (2, h, w)) over the detection's grid: cell (r, c) is image pixel (int(y) + r, int(x) + c)
    (`densepose_train.model.outputs`), or None for a detection without DensePose output.
    """

    def __init__(self, coco_gt: COCO, results: dict[int, Any], charts: Any, geodesics: Any,
                 convention: str = "exact", kappa: str | float = "2019") -> None:
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown dp convention {convention!r}; expected one of {sorted(CONVENTIONS)}")
        self.coco_gt = coco_gt
        self.results = results
        self.charts = charts
        self.geodesics = geodesics
        self.convention = convention
        self.kappa = kappa_per_part(kappa)
        self._gt_points = self._locate_ground_truth()
        self._gt_rle: dict[int, dict] = {}
        self._dt_rle: dict[int, dict] = {}
        self._memo: dict[tuple, np.ndarray] = {}
        self.geodesics.prepare(np.concatenate([p.vertex for p in self._gt_points.values()] or [np.zeros(0, int)]))

    # ------------------------------------------------------------------ ground truth
    def _locate_ground_truth(self) -> dict[int, _GtPoints]:
        """Image positions and mesh vertices of every GT point, with one `locate` call for all."""
        anns = [a for a in self.coco_gt.dataset["annotations"] if "dp_x" in a]
        if not anns:
            return {}
        sizes = [len(a["dp_x"]) for a in anns]
        cat = lambda key: np.concatenate([np.asarray(a[key], dtype=np.float64).reshape(-1) for a in anns])
        I = np.rint(cat("dp_I")).astype(np.int64)
        _, vertex = self.charts.locate(I, cat("dp_U"), cat("dp_V"))
        scale = 255.0 if self.convention == "densepose" else 256.0
        out: dict[int, _GtPoints] = {}
        start = 0
        for ann, size in zip(anns, sizes):
            sl = slice(start, start + size)
            start += size
            gx, gy, gw, gh = (float(v) for v in ann["bbox"])
            px = np.asarray(ann["dp_x"], dtype=np.float64) * gw / scale + gx
            py = np.asarray(ann["dp_y"], dtype=np.float64) * gh / scale + gy
            parts = np.clip(I[sl], 0, 24)
            kappa = self.kappa[parts]
            v = np.where((I[sl] >= 1) & (I[sl] <= 24) & np.isfinite(kappa), vertex[sl], -1)
            out[ann["id"]] = _GtPoints(px, py, v.astype(np.int64), np.nan_to_num(kappa, nan=1.0))
        return out

    # ------------------------------------------------------------------ pair scores
    def _cells(self, pts: _GtPoints, bbox: list[float],
               shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Result-grid (row, col) of each GT point for one detection, and which fall inside it."""
        dx, dy, dw, dh = (float(v) for v in bbox)
        h, w = shape
        if self.convention == "densepose":
            col = (pts.x - dx).astype(np.int64)  # truncation, as DensePose's `.astype(int)`
            row = (pts.y - dy).astype(np.int64)
            inside = (col >= 0) & (row >= 0) & (col < min(int(dw), w)) & (row < min(int(dh), h))
        else:
            col = np.floor(pts.x).astype(np.int64) - int(dx)
            row = np.floor(pts.y).astype(np.int64) - int(dy)
            inside = (col >= 0) & (row >= 0) & (col < w) & (row < h)
        inside &= pts.vertex >= 0
        return row, col, inside

    def gps(self, dts: list[dict], gts: list[dict]) -> np.ndarray:
        """(D, G) GPS; 0 for GT without points (ignored) and detections without DensePose output."""
        key = ("gps", tuple(d["id"] for d in dts), tuple(g["id"] for g in gts))
        if key in self._memo:
            return self._memo[key]
        out = np.zeros((len(dts), len(gts)))
        pair, src, kap, qi, qu, qv = [], [], [], [], [], []
        counts = np.zeros((len(dts), len(gts)))
        for gi, g in enumerate(gts):
            pts = self._gt_points.get(g["id"])
            if pts is None or g.get("ignore"):
                continue
            counts[:, gi] = np.count_nonzero(pts.vertex >= 0)
            for di, d in enumerate(dts):
                res = self.results.get(d["id"])
                if res is None:
                    continue
                labels = np.asarray(res.labels)
                row, col, inside = self._cells(pts, d["bbox"], labels.shape)
                if not inside.any():
                    continue
                r, c = row[inside], col[inside]
                I = labels[r, c].astype(np.int64)
                on = I > 0
                if not on.any():
                    continue
                uv = np.asarray(res.uv)[:, r[on], c[on]].astype(np.float64)
                if self.convention == "densepose":
                    uv = np.floor(np.clip(uv, 0.0, 1.0) * 255.0) / 255.0
                pair.append(np.full(int(on.sum()), di * len(gts) + gi))
                src.append(pts.vertex[inside][on])
                kap.append(pts.kappa[inside][on])
                qi.append(I[on])
                qu.append(uv[0])
                qv.append(uv[1])
        if pair:
            pair_a = np.concatenate(pair)
            _, pred_vertex = self.charts.locate(np.concatenate(qi), np.concatenate(qu), np.concatenate(qv))
            dist = self.geodesics.pairwise(np.concatenate(src), pred_vertex).astype(np.float64)
            kap_a = np.concatenate(kap)
            term = np.exp(-dist ** 2 / (2.0 * kap_a ** 2))
            sums = np.bincount(pair_a, weights=term, minlength=len(dts) * len(gts)).astype(np.float64)
            sums = sums.reshape(len(dts), len(gts))
            out = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        self._memo[key] = out
        return out

    def mask_iou(self, dts: list[dict], gts: list[dict]) -> np.ndarray:
        """(D, G) mask IoU (crowd GT: intersection over the detection's area, as pycocotools)."""
        key = ("mask", tuple(d["id"] for d in dts), tuple(g["id"] for g in gts))
        if key not in self._memo:
            iscrowd = [int(g.get("iscrowd", 0)) for g in gts]
            ious = mask_utils.iou([self._dt_mask(d) for d in dts], [self._gt_mask(g) for g in gts], iscrowd)
            self._memo[key] = np.asarray(ious, dtype=np.float64).reshape(len(dts), len(gts))
        return self._memo[key]

    def box_iou(self, dts: list[dict], gts: list[dict]) -> np.ndarray:
        iscrowd = [int(g.get("iscrowd", 0)) for g in gts]
        ious = mask_utils.iou([list(map(float, d["bbox"])) for d in dts], [list(map(float, g["bbox"])) for g in gts],
                              iscrowd)
        return np.asarray(ious, dtype=np.float64).reshape(len(dts), len(gts))

    def matrix(self, mode: str, dts: list[dict], gts: list[dict]) -> np.ndarray:
        """The (D, G) score of DensePose's first matching pass, for mode "gps", "gpsm" or "segm".

        GPS is 0 on ignored GT (DensePose skips them), so GPSm is too; the segm (IOU) mode uses the
        mask IoU of every GT, ignored ones included, as DensePose's `real_ious`.
        """
        if mode == "segm":
            return self.mask_iou(dts, gts)
        score = self.gps(dts, gts)
        if mode == "gpsm":
            score = np.sqrt(score * self.mask_iou(dts, gts))
        return score

    # ------------------------------------------------------------------ masks
    def _image_hw(self, image_id: int) -> tuple[int, int]:
        img = self.coco_gt.imgs[image_id]
        return int(img["height"]), int(img["width"])

    def _dt_mask(self, d: dict) -> dict:
        if d["id"] not in self._dt_rle:
            height, width = self._image_hw(d["image_id"])
            res = self.results.get(d["id"])
            mask = None if res is None else (np.asarray(res.labels) > 0).astype(np.uint8)
            self._dt_rle[d["id"]] = _encode(_paste(mask, d["bbox"], height, width))
        return self._dt_rle[d["id"]]

    def _gt_mask(self, g: dict) -> dict:
        if g["id"] not in self._gt_rle:
            height, width = self._image_hw(g["image_id"])
            segm = g.get("segmentation")
            has_segm = bool(segm) and not (isinstance(segm, list) and len(segm) == 0)
            has_dp = "dp_masks" in g and isinstance(g["dp_masks"], (list, tuple))
            if self.convention == "densepose" and has_dp or (not has_segm and has_dp):
                part_mask = _dp_union(g["dp_masks"])
                if self.convention == "densepose":
                    rle = _encode(_paste(_zoom_to_box(part_mask, g["bbox"]), g["bbox"], height, width))
                else:
                    rle = _encode(_sample_box_frame(part_mask, g["bbox"], height, width))
            elif has_segm:
                rle = self.coco_gt.annToRLE(g)
            else:
                rle = _encode(np.zeros((height, width), dtype=np.uint8))
            self._gt_rle[g["id"]] = rle
        return self._gt_rle[g["id"]]


def _encode(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _dp_union(dp_masks: Iterable[Any]) -> np.ndarray:
    """(256, 256) float foreground of DensePose's 14 part RLEs (`getDensePoseMask`, then min(., 1))."""
    out = np.zeros((256, 256))
    for rle in list(dp_masks)[:14]:
        if rle:
            out[mask_utils.decode(rle) > 0] = 1.0
    return out


def _zoom_to_box(mask256: np.ndarray, bbox: list[float]) -> np.ndarray:
    """DensePose's resize of a 256 x 256 box-frame mask to the box: scipy zoom, order 1, > 0.5."""
    _, _, w, h = (float(v) for v in bbox)
    scaled = zoom(mask256, (max(h, 1.0) / mask256.shape[0], max(w, 1.0) / mask256.shape[1]), order=1,
                  prefilter=False)
    return (scaled > 0.5).astype(np.uint8)


def _paste(mask: np.ndarray | None, bbox: list[float], height: int, width: int) -> np.ndarray:
    """A box-grid mask in the image at (int(x), int(y)), clipped (DensePose's `_generate_rlemask_on_image`)."""
    out = np.zeros((height, width), dtype=np.uint8)
    if mask is None:
        return out
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = max(int(x), 0), max(int(y), 0)
    x1 = min(int(x + w), width, int(x) + mask.shape[1])
    y1 = min(int(y + h), height, int(y) + mask.shape[0])
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = mask[y0 - int(y):y1 - int(y), x0 - int(x):x1 - int(x)]
    return out


def _sample_box_frame(mask256: np.ndarray, bbox: list[float], height: int, width: int) -> np.ndarray:
    """A 256 x 256 box-frame mask read at the centre of every image pixel inside the box."""
    x, y, w, h = (float(v) for v in bbox)
    out = np.zeros((height, width), dtype=np.uint8)
    if w <= 0 or h <= 0:
        return out
    c0, c1 = max(int(np.floor(x)), 0), min(int(np.ceil(x + w)), width)
    r0, r1 = max(int(np.floor(y)), 0), min(int(np.ceil(y + h)), height)
    if c1 <= c0 or r1 <= r0:
        return out
    u = (np.arange(c0, c1) + 0.5 - x) / w * 256.0
    v = (np.arange(r0, r1) + 0.5 - y) / h * 256.0
    cu, cv = (u >= 0) & (u < 256), (v >= 0) & (v < 256)
    iu, iv = np.clip(u.astype(np.int64), 0, 255), np.clip(v.astype(np.int64), 0, 255)
    block = mask256[iv][:, iu] > 0
    out[r0:r1, c0:c1] = block & cv[:, None] & cu[None, :]
    return out


class DensePoseCOCOeval(COCOeval):
    """COCOeval whose keypoint "OKS" is a DensePose score (see the module docstring).

    `coco_gt` must carry `num_keypoints` = 1 for people with dp_x, else 0 (`prepare_gt` does
    that), so that pycocotools' keypoint ignore rule is DensePose's.
    """

    def __init__(self, coco_gt: COCO, coco_dt: COCO, scorer: DensePoseScorer, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown DensePose evaluation mode {mode!r}; expected one of {MODES}")
        with contextlib.redirect_stdout(io.StringIO()):
            super().__init__(coco_gt, coco_dt, iouType="keypoints")
        self.scorer = scorer
        self.mode = mode

    def computeOks(self, imgId: int, catId: int) -> np.ndarray | list:  # noqa: N802 (pycocotools' name)
        p = self.params
        gts = self._gts[imgId, catId]
        dts = self._dts[imgId, catId]
        order = np.argsort([-d["score"] for d in dts], kind="mergesort")
        dts = [dts[i] for i in order][:p.maxDets[-1]]
        if len(gts) == 0 or len(dts) == 0:
            return []
        return self.scorer.matrix(self.mode, dts, gts)

    def evaluateImg(self, imgId: int, catId: int, aRng: list[float], maxDet: int) -> dict | None:  # noqa: N802
        """pycocotools' matching (DensePose's first pass), then DensePose's two extra rules."""
        result = super().evaluateImg(imgId, catId, aRng, maxDet)
        if result is None:
            return None
        gt_ignore = np.asarray(result["gtIgnore"], dtype=bool)
        dt_ignore = np.asarray(result["dtIgnore"], dtype=bool)
        if np.all(gt_ignore):  # no annotated person in this image and area range: nothing to score
            result["dtIgnore"] = np.ones_like(dt_ignore)
            return result
        dts = [self.cocoDt.anns[i] for i in result["dtIds"]]
        gts = [self.cocoGt.anns[i] for i in result["gtIds"]]
        if dts and gts:
            self._box_pass(result, dts, gts, gt_ignore, dt_ignore, aRng)
        return result

    def _box_pass(self, result: dict, dts: list[dict], gts: list[dict], gt_ignore: np.ndarray,
                  dt_ignore: np.ndarray, aRng: list[float]) -> None:
        """DensePose's second pass, as it is: a detection unmatched at the LAST threshold takes the
        ignore flag of the unmatched GT it overlaps most with box IoU >= 0.8, at every threshold
        (so one that overlaps a person without points is ignored even where it was a true
        positive); an ignored GT found this way counts as matched at the last threshold."""
        dtm, gtm = result["dtMatches"], result["gtMatches"]
        box = self.scorer.box_iou(dts, gts)
        iscrowd = [int(g.get("iscrowd", 0)) for g in gts]
        for d in range(len(dts)):
            if dtm[-1, d] != 0:
                continue
            best, m = BOX_IGNORE_IOU, -1
            for g in range(len(gts)):
                if gtm[-1, g] > 0 and not iscrowd[g]:
                    continue
                if box[d, g] < best:
                    continue
                best, m = box[d, g], g
            if m > -1:
                dt_ignore[:, d] = gt_ignore[m]
                if gt_ignore[m]:
                    dtm[-1, d] = gts[m]["id"]
                    gtm[-1, m] = dts[d]["id"]
        outside = np.array([d["area"] < aRng[0] or d["area"] > aRng[1] for d in dts])[None, :]
        result["dtIgnore"] = dt_ignore | ((dtm == 0) & outside)

    def run(self) -> dict[str, float | None]:
        """evaluate + accumulate (quietly) and the summary in percent."""
        with contextlib.redirect_stdout(io.StringIO()):
            self.evaluate()
            self.accumulate()
        return summarize_eval(self, max_det=20)


def summarize_eval(E: COCOeval, max_det: int) -> dict[str, float | None]:
    """METRIC_KEYS in percent from an accumulated COCOeval (pycocotools' `_summarize` rule: mean of
    the entries > -1; None where there are none, or where the area range is not evaluated)."""
    p = E.params
    precision, recall = E.eval["precision"], E.eval["recall"]  # [T, R, K, A, M], [T, K, A, M]
    m = [i for i, d in enumerate(p.maxDets) if d == max_det]

    def value(ap: bool, thr: float | None, area: str) -> float | None:
        a = [i for i, lbl in enumerate(p.areaRngLbl) if lbl == area]
        if not a or not m:
            return None
        s = precision if ap else recall
        if thr is not None:
            s = s[np.flatnonzero(np.abs(p.iouThrs - thr) < 1e-3)]
        s = s[..., a[0], m[0]]
        s = s[s > -1]
        return float(np.mean(s) * 100.0) if s.size else None

    keys = {"AP": (True, None, "all"), "AP50": (True, 0.5, "all"), "AP75": (True, 0.75, "all"),
            "APs": (True, None, "small"), "APm": (True, None, "medium"), "APl": (True, None, "large"),
            "AR": (False, None, "all"), "AR50": (False, 0.5, "all"), "AR75": (False, 0.75, "all"),
            "ARs": (False, None, "small"), "ARm": (False, None, "medium"), "ARl": (False, None, "large")}
    return {k: value(*args) for k, args in keys.items()}
