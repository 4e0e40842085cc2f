"""Realise sample specs in Blender and render the passes (``passes/``) of each sample.

One scene is built per process and updated per sample (vertex positions, texture pixels,
camera, lights): building meshes, materials and node trees once is what keeps scene set-up
a small fraction of the beauty render.

The label pass follows what was measured on Blender 5.0 (see the shared reference): an
emission shader fed by a FLOAT_COLOR corner attribute, rendered by Cycles with 1 sample, no
pixel filter, no denoiser, Standard view transform, to 32-bit float OpenEXR with a lossless
codec, reads back bit-exact. The denoiser, not the sampler, is what would destroy labels.
Those settings are data of the passes (``passes/base.py``, ``exact_exr_settings``); this
adapter applies whatever a pass's ``BlenderSetup`` asks for, and undoes it afterwards.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..decode.iuv_exr import strip_volatile_metadata
from ..io_utils import temporary_sibling
from ..passes.base import CORNER_IUV_ATTRIBUTE, CORNER_SURFACE_ATTRIBUTE, BlenderSetup, Emission
from ..scene.camera import PinholeCamera

SKY_STRENGTH_SCALE = 0.08
_RENDERS_STARTED = 0  # renders this process has started (ImagePair: which image to write)
TEXTURE_UV = "texture_uv"


@dataclass(frozen=True)
class PersonMesh:
    """Topology and per-corner data of one body kind: fixed while only the pose changes."""

    faces: np.ndarray  # (F, 3)
    corner_iuv: np.ndarray  # (F, 3, 3): I, U, V per face corner
    corner_texture_uv: np.ndarray  # (F, 3, 2)
    num_vertices: int


class ImagePair:
    """An image input whose pixels change every sample: two image datablocks, written in turn.

    With persistent data, Cycles keeps an image it has loaded for as long as the same
    datablock is in use, whatever its pixels become (`update()`, `update_tag()` and tagging
    the material do not reach it): rewriting one image in place rendered every sample in the
    first sample's clothes. A new datablock per sample (the earlier fix) was exact but made a
    worker grow with persistent data on (bench/worker_memory.py: +24% RSS over 300 samples;
    the heap in use grew ~0.4 MiB a sample with 1 to 3 people and stayed flat with one image
    pair per input), the memory of every image Cycles had seen was not all given back.

    So each input owns two images, and the one written is the one the last render did not use:
    an image no shader uses any more is freed by Cycles in that render's update, so the next
    render that uses it loads its new pixels. Cycles only ever sees these two datablocks, and
    none is removed (a removed image's address, reused by a new one, showed the removed one's
    pixels). When no render has started since the last write (a scene built twice), the image
    written last is written again: no render has seen it since.
    """

    def __init__(self, name: str, float_buffer: bool = False, colorspace: str | None = None):
        self.name, self.float_buffer, self.colorspace = name, float_buffer, colorspace
        self.images: list[bpy.types.Image] = []
        self.current: bpy.types.Image | None = None
        self._written_at = -1  # _RENDERS_STARTED when `current` was written

    def replace(self, rgba: np.ndarray) -> bpy.types.Image:
        """The image to use from the next render on, holding `rgba` ((H, W, 4) float, Blender
        pixel order: row 0 at the bottom)."""
        height, width = rgba.shape[:2]
        if self.current is not None and self._written_at == _RENDERS_STARTED:
            image = self.current
        elif len(self.images) < 2:
            image = bpy.data.images.new(self.name, width, height, alpha=True, float_buffer=self.float_buffer)
            if self.colorspace:
                image.colorspace_settings.name = self.colorspace
            self.images.append(image)
        else:
            image = self.images[0] if self.current is self.images[1] else self.images[1]
        if tuple(image.size) != (width, height):
            image.scale(width, height)
        image.pixels.foreach_set(np.ascontiguousarray(rgba, dtype=np.float32).ravel())
        image.update()
        self.current, self._written_at = image, _RENDERS_STARTED
        return image


class PersonSlot:
    """One person object in the scene: its mesh, clothing texture and material.

    Slots are created per body kind and reused from sample to sample; a sample with fewer
    people hides the slots it does not use.
    """

    def __init__(self, scene: bpy.types.Scene, mesh: PersonMesh, kind: str, number: int, texture_size: int):
        self.kind = kind
        self.object = _create_person_object(scene, mesh, f"densesynth_person_{number}")
        self._textures = ImagePair(f"densesynth_clothing_{number}")
        self.texture = self._textures.replace(np.ones((texture_size, texture_size, 4), dtype=np.float32))
        self.material = _create_person_material(self.texture, f"densesynth_clothes_{number}")
        self.object.data.materials.append(self.material)

    def set_vertices(self, vertices: np.ndarray) -> None:
        mesh = self.object.data
        mesh.vertices.foreach_set("co", np.ascontiguousarray(vertices, dtype=np.float32).ravel())
        mesh.update()

    def set_texture(self, rgba: np.ndarray, roughness: float) -> None:
        """Wear `rgba` from the next render on (`ImagePair`: exact with persistent data)."""
        self.texture = self._textures.replace(rgba)
        nodes = self.material.node_tree.nodes
        next(node for node in nodes if node.type == "TEX_IMAGE").image = self.texture
        nodes["Principled BSDF"].inputs["Roughness"].default_value = roughness

    def show(self, person_number: int | None) -> None:
        """Show as the sample's person `person_number` (0-based), or hide when None."""
        self.object.hide_render = person_number is None
        self.object.pass_index = 0 if person_number is None else person_number + 1


