"""An SMPL body as a real Blender rig: armature, skinned mesh, shape keys, pose correctives.

Artists get a posable, animatable SMPL in Blender that deforms exactly like SMPL:
- Bones have head = joint and tail = joint + 0.1 along Blender's +Z, roll 0. Every bone's
  local axes are then SMPL's axes (SMPL (x, y, z) is Blender (x, -z, y)), and all rest
  frames share one orientation. So SMPL's local axis-angle rotations go straight onto the
  pose bones as quaternions, and the root translation straight into the root bone's location.
- Betas are shape keys. Setting them through `set_shape` also moves the bones to
  J(beta): re-shaping moves the joints.
- Pose correctives are 207 shape keys, one per entry of (R_j - I) for joints 1..23. Each
  is driven by a simple expression of its bone's quaternion, so the correctives follow the
  pose while it animates, without Python drivers (no auto-run needed).
Shape keys are evaluated before the armature modifier, which is exactly SMPL's order:
blend shapes in the rest pose, then linear blend skinning.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

SMPL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
BONE_LENGTH = 0.1

# (R - I)[a][b] of a unit quaternion (w, x, y, z), as Blender simple expressions.
_ROTATION_MINUS_IDENTITY = (
    ("-2*(y*y+z*z)", "2*(x*y-w*z)", "2*(x*z+w*y)"),
    ("2*(x*y+w*z)", "-2*(x*x+z*z)", "2*(y*z-w*x)"),
    ("2*(x*z-w*y)", "2*(y*z+w*x)", "-2*(x*x+y*y)"),
)


@dataclass
class SmplRig:
    armature: bpy.types.Object
    mesh: bpy.types.Object
    joint_names: list[str]
    template: np.ndarray  # (V, 3) SMPL frame
    shapedirs: np.ndarray  # (V, 3, B)
    joint_regressor: np.ndarray  # (24, V), dense

    def set_shape(self, betas: np.ndarray) -> None:
        """Shape key values for the betas, and bones moved to the joints of that shape."""
        betas = np.asarray(betas, dtype=np.float64)
        keys = self.mesh.data.shape_keys.key_blocks
        for k in range(self.shapedirs.shape[2]):
            keys[f"beta_{k:03d}"].value = float(betas[k]) if k < len(betas) else 0.0
        shaped = self.template + self.shapedirs[:, :, : len(betas)] @ betas[: self.shapedirs.shape[2]]
        _place_bones(self.armature, self.joint_names, self.joint_regressor @ shaped)

    def set_pose(self, pose72: np.ndarray, trans: np.ndarray | None = None) -> None:
        from mathutils import Quaternion, Vector

        rotvecs = np.asarray(pose72, dtype=np.float64).reshape(-1, 3)
        for name, rotvec in zip(self.joint_names, rotvecs):
            bone = self.armature.pose.bones[name]
            angle = float(np.linalg.norm(rotvec))
            axis = rotvec / angle if angle > 1e-12 else np.array([1.0, 0.0, 0.0])
            bone.rotation_mode = "QUATERNION"
            bone.rotation_quaternion = Quaternion(Vector(axis.tolist()), angle)
        root = self.armature.pose.bones[self.joint_names[0]]
        root.location = tuple(np.zeros(3) if trans is None else np.asarray(trans, dtype=float))

    def evaluated_vertices(self) -> np.ndarray:
        """World-space vertices after shape keys, correctives and skinning (Blender frame)."""
        depsgraph = bpy.context.evaluated_depsgraph_get()
        evaluated = self.mesh.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        coords = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", coords)
        evaluated.to_mesh_clear()
        coords = coords.reshape(-1, 3)
        matrix = np.array(self.mesh.matrix_world)
        return coords @ matrix[:3, :3].T + matrix[:3, 3]


def build_smpl_rig(scene: bpy.types.Scene, v_template: np.ndarray, shapedirs: np.ndarray, posedirs: np.ndarray,
                   joint_regressor: np.ndarray, weights: np.ndarray, parents: np.ndarray, faces: np.ndarray,
                   joint_names: list[str], name: str = "smpl") -> SmplRig:
    """Create the armature and skinned mesh of one SMPL model in `scene` (SMPL's arrays, Y up)."""
    regressor = np.asarray(joint_regressor.todense() if hasattr(joint_regressor, "todense") else joint_regressor)
    template = np.asarray(v_template, dtype=np.float64)
    armature = _create_armature(scene, name, joint_names, parents, regressor @ template)
    mesh = _create_mesh(scene, name, template, faces)
    _add_vertex_groups(mesh, joint_names, np.asarray(weights))
    modifier = mesh.modifiers.new("armature", "ARMATURE")
    modifier.object = armature
    modifier.use_vertex_groups = True
    modifier.use_deform_preserve_volume = False  # linear blend skinning, as SMPL
    mesh.parent = armature
    _add_shape_keys(mesh, template, np.asarray(shapedirs, dtype=np.float64), np.asarray(posedirs, dtype=np.float64))
    _add_corrective_drivers(mesh, armature, joint_names)
    return SmplRig(armature, mesh, list(joint_names), template, np.asarray(shapedirs, dtype=np.float64), regressor)


def _to_blender(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ SMPL_TO_BLENDER.T


def _create_armature(scene, name, joint_names, parents, joints) -> bpy.types.Object:
    data = bpy.data.armatures.new(f"{name}_armature")
    armature = bpy.data.objects.new(f"{name}_armature", data)
    scene.collection.objects.link(armature)
    view_layer = scene.view_layers[0]
    previous = view_layer.objects.active
    view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    for index, joint_name in enumerate(joint_names):
        bone = data.edit_bones.new(joint_name)
        bone.head = (0.0, 0.0, 0.0)
        bone.tail = (0.0, 0.0, BONE_LENGTH)
        if parents[index] >= 0:
            bone.parent = data.edit_bones[joint_names[parents[index]]]
    bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = previous
    _place_bones(armature, joint_names, joints)
    return armature


def _place_bones(armature: bpy.types.Object, joint_names: list[str], joints_smpl: np.ndarray) -> None:
    """Move the rest bones to joint positions (SMPL frame); orientation stays SMPL's axes."""
    scene_layer = bpy.context.view_layer
    previous = scene_layer.objects.active
    if armature.name not in scene_layer.objects:
        raise RuntimeError("the rig's armature must be in the active view layer to be re-shaped")
    scene_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    for joint_name, position in zip(joint_names, _to_blender(joints_smpl)):
        bone = armature.data.edit_bones[joint_name]
        bone.head = tuple(position)
        bone.tail = tuple(position + np.array([0.0, 0.0, BONE_LENGTH]))
        bone.roll = 0.0
    bpy.ops.object.mode_set(mode="OBJECT")
    scene_layer.objects.active = previous


def _create_mesh(scene, name, template, faces) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(f"{name}_mesh")
    faces = np.ascontiguousarray(faces, dtype=np.int32)
    mesh.vertices.add(len(template))
    mesh.vertices.foreach_set("co", _to_blender(template).astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.polygons.add(len(faces))
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update()
    obj = bpy.data.objects.new(f"{name}_mesh", mesh)
    scene.collection.objects.link(obj)
    return obj


def _add_vertex_groups(mesh_obj, joint_names, weights) -> None:
    for joint, joint_name in enumerate(joint_names):
        group = mesh_obj.vertex_groups.new(name=joint_name)
        column = weights[:, joint]
        for vertex in np.nonzero(column > 0)[0]:
            group.add([int(vertex)], float(column[vertex]), "REPLACE")


def _add_shape_keys(mesh_obj, template, shapedirs, posedirs) -> None:
    basis = mesh_obj.shape_key_add(name="Basis", from_mix=False)
    basis_co = _to_blender(template)
    basis.data.foreach_set("co", basis_co.astype(np.float32).ravel())
    blocks = [(f"beta_{k:03d}", shapedirs[:, :, k]) for k in range(shapedirs.shape[2])]
    blocks += [(f"pose_{i // 9 + 1:02d}_{(i % 9) // 3}{i % 3}", posedirs[:, :, i]) for i in range(posedirs.shape[2])]
    for key_name, offsets in blocks:
        key = mesh_obj.shape_key_add(name=key_name, from_mix=False)
        key.slider_min, key.slider_max = -10.0, 10.0
        key.data.foreach_set("co", (basis_co + _to_blender(offsets)).astype(np.float32).ravel())
        key.value = 0.0


def _add_corrective_drivers(mesh_obj, armature, joint_names) -> None:
    keys = mesh_obj.data.shape_keys
    for joint in range(1, len(joint_names)):
        for a in range(3):
            for b in range(3):
                block = keys.key_blocks[f"pose_{joint:02d}_{a}{b}"]
                driver = block.driver_add("value").driver
                driver.type = "SCRIPTED"
                for component, var_name in enumerate("wxyz"):
                    var = driver.variables.new()
                    var.name = var_name
                    var.type = "SINGLE_PROP"
                    target = var.targets[0]
                    target.id = armature
                    target.data_path = f'pose.bones["{joint_names[joint]}"].rotation_quaternion[{component}]'
                driver.expression = _ROTATION_MINUS_IDENTITY[a][b]
