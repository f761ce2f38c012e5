"""The package version: one place, read by ``unilandmark.__version__``, the model files'
provenance and ``pyproject.toml`` (``[tool.setuptools.dynamic]``)."""

__version__ = "0.1.0"
