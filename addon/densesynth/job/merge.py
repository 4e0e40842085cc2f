"""Merge per-sample records into COCO-DensePose files, streaming, plus a train/val split.

`merge(DIR)` (the render job at its end; `python -m farm merge DIR` by hand) writes

  DIR/annotations.json        every finished sample, in index order
  DIR/annotations_train.json  the training part
  DIR/annotations_val.json    the validation part

Records are read one at a time; images go straight to the output files and annotations to
a spool file each, so memory stays flat however large the run. Image ids are 1..K over the
finished samples in index order and annotation ids 1..M in the same order; the split files
keep those ids, so ids never collide between the three files and an id means the same image
everywhere. `annotations.json` is byte-identical to `pipeline.write_annotations` over the
same records (same formatting as `DatasetWriter`).

Split rule (documented, deterministic, independent of the seed and of the sample count):
samples that show nearly the same person in nearly the same pose must not land on both
sides, or validation is a near copy of training. Each sample gets a *group key* from its
spec: for every person, the motion clip, whether it is mirrored, the clip phase in 8 bins
(a converted clip's frame in blocks of 30), and the body bucketed (anny: gender in 2 bins,
height and weight in 3 bins each; SMPL: gender and the first two betas in 3 bins each);
the keys of all persons are sorted and joined. A group goes to validation when the first 8 bytes
of SHA-256 of its key, read as a fraction of 2**64, fall below `val_fraction`. All samples
of a group are therefore on the same side, whatever the seed, the sample count, or the
order of rendering. (Neighbours across a bin boundary can still be alike; bins are coarse
so that this is rare. Camera, lights, clothing and backdrop are drawn independently and
are deliberately not part of the key.) The frames of a sequence (`sequence.length` > 1) share
their people and are keyed by the motion of the sequence's first frame, so a sequence, like
the views of one scene, is never split.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .shards import (MAX_SAMPLES, Identity, RunFileError, check_sample, read_run_checked,
                         remove_stale_temporaries, sample_stem)

DEFAULT_VAL_FRACTION = 0.1
PHASE_BINS = 8
FRAME_BLOCK = 30  # converted clips: frames in blocks of 30 (one second at 30 fps)


class MergeError(Exception):
    """The folder cannot be merged as asked (one line for the user)."""


def _bucket(value: float, bins: int, low: float = 0.0, high: float = 1.0) -> int:
    return min(bins - 1, max(0, int((float(value) - low) / (high - low) * bins)))


def _motion_key(motion: dict[str, Any]) -> str:
    """A sequence's frames are keyed by its first frame (`start_*`): one sequence, one side."""
    phase, frame = motion.get("start_phase", motion.get("phase")), motion.get("start_frame", motion.get("frame", 0))
    where = f"p{_bucket(phase, PHASE_BINS)}" if phase is not None else f"f{int(frame) // FRAME_BLOCK}"
    return f"{motion.get('clip', '?')}:m{int(bool(motion.get('mirror')))}:{where}"


def _body_key(body: dict[str, Any]) -> str:
    if "phenotype" in body:  # anny: gender 0..1, height and weight 0..1
        phenotype = body["phenotype"]
        return (f"anny:g{_bucket(phenotype.get('gender', 0.0), 2)}:h{_bucket(phenotype.get('height', 0.0), 3)}"
                f":w{_bucket(phenotype.get('weight', 0.0), 3)}")
    if "betas" in body:  # SMPL: the first two shape coefficients (size, girth), N(0, 1) in -3..3
        betas = list(body["betas"]) + [0.0, 0.0]
        return f"smpl:{body.get('gender', '?')}:b{_bucket(betas[0], 3, -1.5, 1.5)}:{_bucket(betas[1], 3, -1.5, 1.5)}"
    return str(body.get("kind", "?"))


def group_key(spec: dict[str, Any]) -> str:
    """The split group of a sample: pose and body of its persons, coarsely bucketed."""
    keys = [f"{_motion_key(person.get('motion', {}))}:{_body_key(person.get('body', {}))}"
            for person in spec["persons"]]
    return "|".join(sorted(keys))


