"""The Blender adapter: the only place (with `ui/`) that imports `bpy`."""
