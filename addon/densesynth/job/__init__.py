"""The render job: which samples a folder still needs, rendering them, marking them done, merging.

One job path for every way of running it: `farm/render.py` (with its local pool and Ray
executors), `--workers 0`, and the Blender extension (which has no `farm/`) all go through
`densesynth.cli.main`, so a folder written by any of them has the same `done/` markers, the
same `run.json` and the same merged, split annotations, and any of them resumes it.

  shards.py      sample identity, shards, done/failed markers, stale temporaries
  in_process.py  the Job, one sample rendered and marked done, the in-process executor
  merge.py       records -> annotations.json and the train/val split
"""