class BlenderScene:
    def __init__(self, texture_size: int, device: str = "CPU", threads: int = 0,
                 scene: bpy.types.Scene | None = None, persistent_data: bool = False):
        """Build into `scene`, or into a fresh empty file when None (render workers).

        The add-on passes a new scene of the artist's file, which is left otherwise untouched.
        """
        if scene is None:
            bpy.ops.wm.read_factory_settings(use_empty=True)
            scene = bpy.context.scene
        self.scene = scene
        self.texture_size = texture_size
        self.device = _configure_cycles(self.scene, device, threads, persistent_data)
        self.slots: list[PersonSlot] = []
        self.emission_materials: dict = {}
        self.camera = _create_camera(self.scene)
        self.sun, self.area = _create_lights(self.scene)
        self.world_background, self.world_sky = _create_world(self.scene)
        self._environments = ImagePair("densesynth_photo_environment", float_buffer=True, colorspace="Linear Rec.709")
        self.ground = _create_shadow_catcher(self.scene)

    # --- per-sample updates -------------------------------------------------------------
    def person_slots(self, kinds: list[str], meshes: dict[str, PersonMesh]) -> list[PersonSlot]:
        """One visible slot per person of the sample (in order), creating slots as needed."""
        free = list(self.slots)
        chosen: list[PersonSlot] = []
        for number, kind in enumerate(kinds):
            slot = next((s for s in free if s.kind == kind), None)
            if slot is None:
                slot = PersonSlot(self.scene, meshes[kind], kind, len(self.slots), self.texture_size)
                self.slots.append(slot)
            else:
                free.remove(slot)
            slot.show(number)
            chosen.append(slot)
        for slot in free:
            slot.show(None)
        return chosen

    def set_camera(self, camera: PinholeCamera) -> None:
        data = self.camera.data
        data.lens = camera.focal_length_mm
        data.sensor_width = camera.sensor_width_mm
        data.sensor_fit = "HORIZONTAL"
        data.shift_x = data.shift_y = 0.0
        data.clip_start, data.clip_end = 0.01, 1000.0
        self.camera.matrix_world = [list(row) for row in camera.camera_to_world.T]
        render = self.scene.render
        render.resolution_x, render.resolution_y = camera.width, camera.height
        render.resolution_percentage = 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0

    def set_lights(self, lights: dict, person_centre: np.ndarray, brightness: float = 1.0,
                   environment: np.ndarray | None = None) -> None:
        """Sun, area light and environment from the spec; `brightness` scales them all (a dark
        backdrop photograph gets a darker person). `environment`, an equirectangular RGBA map
        (appearance/photo_light.py), lights the person from the photograph instead of the
        ambient colour or sky when the spec's lights say so."""
        sun = lights["sun"]
        self.sun.data.energy = sun["strength"] * brightness
        self.sun.data.use_temperature = True
        self.sun.data.temperature = sun["temperature_k"]
        # A sun light shines along its -Z axis: aim it from the drawn direction at the person.
        self.sun.rotation_euler = (np.deg2rad(90.0 - sun["elevation_deg"]), 0.0, np.deg2rad(sun["azimuth_deg"]))
        area = lights["area"]
        az, el = np.deg2rad(area["azimuth_deg"]), np.deg2rad(area["elevation_deg"])
        offset = area["distance_m"] * np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
        self.area.location = tuple(person_centre + offset)
        self.area.rotation_euler = _aim_euler(-offset)
        self.area.data.energy = area["power_w"] * brightness
        self.area.data.size = area["size_m"]
        self.area.data.use_temperature = True
        self.area.data.temperature = area["temperature_k"]
        ambient = lights["ambient"]
        background, sky = self.world_background, self.world_sky
        links = self.scene.world.node_tree.links
        for link in list(background.inputs["Color"].links):
            links.remove(link)
        background.inputs["Color"].default_value = (*ambient["colour"], 1.0)
        strength = ambient["strength"] * brightness
        if ambient.get("kind") == "sky":
            # A physical sky agreeing with the sun's direction; its radiance is far above a
            # uniform ambient's, hence the scale. The sun light itself provides the disc.
            sky.sun_elevation = np.deg2rad(sun["elevation_deg"])
            sky.sun_rotation = np.deg2rad(sun["azimuth_deg"])
            links.new(sky.outputs["Color"], background.inputs["Color"])
            strength *= SKY_STRENGTH_SCALE
        if environment is not None and lights.get("environment"):
            links.new(self._environment_node(environment).outputs["Color"], background.inputs["Color"])
            strength = lights["environment"]["strength"]  # the map carries the photograph's brightness
        background.inputs["Strength"].default_value = strength

    def _environment_node(self, rgba: np.ndarray) -> bpy.types.Node:
        """The world's environment texture node wearing `rgba` (an `ImagePair`, as clothing
        textures are)."""
        node = self.scene.world.node_tree.nodes["densesynth_photo_environment"]
        node.image = self._environments.replace(rgba)
        return node

    # --- passes ---------------------------------------------------------------------------
    def render_pass(self, setup: "BlenderSetup", path: Path) -> None:
        """Render one pass (``passes/``) to `path`: apply its settings, material override and
        ground visibility, render, then restore every value it changed (in the order they were
        applied: an image format before its colour depth), so nothing leaks into the next pass."""
        scene = self.scene
        layer = scene.view_layers[0]
        override = self._aov_material(setup.aovs) if setup.aovs else (
            None if setup.emit is None else self._emission(setup.emit))
        wanted = [(layer, "material_override", override),
                  (self.ground, "hide_render", not setup.show_ground),
                  *((*_resolve(scene, dotted), value) for dotted, value in setup.settings)]
        # Every old value is read before any is set: Blender adjusts some settings to others
        # (a new image format changes the colour depth).
        saved = [(owner, attribute, getattr(owner, attribute)) for owner, attribute, _ in wanted]
        added = []  # the view layer's AOVs exist only for the render that writes them
        try:
            for owner, attribute, value in wanted:
                setattr(owner, attribute, value)
            for name, aov in setup.aovs:
                added.append(layer.aovs.add())
                added[-1].name, added[-1].type = name, aov.kind
            _render_to(scene, path)
        finally:
            for aov in added:
                layer.aovs.remove(aov)
            for owner, attribute, value in saved:
                setattr(owner, attribute, value)

    def _aov_material(self, aovs: tuple) -> bpy.types.Material:
        """The override material of a shared exact render, built once per set of AOVs."""
        material = self.emission_materials.get(aovs)
        if material is None:
            material = _aov_material(aovs)
            self.emission_materials[aovs] = material
        return material

    def _emission(self, emission: "Emission") -> bpy.types.Material:
        """The override material of an emission, built once per process."""
        material = self.emission_materials.get(emission)
        if material is None:
            material = _emission_material(emission)
            self.emission_materials[emission] = material
        return material


