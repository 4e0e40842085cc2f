"""DensePose R-CNN (torchvision-based): model, DensePose head, chart losses and per-detection results."""
from .outputs import DensePoseResult, paste_in_image, result_grid
from .rcnn import LOSS_DEFAULTS, MODEL_DEFAULTS, DensePoseRCNN, build_model, resolve_options

__all__ = [
    "DensePoseRCNN", "DensePoseResult", "LOSS_DEFAULTS", "MODEL_DEFAULTS", "build_model", "paste_in_image",
    "resolve_options", "result_grid",
]
