"""The user's SMPL model files: find them, read them without chumpy, check them, convert them.

SMPL's licence forbids redistribution, so the user downloads the files from
https://smpl.is.tue.mpg.de and points us at them (``--smpl-dir DIR``). Two layouts exist:

* the original ``.pkl`` files (v1.0.0 ``basicModel_{f,m}_lbs_10_207_0_v1.0.0.pkl``,
  v1.1.0 ``basicmodel_{f,m,neutral}_lbs_10_207_0_v1.1.0.pkl``, or renamed by the smplx
  convention ``SMPL_{FEMALE,MALE,NEUTRAL}.pkl``): Python 2 pickles holding chumpy ``Ch``
  objects and a ``scipy.sparse`` ``J_regressor``. chumpy does not import on current NumPy,
  so :class:`_SmplUnpickler` reads them with ``encoding="latin1"`` and small stand-ins for
  chumpy's and scipy.sparse's classes. It resolves exactly the (module, name) pairs of
  :data:`SMPL_PICKLE_GLOBALS` (NumPy's ``_reconstruct``/``scalar``/``_frombuffer``,
  ``ndarray``, ``dtype``; chumpy's ``Ch`` and a few expression classes; scipy.sparse's
  ``csc_matrix``/``csr_matrix``; builtin containers; ``copy_reg._reconstructor``;
  Latin-1 ``_codecs.encode``), never by prefix and never a dotted name, and imports
  nothing a file names, so a booby-trapped pickle can run no code.
* a chumpy-free ``.npz`` with the same keys, written by :func:`convert` (next to the
  ``.pkl`` with the same stem) or by other tools (smplx accepts it too).

SMPL files carry no gender field. The gender of a file comes from its name (the
conventions above) or from a ``gender`` entry when a file has one; a file whose name says
``female`` passed where the male model is expected is refused.

Arrays are returned in SMPL's own frame: metres, Y up, the person facing +Z.
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = [
    "GENDERS", "NUM_VERTICES", "NUM_JOINTS", "NUM_FACES", "SMPL_FILE_NAMES", "SmplArrays",
    "load_smpl", "gender_from_filename", "convert", "find_smpl_file", "candidate_names",
]

GENDERS = ("female", "male", "neutral")
NUM_VERTICES = 6890
NUM_JOINTS = 24
NUM_FACES = 13776
NUM_POSE_BASIS = 9 * (NUM_JOINTS - 1)  # 207
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
DOWNLOAD = "https://smpl.is.tue.mpg.de"

# The names SMPL is distributed under, per gender, in order of preference.
SMPL_FILE_NAMES: dict[str, tuple[str, ...]] = {
    "female": ("SMPL_FEMALE.pkl", "basicmodel_f_lbs_10_207_0_v1.1.0.pkl", "basicModel_f_lbs_10_207_0_v1.0.0.pkl"),
    "male": ("SMPL_MALE.pkl", "basicmodel_m_lbs_10_207_0_v1.1.0.pkl", "basicModel_m_lbs_10_207_0_v1.0.0.pkl"),
    "neutral": ("SMPL_NEUTRAL.pkl", "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl",
                "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"),
}
# Sub-folders the official archives unpack into (searched below --smpl-dir).
_SUBDIRS = ("", "models", "smpl", "smpl/models", "SMPL_python_v.1.1.0/smpl/models",
            "SMPL_python_v.1.0.0/smpl/models")


@dataclass(frozen=True)
class SmplArrays:
    """A checked SMPL model (float64 arrays, SMPL frame: metres, Y up, facing +Z)."""

    path: Path
    gender: str | None  # "female" | "male" | "neutral", None when the file does not say
    v_template: np.ndarray  # (6890, 3)
    shapedirs: np.ndarray  # (6890, 3, B)
    posedirs: np.ndarray  # (6890, 3, 207)
    J_regressor: np.ndarray  # (24, 6890), dense
    weights: np.ndarray  # (6890, 24)
    parents: np.ndarray  # (24,) int64, root -1
    faces: np.ndarray  # (13776, 3) int64

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    def as_dict(self) -> dict[str, np.ndarray]:
        """The clean ``.npz`` layout (same keys as the original files)."""
        kintree = np.stack([self.parents, np.arange(NUM_JOINTS)]).astype(np.int64)
        out = {
            "v_template": self.v_template, "shapedirs": self.shapedirs, "posedirs": self.posedirs,
            "J_regressor": self.J_regressor, "weights": self.weights, "kintree_table": kintree,
            "f": self.faces,
        }
        if self.gender:
            out["gender"] = np.array(self.gender)
        return out


# --------------------------------------------------------------------------- unpickling
class _Opaque:
    """Stand-in for a class of a pickled SMPL file: keeps whatever state it is given."""

    _module = ""
    _name = ""

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}  # (dict, slots)
        self.__dict__["_state"] = state


_STANDINS: dict[tuple[str, str], type] = {}


def _standin(module: str, name: str) -> type:
    key = (module, name)
    if key not in _STANDINS:
        _STANDINS[key] = type(name, (_Opaque,), {"_module": module, "_name": name})
    return _STANDINS[key]


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """`_codecs.encode` as protocol-2 pickles written by Python 3 use it for bytes, for
    Latin-1 only: no other codec (zlib, bz2, ...) is reachable from a file."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"unexpected object _codecs.encode({encoding!r})")
    return text.encode("latin1", errors if errors in ("strict",) else "strict")


