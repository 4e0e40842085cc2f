"""Torch dataset over one COCO-DensePose source: `(image, target)` as the model consumes them.

`image`: float32 (3, H, W) RGB in 0..255 (the model normalises and reorders channels, so
detectron2's BGR weights work). `target`: `boxes` (N, 4) float32 XYXY pixels, `labels` (N,)
int64 ones, `image_id`, `orig_size` (H, W), `scale` 1.0 (the model resizes), `dataset_index`,
`flipped`, `densepose` (N entries, `DensePoseTarget` or None), and `masks` (N, H, W) uint8 when
asked for and every person has a segmentation. Crowds and empty boxes (w or h <= 0, which
detectron2 also drops) are left out.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from densepose_train.data.coco_densepose import CocoDensePose, ImageEntry, Instance, decode_segmentation
from densepose_train.data.symmetry import SymmetryTables
from densepose_train.data.targets import DensePoseTarget
from densepose_train.data.transforms import hflip
from densepose_train.errors import TrainUserError

__all__ = ["DensePoseDataset", "collate"]


def collate(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Lists, not stacks: images differ in size and the model batches them itself."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


def _dp_target(instance: Instance) -> DensePoseTarget | None:
    dp = instance.dp
    if dp is None:
        return None
    mask = dp.mask_image()
    return DensePoseTarget(
        x=torch.from_numpy(dp.x.copy()), y=torch.from_numpy(dp.y.copy()),
        i=torch.from_numpy(dp.i.astype(np.int64)), u=torch.from_numpy(dp.u.copy()), v=torch.from_numpy(dp.v.copy()),
        mask=None if mask is None else torch.from_numpy(mask),
    )


class DensePoseDataset(Dataset):
    """One `--data` source.

    train=True: DensePose's training images (`CocoDensePose.training_entries`) and a random
    horizontal flip with probability `flip_prob` (torch's RNG, so DataLoader workers are
    seeded by torch); train=False: every image (`evaluation_entries`), never flipped.
    `symmetry` (this source's chart tables) is required when flipping.
    """

    def __init__(self, coco: CocoDensePose, dataset_index: int = 0, train: bool = True, flip_prob: float = 0.0,
                 symmetry: SymmetryTables | None = None, with_masks: bool = False):
        if not 0.0 <= flip_prob <= 1.0:
            raise TrainUserError(f"flip probability {flip_prob} is outside [0, 1]; set it between 0 and 1")
        self.coco = coco
        self.dataset_index = dataset_index
        self.train = train
        self.flip_prob = flip_prob if train else 0.0
        self.with_masks = with_masks
        self.entries: list[ImageEntry] = coco.training_entries() if train else coco.evaluation_entries()
        if train and not self.entries:
            raise TrainUserError(f"{coco.json_path}: no image has a person with DensePose points to train on; "
                                 "pass a DensePose-COCO or DenseSynth annotations file")
        if self.flip_prob > 0 and symmetry is None:
            raise TrainUserError(f"{coco.json_path}: flip augmentation needs this source's chart symmetry: put its "
                                 "charts.npz next to it, pass DensePose's UV_symmetry_transforms.mat, or turn flips off")
        self.symmetry = symmetry

    def __len__(self) -> int:
        return len(self.entries)

    def target(self, index: int) -> dict[str, Any]:
        """The unflipped target of item `index` (without reading the image)."""
        entry = self.entries[index]
        people = [inst for inst in entry.instances
                  if not inst.iscrowd and inst.bbox[2] > 0 and inst.bbox[3] > 0]
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (p.bbox for p in people)],
                             dtype=torch.float32).reshape(-1, 4)
        target: dict[str, Any] = {
            "boxes": boxes,
            "labels": torch.ones(len(people), dtype=torch.int64),
            "image_id": entry.image_id,
            "orig_size": (entry.height, entry.width),
            "scale": 1.0,
            "dataset_index": self.dataset_index,
            "flipped": False,
            "densepose": [_dp_target(p) for p in people],
        }
        if self.with_masks and people and all(p.segmentation for p in people):
            target["masks"] = torch.from_numpy(np.stack(
                [decode_segmentation(p.segmentation, entry.height, entry.width) for p in people]))
        return target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        entry = self.entries[index]
        rgb = self.coco.read_image(entry)
        image = torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32)
        target = self.target(index)
        if self.flip_prob > 0 and float(torch.rand(())) < self.flip_prob:
            image, target = hflip(image, target, self.symmetry)
        return image, target
