"""Body kinds (anny, SMPL, later others) behind one interface, registered by name.

A body kind says how to load its model for a config's `body:` section, how to draw one
person's body entry of a spec, how to pose that person, what its rest surface and charts
are (charts.npz), and which command-line options and assets belong to it. Everything else
(the pipeline, the panel, the chart file, the command line) asks the registry, never
`if kind == "smpl"`. The loaded body offers the pipeline `faces`, `face_part`, `corner_iuv`,
`corner_texture_uv`, `num_vertices` and `face_joints(body entry)` (see DefaultBody and SmplPeople).

Imports of the models are local to each method: importing the registry stays cheap (the
config loader uses it to check `body.kind`).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

__all__ = ["BodyKind", "register_body_kind", "body_kind", "body_kind_names", "load_bodies"]


class BodyKind:
    name: ClassVar[str]
    label: ClassVar[str] = ""  # how messages name it (default: the name)
    options: ClassVar[tuple[str, ...]] = ()  # command-line options (dest names) that only this kind uses

    def load(self, cfg: dict[str, Any]) -> Any:
        """The loaded body a config's `body` section draws from (once per process)."""
        raise NotImplementedError

    def draw(self, cfg: dict[str, Any], draws, stream_name: str) -> dict[str, Any]:
        """One person's `body` entry of a spec (JSON), from its own draw stream."""
        raise NotImplementedError

    def pose(self, person: dict[str, Any], body: Any):
        """The person posed by its motion, standing at the origin (scene.person.PosedPerson)."""
        raise NotImplementedError

    def rest_surface(self, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rest vertices, faces, corner IUV) of the kind: what charts.npz records."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Make the kind's assets available once, before worker processes start (default: none)."""


_KINDS: dict[str, BodyKind] = {}


def register_body_kind(cls: type[BodyKind]) -> type[BodyKind]:
    if cls.name in _KINDS:
        raise ValueError(f"a body kind named {cls.name!r} is already registered")
    _KINDS[cls.name] = cls()
    return cls


def body_kind(name: str) -> BodyKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown body kind {name!r}: known are {', '.join(_KINDS)}") from None


def body_kind_names() -> tuple[str, ...]:
    return tuple(_KINDS)


def load_bodies(cfg: dict[str, Any]) -> dict[str, Any]:
    """The body kinds a config draws from, loaded once per process: {kind name: body}."""
    return {cfg["kind"]: body_kind(cfg["kind"]).load(cfg)}


def _genders(cfg: dict[str, Any]) -> tuple[str, ...]:
    return ("female", "male") if cfg["gender"] == "random" else (cfg["gender"],)


@register_body_kind
class AnnyKind(BodyKind):
    """The open default body (anny), shaped by a phenotype, posed by retargeted motion."""

    name = "anny"

    def load(self, cfg: dict[str, Any]) -> Any:
        from .default_body import DefaultBody

        return DefaultBody.load()

    def draw(self, cfg: dict[str, Any], draws, stream_name: str) -> dict[str, Any]:
        phenotype = {name: draws.uniform(bounds) for name, bounds in cfg["phenotype"].items()}
        return {"kind": "anny", "phenotype": phenotype, "stream": stream_name}

    def pose(self, person: dict[str, Any], body: Any):
        from ..scene.person import _pose_anny

        return _pose_anny(person, body)

    def rest_surface(self, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from .default_body import DefaultBody

        body = DefaultBody.load()
        return body.model.rest({}).vertices, body.faces, body.corner_iuv

    def prepare(self) -> None:
        from .cache import ensure_anny_archive

        ensure_anny_archive()  # exported once here, not in every worker at the same time


@register_body_kind
class SmplKind(BodyKind):
    """The user's licensed SMPL files: betas per person, SMPL-format motion played natively."""

    name = "smpl"
    label = "SMPL"
    options = ("gender", "smpl_dir")

    def load(self, cfg: dict[str, Any]) -> Any:
        from .smpl_body import SmplPeople

        return SmplPeople.load(cfg["smpl_dir"], _genders(cfg))

    def draw(self, cfg: dict[str, Any], draws, stream_name: str) -> dict[str, Any]:
        from .smpl_shapes import sample_smpl_shape

        shape = sample_smpl_shape(draws.rng, cfg["gender"], cfg["num_betas"])
        return {"kind": "smpl", "gender": shape["gender"], "betas": [round(b, 6) for b in shape["betas"]],
                "stream": stream_name}

    def pose(self, person: dict[str, Any], body: Any):
        from ..scene.person import _pose_smpl

        return _pose_smpl(person, body)

    def rest_surface(self, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from .smpl_body import SmplPeople

        genders = _genders(cfg)
        smpl = SmplPeople.load(cfg["smpl_dir"], genders[:1]).model(genders[0])
        vertices, _ = smpl.model.rest()
        return vertices, smpl.faces, smpl.corner_iuv
