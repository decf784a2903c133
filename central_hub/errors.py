"""The hub's exception hierarchy (service side; the pure domain has its own in ``domain``)."""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BrokerError",
    "CommandError",
    "ConflictError",
    "ForbiddenError",
    "HubError",
    "InvalidInputError",
    "NotFoundError",
    "ProvisionError",
    "SettingsError",
    "StorageError",
    "TooLargeError",
]


class HubError(Exception):
    """Base of every error the hub's services raise."""


class StorageError(HubError):
    """The database or the evidence store failed or is misconfigured."""


class NotFoundError(HubError):
    """A case, event, device, command or user that does not exist."""


class ConflictError(HubError):
    """A request that conflicts with the current state (a refused transition, a duplicate)."""


class BrokerError(HubError):
    """The MQTT broker did not take a message: not connected, refused, or no ack in time."""


class InvalidInputError(HubError):
    """Input the hub cannot use (an upload that is not a JPEG image)."""


class TooLargeError(HubError):
    """A request body larger than the hub accepts."""


class CommandError(HubError):
    """A command that cannot be queued (unknown device, bad kind or parameters)."""


class SettingsError(HubError):
    """A setting names a file the hub cannot use (missing, unreadable); the message names
    the setting and its ``XH_HUB_`` variable."""


class ProvisionError(HubError):
    """Provisioning could not write a device's credentials or the broker's files."""


class AuthError(HubError):
    """A missing, unknown or disabled token, or a role that may not do this."""


class ForbiddenError(AuthError):
    """A known user whose role may not do this."""


class TooManyAttempts(HubError):
    """A source refused for a while after too many failed logins or refused tokens."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            f"too many failed attempts from this address; try again in {retry_after_s:.0f} s"
        )
        self.retry_after_s = retry_after_s
