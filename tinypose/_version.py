"""The package version, in a leaf module: any module reads it without importing the package root.

pyproject.toml reads it too (``[tool.setuptools.dynamic]``), so it is written in one place only.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
