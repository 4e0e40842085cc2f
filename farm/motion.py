"""Motion capture conversion: `python -m farm.motion convert IN --out clip.npz [--fps 30] [--map map.yaml]`.

Thin wrapper: the command lives in the package (`densesynth.motion.convert`). User mistakes
(unreadable or unknown files, bad options) print one line on stderr and exit 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()
from densesynth.motion.convert import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
