"""DenseSynth: synthetic people with exact DensePose ground truth.

As a Python package this is the pure-Python core (no `bpy` at import). As a Blender
extension, Blender calls `register()`, which adds the DenseSynth panel.
"""

__version__ = "0.1.0"


def register() -> None:
    from .ui import panel

    panel.register()


def unregister() -> None:
    from .ui import panel

    panel.unregister()
