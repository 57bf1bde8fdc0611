"""The ``tripsearch`` command line: the sub-commands, their progress lines and the rendering of results."""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
