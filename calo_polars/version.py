"""The version, in a module of its own: every stage reads it without importing the package's public face."""

__version__ = "0.1.0"