def _numpy_reconstructors() -> dict[tuple[str, str], object]:
    """NumPy's array and scalar reconstruction functions, taken from NumPy's own pickles (so
    nothing is imported by a name read from a file), under both module names NumPy used."""
    reconstruct = np.arange(1).__reduce__()[0]  # numpy.core.multiarray._reconstruct
    scalar = np.float64(0).__reduce__()[0]  # numpy.core.multiarray.scalar
    frombuffer = np.arange(1).__reduce_ex__(5)[0]  # numpy.core.numeric._frombuffer (protocol 5)
    table: dict[tuple[str, str], object] = {}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        if getattr(frombuffer, "__name__", "") == "_frombuffer":
            table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    return table


# The chumpy classes SMPL's files hold: 'Ch' wraps every array; SMPLify's and some re-saved
# models also keep expressions (J as a transpose or Select, v_shaped as an add, ...). They
# become inert stand-ins (never chumpy itself); their value is read from 'x' (see _plain).
_CHUMPY_CLASSES = {
    "chumpy": ("Ch",),
    "chumpy.ch": ("Ch", "MatVecMult"),
    "chumpy.reordering": ("Select", "transpose", "Permute", "Reorder", "reshape", "Concatenate", "Transpose"),
    "chumpy.ch_ops": ("add", "subtract", "multiply", "divide", "dot", "power", "negative", "sum"),
}
# scipy.sparse's compressed matrices (J_regressor, J_regressor_prior) under the module names
# scipy pickled them with: old (scipy.sparse.csc), current (scipy.sparse._csc) and public.
_SPARSE_CLASSES = {
    "scipy.sparse": ("csc_matrix", "csr_matrix"),
    "scipy.sparse.csc": ("csc_matrix",),
    "scipy.sparse.csr": ("csr_matrix",),
    "scipy.sparse._csc": ("csc_matrix",),
    "scipy.sparse._csr": ("csr_matrix",),
}
# Builtin containers (protocol-2 sets, copy_reg reconstruction of plain objects).
_BUILTIN_CLASSES = {"object": object, "set": set, "frozenset": frozenset, "list": list, "dict": dict,
                    "tuple": tuple, "bytearray": bytearray}


def _allowed_globals() -> dict[tuple[str, str], object]:
    import copyreg

    table: dict[tuple[str, str], object] = dict(_numpy_reconstructors())
    for module, names in {**_CHUMPY_CLASSES, **_SPARSE_CLASSES}.items():
        for name in names:
            table[(module, name)] = _standin(module, name)
    for module in ("__builtin__", "builtins"):
        for name, value in _BUILTIN_CLASSES.items():
            table[(module, name)] = value
    for module in ("copy_reg", "copyreg"):
        table[(module, "_reconstructor")] = copyreg._reconstructor
    table[("_codecs", "encode")] = _latin1_encode
    return table


#: Every global a real SMPL v1.0 / v1.1 pickle (or a Python 3 re-save of one) needs, as
#: exact (module, name) pairs: nothing else is ever looked up, imported or called.
SMPL_PICKLE_GLOBALS: dict[tuple[str, str], object] = _allowed_globals()


class _SmplUnpickler(pickle.Unpickler):
    """Unpickles exactly :data:`SMPL_PICKLE_GLOBALS`: NumPy arrays, chumpy and scipy.sparse
    stand-ins, builtin containers; any other global (a module prefix, a dotted name, a
    function) is refused before anything is imported."""

    def find_class(self, module: str, name: str):
        try:
            return SMPL_PICKLE_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("unexpected object (persistent id)")


