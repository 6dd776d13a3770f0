"""The version of cvj, written once: pyproject.toml reads it (a dynamic version) and
every module that records or checks the version imports it from here."""

__version__ = "0.1.0"
