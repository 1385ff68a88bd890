"""The library's version (a leaf module, so any module can read it without importing
``kwta`` itself)."""

__version__ = "0.1.0"
