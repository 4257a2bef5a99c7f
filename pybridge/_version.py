"""The package's version, as the worker tells the node at the handshake (pyproject.toml
carries the same number)."""
__version__ = "0.1.0"
