"""``python -m dposer.serve``: the JSON-lines server on stdin/stdout."""
import sys

from .server import main

sys.exit(main())
