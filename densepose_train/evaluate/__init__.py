"""Evaluation of DensePose predictions: box, mask, GPS and GPSm AP (DensePose's protocol).

`evaluate_predictions` and `format_table` are the entry points (`coco_metrics.py`); GPS scoring
on pycocotools is in `gps.py`, surface distances in `geodesics.py`.
"""
from densepose_train.evaluate.coco_metrics import TASKS, evaluate_predictions, format_table

__all__ = ["evaluate_predictions", "format_table", "TASKS"]