def _resolve(scene: bpy.types.Scene, dotted: str):
    """(object, attribute name) of a dotted settings path from the scene, e.g.
    'render.image_settings.file_format'."""
    owner = scene
    *path, attribute = dotted.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attribute


def _render_to(scene: bpy.types.Scene, path: Path) -> None:
    """Render a still to `path`, atomically: a killed worker leaves no partial file behind."""
    global _RENDERS_STARTED
    _RENDERS_STARTED += 1  # before rendering: a failed render may still have synced images
    path = Path(path)
    tmp = temporary_sibling(path)
    scene.render.use_file_extension = False
    scene.render.filepath = str(tmp)
    with _blender_stdout_silenced():
        bpy.ops.render.render(write_still=True)
    if not tmp.is_file():
        raise RuntimeError(f"Blender rendered no file at {tmp}")
    if path.suffix == ".exr":
        strip_volatile_metadata(tmp)  # still the temporary file: the final one appears complete
    os.replace(tmp, path)


@contextmanager
def _blender_stdout_silenced():
    """Blender prints a progress line per tile and a 'Saved:' line per file on the C-level
    stdout; a dataset job prints its own progress, so these are dropped (errors go to stderr
    and stay). Set DENSESYNTH_BLENDER_LOG=1 to keep them."""
    if os.environ.get("DENSESYNTH_BLENDER_LOG"):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def _configure_cycles(scene: bpy.types.Scene, device: str, threads: int, persistent_data: bool) -> str:
    scene.render.engine = "CYCLES"
    scene.render.film_transparent = True
    # Persistent data keeps the synced scene (BVH, shaders, images) in Cycles from one render
    # to the next; clothing and environment images are written into the one of two datablocks
    # the last render did not use (ImagePair), so no sample wears an earlier sample's clothes.
    scene.render.use_persistent_data = persistent_data
    scene.cycles.use_adaptive_sampling = True
    scene.display_settings.display_device = "sRGB"
    if threads > 0:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads
    scene.cycles.device = "CPU"
    if device == "GPU" and _enable_gpu():
        scene.cycles.device = "GPU"
        return "GPU"
    return "CPU"


