"""The package's version, in a module of its own so that any layer can read it without importing the
public façade (`judgerl/__init__.py` imports the pipeline)."""

__version__ = "0.1.0"
