"""Backends and what they store."""

from .embedded import EmbeddedBackend

__all__ = ["EmbeddedBackend"]