def _enable_gpu() -> bool:
    """Use OptiX or CUDA when a device is present; otherwise stay on the CPU."""
    try:
        prefs = bpy.context.preferences.addons["cycles"].preferences
    except KeyError:
        return False
    for backend in ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI"):
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == backend
            return True
    return False


def _create_person_object(scene: bpy.types.Scene, person: PersonMesh, name: str) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    faces = np.ascontiguousarray(person.faces, dtype=np.int32)
    mesh.vertices.add(person.num_vertices)
    mesh.loops.add(faces.size)
    mesh.polygons.add(len(faces))
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update()
    iuv = np.ones((len(faces), 3, 4), dtype=np.float32)
    iuv[..., :3] = person.corner_iuv
    attribute = mesh.attributes.new(CORNER_IUV_ATTRIBUTE, "FLOAT_COLOR", "CORNER")
    attribute.data.foreach_set("color", iuv.ravel())
    # (face index, corner-is-1, corner-is-2, 1) per corner: interpolated on the triangle, the
    # surface pass reads the face and its barycentric coordinates (passes/surface.py).
    surface = np.zeros((len(faces), 3, 4), dtype=np.float32)
    surface[..., 0] = np.arange(len(faces), dtype=np.float32)[:, None]
    surface[:, 1, 1] = surface[:, 2, 2] = surface[..., 3] = 1.0
    attribute = mesh.attributes.new(CORNER_SURFACE_ATTRIBUTE, "FLOAT_COLOR", "CORNER")
    attribute.data.foreach_set("color", surface.ravel())
    uv_layer = mesh.uv_layers.new(name=TEXTURE_UV)
    uv_layer.data.foreach_set("uv", np.ascontiguousarray(person.corner_texture_uv, dtype=np.float32).ravel())
    mesh.shade_smooth()
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def _create_person_material(texture: bpy.types.Image, name: str) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    _ensure_node_tree(material)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes["Principled BSDF"]
    image_node = nodes.new("ShaderNodeTexImage")
    image_node.image = texture
    uv_node = nodes.new("ShaderNodeUVMap")
    uv_node.uv_map = TEXTURE_UV
    links.new(uv_node.outputs["UV"], image_node.inputs["Vector"])
    links.new(image_node.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def _node_chain(nodes, links, emission: "Emission"):
    """The output socket of an emission's node chain, built into `nodes`."""
    source = nodes.new(emission.node)
    for key, value in emission.node_settings:
        setattr(source, key, value)
    socket = source.outputs[emission.socket]
    for node_type, settings, output_name in emission.then:
        step = nodes.new(node_type)
        for key, value in settings:
            setattr(step, key, value)
        links.new(socket, step.inputs[0])
        socket = step.outputs[output_name]
    return socket


def _aov_material(aovs: tuple) -> bpy.types.Material:
    """One material writing each (name, Aov)'s node chain to its AOV. The surface emits white:
    a black emission compiles to no closure, which Cycles treats as transparent, and the ray
    would go on through the body and add the surfaces behind to every AOV (measured: values
    doubled and more)."""
    material = bpy.data.materials.new("densesynth_shared_exact")
    _ensure_node_tree(material)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    for name, aov in aovs:
        writer = nodes.new("ShaderNodeOutputAOV")
        writer.aov_name = name
        links.new(_node_chain(nodes, links, aov.source), writer.inputs["Value" if aov.kind == "VALUE" else "Color"])
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def _emission_material(emission: "Emission") -> bpy.types.Material:
    """A material that emits one node's output as is: the exact label passes' override."""
    material = bpy.data.materials.new(emission.material_name)
    _ensure_node_tree(material)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    socket = _node_chain(nodes, links, emission)
    node = nodes.new("ShaderNodeEmission")
    node.inputs["Strength"].default_value = 1.0
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(socket, node.inputs["Color"])
    links.new(node.outputs["Emission"], output.inputs["Surface"])
    return material


def _create_camera(scene: bpy.types.Scene) -> bpy.types.Object:
    camera = bpy.data.objects.new("densesynth_camera", bpy.data.cameras.new("densesynth_camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def _create_lights(scene: bpy.types.Scene) -> tuple[bpy.types.Object, bpy.types.Object]:
    sun = bpy.data.objects.new("densesynth_sun", bpy.data.lights.new("densesynth_sun", "SUN"))
    area = bpy.data.objects.new("densesynth_area", bpy.data.lights.new("densesynth_area", "AREA"))
    for light in (sun, area):
        scene.collection.objects.link(light)
    return sun, area


def _create_world(scene: bpy.types.Scene) -> tuple[bpy.types.Node, bpy.types.Node]:
    world = bpy.data.worlds.new("densesynth_world")
    _ensure_node_tree(world)
    scene.world = world
    # Cycles builds an importance map of the world for every render; its automatic size cost
    # ~0.8 s per frame with a sky. A smooth sky needs no more than 256 pixels of it.
    world.cycles.sampling_method = "MANUAL"
    world.cycles.sample_map_resolution = 256
    sky = world.node_tree.nodes.new("ShaderNodeTexSky")
    sky.sky_type = "MULTIPLE_SCATTERING"
    sky.sun_disc = False
    environment = world.node_tree.nodes.new("ShaderNodeTexEnvironment")
    environment.name = "densesynth_photo_environment"
    return world.node_tree.nodes["Background"], sky


def _create_shadow_catcher(scene: bpy.types.Scene) -> bpy.types.Object:
    mesh = bpy.data.meshes.new("densesynth_ground")
    size = 2.5  # metres around the person: shadows fall here; a larger plane only costs samples
    mesh.from_pydata([(-size, -size, 0), (size, -size, 0), (size, size, 0), (-size, size, 0)], [], [(0, 1, 2, 3)])
    ground = bpy.data.objects.new("densesynth_ground", mesh)
    ground.is_shadow_catcher = True
    scene.collection.objects.link(ground)
    return ground


def _ensure_node_tree(datablock) -> None:
    """Blender 5.0 gives new materials and worlds a node tree; older files may lack one."""
    if datablock.node_tree is None:
        datablock.use_nodes = True


def _aim_euler(direction: np.ndarray) -> tuple[float, float, float]:
    """Euler angles that turn an object's -Z axis (where lights shine) along `direction`."""
    from mathutils import Vector

    return tuple(Vector(direction.tolist()).to_track_quat("-Z", "Y").to_euler())
