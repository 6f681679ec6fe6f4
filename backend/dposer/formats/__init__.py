"""Files in and out: pose ``.npz`` files (:mod:`.npz`), task inputs and the shared data sets (:mod:`.data`), BVH
reading and writing (:mod:`.bvh`) and conversion between BVH takes and SMPL-X poses (:mod:`.convert`,
:mod:`.convert_back`)."""
