"""The torch-free description of poses and operations that everything else stands on (NumPy only): the pose
layout (:mod:`.layout`), the SMPL-X skeleton and its NumPy kinematics (:mod:`.skeleton`), rotations in Blender's
conventions (:mod:`.rotations`), the bone-name presets of rigs and BVH files (:mod:`.bone_maps`), the stdio
protocol (:mod:`.protocol`) and one declaration per operation (:mod:`.operations`). The Blender add-on imports
this package; nothing here imports torch or anything else of ``dposer``."""
