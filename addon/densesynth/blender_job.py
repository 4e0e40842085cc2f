"""Entry script for a background Blender started by the add-on: `blender -b -P blender_job.py -- ARGS`.

Blender runs this file as a plain script, so the package is imported by absolute name from
the folder that holds it (the extension's install folder or the repository's `addon/`).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from densesynth.cli import main  # noqa: E402

sys.exit(main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []))
