"""`--data` sources and their weighted mixing.

A `--data` entry is `PATH[:WEIGHT]`: PATH a DenseSynth output folder or a COCO-DensePose json,
optionally `JSON::IMAGES_DIR` for a json whose images live elsewhere (real DensePose-COCO:
`densepose_coco_2014_train.json::coco/train2014`); WEIGHT a positive number, default 1.
Training draws a source with probability weight / sum of weights, then an image of it
uniformly (`MixedSampler`), so a small real set can be mixed in at a fixed rate whatever the
size of the synthetic one. Each item's target carries `dataset_index` (its source), and
each source flips with its own chart symmetry (`symmetry_for`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import ConcatDataset, Sampler

from densepose_train.charts import ChartSurface, find_charts
from densepose_train.data.coco_densepose import CocoDensePose
from densepose_train.data.dataset import DensePoseDataset
from densepose_train.data.symmetry import SymmetryTables, load_densepose_symmetry, tables_from_surface
from densepose_train.errors import TrainUserError

__all__ = ["DataSource", "parse_data_arg", "MixedSampler", "symmetry_for", "build_training_set", "load_source"]

_BLOCK = 4096  # draws per RNG block; a block's generator is seeded by (seed, block)


@dataclass(frozen=True)
class DataSource:
    """One parsed `--data` entry."""

    text: str
    path: Path
    weight: float
    images_dir: Path | None = None


def parse_data_arg(text: str, option: str = "--data") -> DataSource:
    """Parse `PATH[:WEIGHT]` (PATH may be `JSON::IMAGES_DIR`); a bad weight is a TrainUserError."""
    spec = text.strip()
    fix = "write PATH[:WEIGHT] with a positive weight, e.g. out/run:2 or data.json:0.5"
    if not spec:
        raise TrainUserError(f"{option}: empty value; {fix}")
    body, weight = spec, 1.0
    cut = spec.rfind(":")
    if cut > 0 and spec[cut - 1] != ":" and not Path(spec).exists():
        body, raw = spec[:cut], spec[cut + 1:]
        try:
            weight = float(raw)
        except ValueError:
            raise TrainUserError(f"{option} {text!r}: weight {raw!r} is not a number; {fix}") from None
        if not math.isfinite(weight) or weight <= 0:
            raise TrainUserError(f"{option} {text!r}: weight {raw!r} must be a positive finite number; {fix}")
    path_text, _, images = body.partition("::")
    if not path_text:
        raise TrainUserError(f"{option} {text!r}: no path; {fix}")
    return DataSource(text=text, path=Path(path_text), weight=weight, images_dir=Path(images) if images else None)


class MixedSampler(Sampler[int]):
    """Endless indices into `ConcatDataset(datasets)`: a source by weight, then an item uniformly.

    Deterministic per seed; draw n comes from block n // 4096, whose generator is seeded by
    (seed, block), so `start=n` resumes a run exactly without replaying n draws.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int = 0, start: int = 0):
        if len(sizes) != len(weights) or not sizes:
            raise ValueError("one size and one weight per source")
        if any(n <= 0 for n in sizes):
            raise ValueError("every source needs at least one item")
        weights = np.asarray(weights, dtype=np.float64)
        if not (np.isfinite(weights).all() and (weights > 0).all()):
            raise ValueError("weights must be positive and finite")
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.probabilities = weights / weights.sum()
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.seed = int(seed)
        self.start = int(start)

    def _block(self, block: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, block])
        source = rng.choice(len(self.sizes), size=_BLOCK, p=self.probabilities)
        item = np.minimum((rng.random(_BLOCK) * self.sizes[source]).astype(np.int64), self.sizes[source] - 1)
        return self.offsets[source] + item

    def __iter__(self) -> Iterator[int]:
        block, skip = divmod(self.start, _BLOCK)
        while True:
            for index in self._block(block)[skip:]:
                yield int(index)
            block, skip = block + 1, 0

    def source_of(self, index: int) -> int:
        """Which source a global index belongs to."""
        return int(np.searchsorted(self.offsets, index, side="right") - 1)


def symmetry_for(source: CocoDensePose | Path, densepose_mat: str | Path | None = None,
                 cache_dir: str | Path | None = None) -> SymmetryTables | None:
    """The flip tables of one source, or None when it has neither charts nor a given table.

    A source whose `charts.npz` is not SMPL (anny) always uses tables regenerated from its own
    surface; SMPL sources (or sources without charts, like DensePose-COCO) use DensePose's
    `UV_symmetry_transforms.mat` when given, else tables regenerated from their charts.
    """
    where = source.json_path if isinstance(source, CocoDensePose) else Path(source)
    charts_path = find_charts(where)
    surface = ChartSurface.load(charts_path) if charts_path is not None else None
    if surface is not None and surface.body_kind != "smpl":
        return tables_from_surface(surface, cache_dir=cache_dir)
    if densepose_mat is not None:
        return load_densepose_symmetry(densepose_mat)
    if surface is not None:
        return tables_from_surface(surface, cache_dir=cache_dir)
    return None


def load_source(source: DataSource, dataset_index: int = 0, train: bool = True, flip_prob: float = 0.0,
                densepose_mat: str | Path | None = None, with_masks: bool = False,
                cache_dir: str | Path | None = None) -> DensePoseDataset:
    """Load, validate and wrap one `--data` source."""
    coco = CocoDensePose.load(source.path, source.images_dir)
    symmetry = symmetry_for(coco, densepose_mat, cache_dir) if train and flip_prob > 0 else None
    return DensePoseDataset(coco, dataset_index=dataset_index, train=train, flip_prob=flip_prob,
                            symmetry=symmetry, with_masks=with_masks)


def build_training_set(sources: Sequence[DataSource], seed: int = 0, flip_prob: float = 0.5,
                       densepose_mat: str | Path | None = None, with_masks: bool = False, start: int = 0,
                       cache_dir: str | Path | None = None) -> tuple[ConcatDataset, MixedSampler]:
    """All `--data` sources as one dataset plus the weighted sampler over it (use with a DataLoader
    `sampler=` and `collate_fn=data.dataset.collate`)."""
    datasets = [load_source(src, k, True, flip_prob, densepose_mat, with_masks, cache_dir)
                for k, src in enumerate(sources)]
    sampler = MixedSampler([len(d) for d in datasets], [s.weight for s in sources], seed=seed, start=start)
    return ConcatDataset(datasets), sampler
