"""Render an annotated DensePose dataset: `python farm/render.py --out DIR --num-samples N --seed S`.

Also runs inside Blender: `blender -b -P farm/render.py -- --out DIR ...` (see the README
for pointing Blender at the project's virtual environment). The command line itself lives
in the package (`densesynth.cli`) so that the Blender add-on runs the very same job; the
farm hands it its executors (farm/executors.py: the local pool and Ray).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths, missing_dependencies, running_inside_blender, script_arguments  # noqa: E402


def main() -> int:
    add_paths()
    missing = missing_dependencies()
    if missing:
        where = "Blender's Python" if running_inside_blender() else sys.executable
        print(f"render.py: error: missing {', '.join(missing)} in {where}; set DENSESYNTH_VENV to the project's "
              "virtual environment (see README, 'Running inside Blender')", file=sys.stderr)
        return 2
    from densesynth.cli import main as render_main
    from farm.executors import farm_executors

    return render_main(script_arguments(sys.argv), farm_executors())


if __name__ == "__main__":
    sys.exit(main())