def _plain(value, key: str, path: Path):
    """A NumPy array (or dense matrix) from an array, a chumpy stand-in or a sparse stand-in."""
    if isinstance(value, _Opaque):
        state = value.__dict__.get("_state")
        if value._module.startswith("scipy.sparse"):
            return _sparse_to_dense(value, state, key, path)
        if isinstance(state, dict) and "x" in state:  # chumpy Ch: the value is in `x`
            return _plain(state["x"], key, path)
        raise UserError(
            f"{path}: '{key}' is a chumpy expression ({value._module}.{value._name}) that cannot "
            f"be read without chumpy: re-download the model from {DOWNLOAD}, or convert it once "
            "where chumpy works (np.savez with np.array(model[key]) for every key)"
        )
    return value


def _sparse_to_dense(value: _Opaque, state, key: str, path: Path) -> np.ndarray:
    import scipy.sparse as sp

    if not isinstance(state, dict):
        raise UserError(f"{path}: '{key}' is an unreadable sparse matrix: re-download the model from {DOWNLOAD}")
    shape = state.get("_shape", state.get("shape"))
    name = value._name
    try:
        if name.startswith("csc") or name.startswith("csr"):
            cls = sp.csc_matrix if name.startswith("csc") else sp.csr_matrix
            matrix = cls((np.asarray(state["data"]), np.asarray(state["indices"]), np.asarray(state["indptr"])),
                         shape=tuple(int(n) for n in shape))
        else:
            raise KeyError(name)
        return np.asarray(matrix.toarray())
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise UserError(
            f"{path}: '{key}' is a sparse matrix of a layout this reader does not know ({name}: {exc}): "
            f"re-download the model from {DOWNLOAD}"
        ) from None


