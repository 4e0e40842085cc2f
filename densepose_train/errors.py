"""The one exception type that means "the user asked for something that cannot work".

The command line prints its message as one line and exits 2; anything else is a bug and
keeps its traceback. The training package has its own copy of this idea (rather than
importing `densesynth.errors`) so that it installs and runs without the renderer.
"""
from __future__ import annotations


class TrainUserError(Exception):
    """A bad dataset, checkpoint, option or config value; the message names it and the fix."""
