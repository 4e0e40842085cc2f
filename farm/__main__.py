"""`python -m farm COMMAND ...`: render, status, merge.

  python -m farm render --out DIR --num-samples N ...   (the same as farm/render.py)
  python -m farm status DIR [--verify] [--all] [--json]
  python -m farm merge DIR [--val-fraction F] [--allow-partial]
  python -m farm report DIR                               (the same as farm/report.py)
  python -m farm charts --out FILE [--body smpl --smpl-dir DIR]   (charts.npz for the trainer)
"""
from __future__ import annotations

import sys

from farm.bootstrap import add_paths

COMMANDS = ("render", "status", "merge", "report", "charts")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    add_paths()
    command, rest = argv[0], argv[1:]
    if command == "status":
        from farm.status import main as status_main

        return status_main(rest)
    if command == "merge":
        from farm.merge import main as merge_main

        return merge_main(rest)
    if command == "report":
        from farm.report import main as report_main

        return report_main(rest)
    if command == "charts":
        from densesynth.annotate.chart_surface import main as charts_main

        return charts_main(rest)
    from densesynth.cli import main as render_main
    from farm.executors import farm_executors

    return render_main(rest, farm_executors())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
