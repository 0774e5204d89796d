"""The version of progrow, in one place: read by `progrow.__version__` and by the build (pyproject.toml)."""

__version__ = "0.1.0.dev0"
