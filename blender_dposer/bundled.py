# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the extension zip puts the ``dposer`` package (build_addon.py: ``<extension>/backend/dposer``), and putting
it on ``sys.path`` so that the add-on imports the torch-free :mod:`dposer.spec` (pose layout, skeleton, rotations,
bone maps, protocol, operation declarations) from it. A source checkout or a ``--without-backend`` build uses the
``dposer`` that Blender's Python already finds."""
from __future__ import annotations

import os
import sys

BUNDLED_BACKEND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backend")


def bundled_backend() -> str | None:
    """The folder that holds the extension's own ``dposer`` backend (its server), or None (a source checkout, or a
    zip built ``--without-backend``)."""
    server = os.path.join(BUNDLED_BACKEND, "dposer", "serve", "server.py")
    return BUNDLED_BACKEND if os.path.isfile(server) else None


def put_on_path() -> None:
    """Put the bundled ``dposer`` (the whole backend, or only its ``spec`` layer) first on ``sys.path``: the add-on
    and the package it ships are one release."""
    spec = os.path.join(BUNDLED_BACKEND, "dposer", "spec", "__init__.py")
    if os.path.isfile(spec) and BUNDLED_BACKEND not in sys.path:
        sys.path.insert(0, BUNDLED_BACKEND)
