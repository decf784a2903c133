"""The vision pipeline's exceptions: one base, one subclass per kind of failure."""

from __future__ import annotations

__all__ = ["ModelError", "SourceError", "UnknownCamera", "VisionError"]


class VisionError(Exception):
    """Base of every error the vision pipeline raises."""


class ModelError(VisionError):
    """The detector model is missing, corrupt, or not a layout we can decode."""


class SourceError(VisionError):
    """A camera source cannot be opened or read."""


class UnknownCamera(VisionError, KeyError):
    """A camera id that is not in the config (a ``KeyError`` too, for dict-like callers)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown camera"
