"""Training engines behind one command line.

`torchvision` (default) needs only PyPI packages; `detectron2` drives detectron2's own DensePose
trainer and evaluator when the user has installed them from their repositories. Each engine
module exposes `run(command, args, cfg) -> int` for command in train | evaluate | predict.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import TrainUserError

ENGINES = ("torchvision", "detectron2")

DETECTRON2_INSTALL = (
    "--engine detectron2 needs detectron2 and its DensePose project, which no package index has: "
    "pip install 'git+https://github.com/facebookresearch/detectron2.git' "
    "'git+https://github.com/facebookresearch/detectron2.git#subdirectory=projects/DensePose' "
    "(or use the default --engine torchvision)"
)


def get_engine(name: str) -> ModuleType:
    """The engine module for `name`; a missing detectron2 engine is a one-line user error."""
    if name not in ENGINES:
        raise TrainUserError(f"--engine {name!r} is unknown: use one of {', '.join(ENGINES)}")
    module = f"{__name__}.{name}_engine"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if name == "detectron2" and (missing == module or missing.startswith(("detectron2", "densepose"))):
            raise TrainUserError(DETECTRON2_INSTALL) from None
        raise