def _read_raw(path: Path) -> dict:
    """The file's top-level mapping (key -> raw value), raising UserError on unreadable files."""
    refetch = f"it looks truncated or corrupt: download it again from {DOWNLOAD}"
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the SMPL file ({exc.strerror}): check the path") from None
    if magic.startswith(b"PK"):
        try:
            with np.load(path, allow_pickle=False) as archive:
                raw = {}
                for key in archive.files:
                    try:
                        raw[key] = archive[key]
                    except ValueError:  # a pickled Python object inside the .npz
                        if key in REQUIRED_KEYS:
                            raise UserError(
                                f"{path}: '{key}' is stored as a pickled Python object, which is not read "
                                "for safety: convert the original .pkl with python -m "
                                "densesynth.bodies.smpl_files convert FILE.pkl") from None
                return raw
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
            raise UserError(f"{path}: cannot read the SMPL .npz ({type(exc).__name__}): {refetch}") from None
    if path.suffix.lower() == ".npz" or not magic:
        raise UserError(f"{path}: not a NumPy .npz archive: {refetch}")
    try:
        with open(path, "rb") as handle:
            data = _SmplUnpickler(handle, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "unexpected object" in str(exc):
            raise UserError(f"{path}: holds {str(exc)[len('unexpected '):]}, not an SMPL model: pass the "
                            f"SMPL .pkl from {DOWNLOAD} or its converted .npz") from None
        raise UserError(f"{path}: cannot unpickle the SMPL file ({exc}): {refetch}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            UnicodeDecodeError, ImportError, RecursionError, OverflowError) as exc:
        raise UserError(f"{path}: cannot unpickle the SMPL file ({type(exc).__name__}): {refetch}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: holds a {type(data).__name__}, not an SMPL model dictionary: "
                        f"pass the SMPL .pkl from {DOWNLOAD} or its converted .npz")
    return data


# --------------------------------------------------------------------------- gender
def gender_from_filename(path: str | os.PathLike) -> str | None:
    """'female' / 'male' / 'neutral' from SMPL's naming conventions, None if the name says nothing.

    basicModel_f_lbs_10_207_0_v1.0.0.pkl -> female; basicmodel_m_... -> male;
    SMPL_NEUTRAL.pkl -> neutral; smpl_female.npz -> female.
    """
    tokens = set(re.split(r"[^a-z0-9]+", Path(path).name.lower()))
    found = set()
    if tokens & {"f", "female", "woman", "women"}:
        found.add("female")
    if tokens & {"m", "male", "man", "men"}:
        found.add("male")
    if tokens & {"neutral", "n"}:
        found.add("neutral")
    return found.pop() if len(found) == 1 else None


def _gender_entry(raw: dict, path: Path) -> str | None:
    value = raw.get("gender")
    if value is None:
        return None
    value = np.asarray(value).ravel()
    text = value[0] if value.size else ""
    if isinstance(text, bytes):
        text = text.decode("latin1")
    text = str(text).strip().lower()
    return text if text in GENDERS else None


# --------------------------------------------------------------------------- checks
def _peek_shape(value) -> tuple | None:
    """Shape of an array, a chumpy stand-in's `x` or a sparse stand-in, without converting it."""
    if isinstance(value, _Opaque):
        state = value.__dict__.get("_state")
        if isinstance(state, dict) and "x" in state:
            return _peek_shape(state["x"])
        if isinstance(state, dict):
            dims = state.get("_shape") or state.get("shape")
            return tuple(int(d) for d in dims) if dims is not None else None
        return None
    dims = getattr(value, "shape", None)
    return tuple(int(d) for d in dims) if dims is not None else None


def _other_model(raw: dict) -> str | None:
    """Name of the model family of a file that is not SMPL (by vertex and joint counts)."""
    shape = _peek_shape(raw.get("v_template"))
    if not shape:
        return None
    nv = shape[0]
    nj = None
    for key, axis in (("J_regressor", 0), ("weights", 1), ("kintree_table", 1)):
        dims = _peek_shape(raw.get(key))
        if dims is not None and len(dims) > axis:
            nj = dims[axis]
            break
    if nv == 10475:
        return "SMPL-X"
    if nv == NUM_VERTICES and nj == 52:
        return "SMPL-H"
    if nv == 778:
        return "MANO"
    if nv == 5023:
        return "FLAME"
    return None


def _check_shape(path: Path, key: str, array: np.ndarray, expected: tuple) -> None:
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        want = "(" + ", ".join("B" if e is None else str(e) for e in expected) + ")"
        raise UserError(f"{path}: '{key}' has shape {tuple(array.shape)}, SMPL needs {want}: "
                        f"it is not an SMPL model file; download SMPL from {DOWNLOAD}")


def load_smpl(path: str | os.PathLike, gender: str | None = None) -> SmplArrays:
    """Read and check one SMPL model file (.pkl with or without chumpy, or .npz).

    gender: the slot the file is meant for ("female", "male", "neutral"); a file whose name
    or ``gender`` entry says otherwise is refused. Raises UserError (one line, naming the
    file and the fix) on anything that is not a complete SMPL model.
    """
    path = Path(path)
    if gender is not None and gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    if not path.is_file():
        raise UserError(f"{path}: no such SMPL file: download SMPL from {DOWNLOAD} and give its path")
    raw = _read_raw(path)
    other = _other_model(raw)
    if other:
        raise UserError(f"{path}: this is a {other} model, not SMPL: pass the SMPL (6,890 vertices, 24 joints) "
                        f"file from {DOWNLOAD}")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise UserError(f"{path}: missing {', '.join(missing)}: not a complete SMPL model; download it again "
                        f"from {DOWNLOAD} (or re-run the conversion)")

    arrays = {}
    for key in REQUIRED_KEYS:
        value = _plain(raw[key], key, path)
        try:
            arrays[key] = np.asarray(value, dtype=np.int64 if key in ("f", "kintree_table") else np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{path}: '{key}' is not numeric ({type(value).__name__}): "
                            f"download SMPL again from {DOWNLOAD}") from None
    _check_shape(path, "v_template", arrays["v_template"], (NUM_VERTICES, 3))
    _check_shape(path, "shapedirs", arrays["shapedirs"], (NUM_VERTICES, 3, None))
    _check_shape(path, "posedirs", arrays["posedirs"], (NUM_VERTICES, 3, NUM_POSE_BASIS))
    _check_shape(path, "J_regressor", arrays["J_regressor"], (NUM_JOINTS, NUM_VERTICES))
    _check_shape(path, "weights", arrays["weights"], (NUM_VERTICES, NUM_JOINTS))
    _check_shape(path, "kintree_table", arrays["kintree_table"], (2, NUM_JOINTS))
    _check_shape(path, "f", arrays["f"], (NUM_FACES, 3))
    for key, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise UserError(f"{path}: '{key}' holds NaN or infinite values: the file is corrupt; "
                            f"download it again from {DOWNLOAD}")
    faces = arrays["f"]
    if faces.min() < 0 or faces.max() >= NUM_VERTICES:
        raise UserError(f"{path}: faces index vertices outside 0..{NUM_VERTICES - 1}: corrupt file; "
                        f"download it again from {DOWNLOAD}")
    parents = arrays["kintree_table"][0].copy()
    parents[0] = -1  # the root's entry is garbage in the original files
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, NUM_JOINTS)):
        raise UserError(f"{path}: kintree_table does not list parents before children: corrupt file; "
                        f"download it again from {DOWNLOAD}")
    if np.abs(arrays["weights"].sum(axis=1) - 1.0).max() > 1e-3:
        raise UserError(f"{path}: skinning weights do not sum to 1 per vertex: corrupt file; "
                        f"download it again from {DOWNLOAD}")

    by_name = gender_from_filename(path)
    by_entry = _gender_entry(raw, path)
    if by_name and by_entry and by_name != by_entry:
        raise UserError(f"{path}: its name says {by_name} but its 'gender' entry says {by_entry}: "
                        "rename the file after the gender it holds")
    found = by_entry or by_name
    if gender is not None and found is not None and found != gender:
        raise UserError(f"{path}: this is the {found} SMPL model but it was given as the {gender} one: "
                        f"pass the {gender} file ({SMPL_FILE_NAMES[gender][0]} or "
                        f"{SMPL_FILE_NAMES[gender][2]}) there")
    return SmplArrays(
        path=path, gender=found or gender, v_template=arrays["v_template"], shapedirs=arrays["shapedirs"],
        posedirs=arrays["posedirs"], J_regressor=arrays["J_regressor"], weights=arrays["weights"],
        parents=parents.astype(np.int64), faces=faces,
    )


