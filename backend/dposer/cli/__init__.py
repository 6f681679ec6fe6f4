"""The ``dposer`` command line (``dposer --help``): :mod:`.parser` reads the arguments, :mod:`.commands` runs them."""
from __future__ import annotations

import sys

from .commands import MissingExtra
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv=None) -> int:
    from ..core.prior import CheckpointError
    from ..formats.data import DataError

    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except (DataError, CheckpointError, FileNotFoundError, ValueError, MissingExtra) as e:
        print(f"dposer {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) else 0
