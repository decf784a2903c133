"""The vision pipeline's exceptions: one base, one subclass per kind of failure."""

from __future__ import annotations

__all__ = ["ModelError", "SourceError", "VisionError"]


class VisionError(Exception):
    """Base of every error the vision pipeline raises."""


class ModelError(VisionError):
    """The detector model is missing, corrupt, or not a layout we can decode."""


class SourceError(VisionError):
    """A camera source cannot be opened or read."""
