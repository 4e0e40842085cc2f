"""`python -m farm status DIR [--verify] [--all] [--json]`: where a run stands, from the folder alone.

Per shard and in total: done, failed (every attempt failed; the next run retries them),
corrupt (a file changed or vanished after the sample finished; the next run redoes it) and
remaining (not rendered yet). The plan (sample count, shard size) comes from DIR/run.json.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from densesynth.job.shards import DEFAULT_SHARD_SIZE, Identity, check_sample, read_run_checked, sample_stem, shard_ranges

STATES = ("done", "failed", "corrupt", "todo")


def collect_status(out: Path, verify: bool = False) -> dict[str, Any]:
    out = Path(out)
    run = read_run_checked(out)
    identity = Identity(run["config_hash"], run["seed"])
    shard_size = int(run.get("shard_size", DEFAULT_SHARD_SIZE))
    shards, total, problems = [], Counter(), []
    for number, indices in enumerate(shard_ranges(int(run["num_samples"]), shard_size)):
        counts = Counter()
        for index in indices:
            state = check_sample(out, identity, index, verify)
            counts[state.status] += 1
            if state.status in ("failed", "corrupt"):
                problems.append({"stem": sample_stem(index), "state": state.status, "reason": state.reason})
        total.update(counts)
        shards.append({"shard": number, "first": indices.start, "last": indices.stop - 1,
                       **{s: counts.get(s, 0) for s in STATES}})
    return {"out": str(out), "config_hash": run["config_hash"], "seed": run["seed"],
            "num_samples": int(run["num_samples"]), "shard_size": shard_size,
            "total": {s: total.get(s, 0) for s in STATES}, "shards": shards, "problems": problems}


def format_status(status: dict[str, Any], show_all: bool = False) -> str:
    lines = []
    shards = status["shards"]
    complete = sum(1 for s in shards if s["done"] == s["last"] - s["first"] + 1)
    lines.append(f"{status['out']}: {status['num_samples']} samples in {len(shards)} shards of "
                 f"{status['shard_size']} (config {status['config_hash']}, seed {status['seed']})")
    lines.append(f"{'shard':>7} {'samples':>19} {'done':>6} {'failed':>6} {'corrupt':>7} {'remaining':>9}")
    for s in shards:
        if show_all or s["done"] != s["last"] - s["first"] + 1:
            lines.append(f"{s['shard']:>7} {sample_stem(s['first']) + '-' + sample_stem(s['last']):>19} "
                         f"{s['done']:>6} {s['failed']:>6} {s['corrupt']:>7} {s['todo']:>9}")
    if not show_all and complete:
        lines.append(f"{'':>7} ({complete} complete shard{'s' * (complete != 1)} not listed; --all lists them)")
    t = status["total"]
    lines.append(f"{'total':>7} {'':>19} {t['done']:>6} {t['failed']:>6} {t['corrupt']:>7} {t['todo']:>9}")
    for problem in status["problems"][:20]:
        lines.append(f"  {problem['stem']} {problem['state']}: {problem['reason']}")
    if len(status["problems"]) > 20:
        lines.append(f"  ... {len(status['problems']) - 20} more")
    if t["failed"] or t["corrupt"] or t["todo"]:
        lines.append("run the same render command again to render what is not done")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from densesynth.cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="python -m farm status", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the render folder (--out of the render command)")
    parser.add_argument("--verify", action="store_true", help="re-hash every file instead of trusting unchanged ones")
    parser.add_argument("--all", action="store_true", help="list complete shards too")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        status = collect_status(args.out, args.verify)
    except ValueError as exc:
        print(f"status: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(status, indent=1) if args.json else format_status(status, args.all))
    return 0
