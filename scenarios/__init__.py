"""Bundled scenario and study files (data, read with importlib.resources; never executed)."""
