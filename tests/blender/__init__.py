"""Add-on tests in real bpy (a package, so this folder's conftest does not shadow tests/conftest.py)."""