def split_of(spec: dict[str, Any], val_fraction: float) -> str:
    digest = hashlib.sha256(group_key(spec).encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def _dumps(value: Any) -> str:
    """Exactly DatasetWriter.to_bytes' formatting, for one value."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


class _StreamingCoco:
    """One COCO file written as it goes: images now, annotations spooled, joined at close."""

    def __init__(self, path: Path, header: dict[str, Any]):
        self.path = path
        from densesynth.io_utils import temporary_sibling

        self.tmp = temporary_sibling(path)
        self.file: BinaryIO = open(self.tmp, "wb")
        self.spool = tempfile.TemporaryFile(dir=path.parent)
        self.header = header
        self.file.write(f'{{"info":{_dumps(header["info"])},"licenses":{_dumps(header["licenses"])},"images":['.encode())
        self.images = self.annotations = 0

    def add(self, image: dict[str, Any], annotations: list[dict[str, Any]]) -> None:
        self.file.write(((b"," if self.images else b"") + _dumps(image).encode()))
        self.images += 1
        for annotation in annotations:
            self.spool.write((b"," if self.annotations else b"") + _dumps(annotation).encode())
            self.annotations += 1

    def finish(self) -> None:
        """Complete the temporary file (on disk, synced); `commit` then puts it in place."""
        self.file.write(b'],"annotations":[')
        self.spool.seek(0)
        shutil.copyfileobj(self.spool, self.file)
        self.spool.close()
        self.file.write(f'],"categories":{_dumps(self.header["categories"])}}}\n'.encode())
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def close(self) -> None:
        self.finish()
        self.commit()

    def abort(self) -> None:
        for handle in (self.spool, self.file):
            try:
                handle.close()
            except OSError:
                pass
        self.tmp.unlink(missing_ok=True)


@dataclass
class MergeResult:
    images: int = 0
    annotations: int = 0
    split: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    missing: list[int] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)


def merge(out: Path, num_samples: int | None = None, val_fraction: float = DEFAULT_VAL_FRACTION,
          allow_partial: bool = False, allow_shrink: bool = False) -> MergeResult:
    """Merge samples 0..N-1 of DIR (N from run.json unless given); refuses when some are not
    finished unless `allow_partial`, which merges the finished ones only, and refuses an N
    below the run's own (the dataset would silently shrink) unless `allow_shrink`."""
    out = Path(out)
    try:
        run = read_run_checked(out, need_plan=num_samples is None)
    except RunFileError as exc:
        raise MergeError(str(exc)) from None
    planned = run.get("num_samples")
    if num_samples is None:
        num_samples = planned
    if not isinstance(num_samples, int) or not 1 <= num_samples <= MAX_SAMPLES:
        raise MergeError(f"--num-samples must be a whole number in 1..{MAX_SAMPLES}, got {num_samples}")
    if isinstance(planned, int) and num_samples < planned and not allow_shrink:
        raise MergeError(f"--num-samples {num_samples} is fewer than the {planned} samples of the run in {out}: "
                         f"annotations.json would shrink; leave --num-samples out to merge all {planned}, or pass "
                         "--allow-shrink to merge only the first ones")
    if not 0.0 <= val_fraction <= 1.0:
        raise MergeError(f"--val-fraction must lie in 0..1, got {val_fraction}")
    remove_stale_temporaries(out)  # the temporaries of a merge that was killed
    identity = Identity(run["config_hash"], run["seed"])
    result = MergeResult()
    finished = []
    for index in range(num_samples):
        if check_sample(out, identity, index).status == "done":
            finished.append(index)
        else:
            result.missing.append(index)
    if result.missing and not allow_partial:
        first = ", ".join(sample_stem(i) for i in result.missing[:5])
        raise MergeError(f"{len(result.missing)} of {num_samples} samples are not finished ({first}"
                         f"{', ...' if len(result.missing) > 5 else ''}); render them first "
                         "(or merge with --allow-partial)")
    try:
        return _write_merged(out, finished, val_fraction, result)
    except OSError as exc:
        raise MergeError(f"cannot write the merged files in {out} ({exc.strerror or exc}): free some space or "
                         "fix the permissions, then merge again (python -m farm merge DIR)") from None


def _write_merged(out: Path, finished: list[int], val_fraction: float, result: MergeResult) -> MergeResult:
    from densesynth.annotate.coco_densepose import DatasetWriter, image_extras
    from densesynth.spec.model import read_spec

    header = DatasetWriter().to_dict()
    outputs = {"all": out / "annotations.json", "train": out / "annotations_train.json",
               "val": out / "annotations_val.json"}
    writers: dict[str, _StreamingCoco] = {}
    try:
        for name, path in outputs.items():
            writers[name] = _StreamingCoco(path, header)
        for index in finished:
            stem = sample_stem(index)
            record = json.loads((out / "records" / f"{stem}.json").read_text())
            spec = read_spec(out / "specs" / f"{stem}.json")
            local = DatasetWriter()  # the same normalisation as a whole-run writer, one image at a time
            image = record["image"]
            local.add_image(image["file_name"], image["height"], image["width"], image_extras(image))
            for annotation in record["annotations"]:
                local.add_annotation(1, annotation)
            result.images += 1
            entry = local.images[0]
            entry["id"] = result.images
            annotations = []
            for annotation in local.annotations:
                result.annotations += 1
                annotation["id"], annotation["image_id"] = result.annotations, result.images
                annotations.append(annotation)
            part = split_of(spec, val_fraction)
            result.split[part] += 1
            writers["all"].add(entry, annotations)
            writers[part].add(entry, annotations)
        # Every file complete before any replaces its old version: a full disk leaves the old set.
        for writer in writers.values():
            writer.finish()
        for writer in writers.values():
            writer.commit()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    result.paths = outputs
    return result
