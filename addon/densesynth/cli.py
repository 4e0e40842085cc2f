"""The render job's command line, shared by `farm/render.py` and the Blender add-on.

`python farm/render.py --out DIR --num-samples N --seed S [--resolution 512 | 640x480]
[--config FILE] [--debug-geometry]`; user mistakes end in one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import UserError


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_resolution(text: str) -> tuple[int, int]:
    try:
        if "x" in text.lower():
            width, height = (int(v) for v in text.lower().split("x"))
        else:
            width = height = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a resolution: use 512 or 640x480") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"resolution {text} is outside 16..8192 pixels")
    return width, height


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError("must lie in 0 .. 2**63 - 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="render.py", description="Render an annotated DensePose dataset.")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; resumed if it holds this run)")
    parser.add_argument("--num-samples", type=positive_int, required=True, help="number of samples")
    parser.add_argument("--seed", type=seed_int, default=0, help="run seed (default 0)")
    parser.add_argument("--resolution", type=parse_resolution, help="512 or WIDTHxHEIGHT (overrides the config)")
    parser.add_argument("--config", type=Path, help="YAML config; embedded defaults when absent")
    parser.add_argument("--debug-geometry", action="store_true", help="also write DIR/geometry/<stem>.npz")
    parser.add_argument("--quiet", action="store_true", help="no per-sample progress lines")
    return parser


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".densesynth_write_probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror or exc}; choose a writable folder") from None


def claim_run(out: Path, config_id: str, seed: int) -> None:
    """Tie the folder to one (config, seed): resuming is safe, mixing two runs is refused."""
    from .io_utils import atomic_write_text

    run_file = out / "run.json"
    wanted = {"config_hash": config_id, "seed": seed}
    if run_file.is_file():
        try:
            existing = json.loads(run_file.read_text())
        except (OSError, ValueError):
            existing = None
        if not isinstance(existing, dict) or {k: existing.get(k) for k in wanted} != wanted:
            raise UserError(
                f"{out} holds a different run ({run_file}: {existing}); use another --out folder "
                "or the same --config and --seed to resume it"
            )
        return
    atomic_write_text(run_file, json.dumps(wanted, sort_keys=True) + "\n")


def run(args: argparse.Namespace) -> int:
    from .config import config_hash, load_config

    overrides = {"render.resolution": list(args.resolution)} if args.resolution else {}
    config = load_config(args.config, overrides)
    check_writable(args.out)
    config_id = config_hash(config)
    claim_run(args.out, config_id, args.seed)

    from .pipeline import SampleRenderer, write_annotations

    renderer = SampleRenderer(config, config_id, args.seed, args.out, debug_geometry=args.debug_geometry)
    records = []
    started = time.perf_counter()
    for index in range(args.num_samples):
        spec = renderer.draw_spec(index)
        record_path = args.out / "records" / f"{spec['stem']}.json"
        if record_path.is_file():
            records.append(json.loads(record_path.read_text()))
            continue
        t0 = time.perf_counter()
        records.append(renderer.render(spec))
        if not args.quiet:
            done = index + 1
            rate = done / (time.perf_counter() - started)
            print(f"[{done}/{args.num_samples}] {spec['stem']} {time.perf_counter() - t0:.2f} s "
                  f"({rate:.2f} samples/s)", file=sys.stderr, flush=True)
    path = write_annotations(args.out, records)
    people = sum(len(r["annotations"]) for r in records)
    print(f"wrote {len(records)} samples ({people} people) to {args.out}; annotations: {path}")
    return 0


def main(argv: list[str]) -> int:
    """Run the render job on `argv` (the script's own arguments); returns the exit status."""
    args = build_parser().parse_args(argv)

    try:
        return run(args)
    except UserError as exc:
        print(f"render.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("render.py: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
