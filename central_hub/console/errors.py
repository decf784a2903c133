"""The console's exceptions."""

from __future__ import annotations

from central_hub.errors import HubError

__all__ = ["ConsoleError", "UploadRefused"]


class ConsoleError(HubError):
    """Base of the console's own errors."""


class UploadRefused(ConsoleError):
    """An upload that is not an image, is empty or is over the size cap.

    ``key`` and ``values`` name the translated message; ``status`` is the HTTP status
    (413 for size, 415 for type, 422 for an empty file).
    """

    def __init__(self, message: str, *, key: str, status: int, **values: object) -> None:
        super().__init__(message)
        self.key = key
        self.status = status
        self.values = values
