#!/usr/bin/env bash
# Regenerate the pictures in docs/images from the bundled checkpoint (needs the shared data for the
# completion example). Run inside the project venv.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
dposer sample --n 12 --seed 0 --output "$tmp/samples.npz" --image docs/images/samples.png
# Complete hands: three EgoBody test poses with both hands flattened (zeroed), hands filled in by the prior.
python - "$tmp/flat_hands.npz" <<'PY'
import sys
import numpy as np
from dposer.formats import data
pose = data.load_wholebody_set("test").to_dict()
pose = {k: v[:3] for k, v in pose.items()}
pose["left_hand_pose"][:] = 0
pose["right_hand_pose"][:] = 0
np.savez(sys.argv[1], **pose)
PY
dposer complete --input "$tmp/flat_hands.npz" --missing left_hand,right_hand --hypotheses 5 --seed 0 \
    --output "$tmp/completed.npz" --image docs/images/complete_hands.png
rm -rf "$tmp"
