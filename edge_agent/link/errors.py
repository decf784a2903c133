"""Errors of the link package: the outbox, the MQTT adapter and the command handler."""

from __future__ import annotations


class EdgeLinkError(Exception):
    """Base of every error raised by :mod:`edge_agent.link` (not the hub's publish error)."""


class OutboxError(EdgeLinkError):
    """The outbox database could not be opened or written."""


class MessageTooLarge(OutboxError):
    """A message bigger than the outbox's whole byte cap; it can never be stored."""


class OutboxClosed(OutboxError):
    """An operation on an outbox that is closed or was never opened."""


class LinkConfigError(EdgeLinkError):
    """MQTT settings that cannot work (missing TLS files, bad port)."""
