"""Serving the prior: the JSON-lines stdio server the Blender add-on talks to (``python -m dposer.serve``) and
``dposer batch`` over folders of takes."""
