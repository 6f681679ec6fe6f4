"""Training a prior (:mod:`.train`) and building its BVH training corpus (:mod:`.corpus`); not shipped in the
Blender extension."""