# --------------------------------------------------------------------------- convert
def converted_path(path: str | os.PathLike) -> Path:
    """Where :func:`convert` writes a file's chumpy-free copy: same folder and stem, ``.npz``."""
    path = Path(path)
    return path.with_suffix(".npz")


def convert(src: str | os.PathLike, dst: str | os.PathLike | None = None, gender: str | None = None) -> Path:
    """Check an SMPL file and write it as a clean ``.npz`` (atomically: temp file + rename)."""
    model = load_smpl(src, gender)
    dst = Path(dst) if dst is not None else converted_path(src)
    if dst.resolve() == Path(src).resolve():
        raise UserError(f"{dst}: the converted file would overwrite its source: choose another output path")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dst.name + ".", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **model.as_dict())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dst


# --------------------------------------------------------------------------- resolve
def candidate_names(gender: str) -> list[str]:
    """File names looked for, per gender: converted .npz first, then SMPL's distributed names."""
    names = SMPL_FILE_NAMES[gender]
    return [str(Path(n).with_suffix(".npz")) for n in names] + list(names)


def find_smpl_file(smpl_dir: str | os.PathLike, gender: str) -> Path:
    """The model file of one gender under ``--smpl-dir`` (its official sub-folders included).

    Raises UserError naming the folder, the names looked for and where to get them.
    """
    if gender not in GENDERS:
        raise UserError(f"unknown SMPL gender {gender!r}: use one of {', '.join(GENDERS)}")
    root = Path(smpl_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: --smpl-dir is not a folder: give the folder holding the SMPL model files "
                        f"from {DOWNLOAD}")
    wanted = {name.lower(): rank for rank, name in enumerate(candidate_names(gender))}
    best: tuple[int, Path] | None = None
    for sub in _SUBDIRS:
        folder = root / sub if sub else root
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            rank = wanted.get(entry.name.lower())
            if rank is not None and entry.is_file() and (best is None or rank < best[0]):
                best = (rank, entry)
        if best is not None:
            return best[1]
    names = SMPL_FILE_NAMES[gender]
    raise UserError(f"{root}: no {gender} SMPL model ({names[0]} or {names[2]}): download SMPL from "
                    f"{DOWNLOAD} and put the {gender} .pkl there")


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m densesynth.bodies.smpl_files",
                                     description="Check SMPL model files and convert them to chumpy-free .npz")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="write FILE as a clean .npz next to it (or --out)")
    conv.add_argument("file")
    conv.add_argument("--out")
    conv.add_argument("--gender", choices=GENDERS)
    check = sub.add_parser("check", help="read and check FILE")
    check.add_argument("file")
    check.add_argument("--gender", choices=GENDERS)
    args = parser.parse_args(argv)
    try:
        if args.command == "convert":
            print(convert(args.file, args.out, args.gender))
        else:
            model = load_smpl(args.file, args.gender)
            print(f"{model.path}: SMPL {model.gender or 'gender unknown'}, {model.num_betas} shape components")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
