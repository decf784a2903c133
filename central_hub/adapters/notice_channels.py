"""The channels notices go out on, one adapter each behind :class:`NoticeSender`.

* :class:`WebhookSender`: an SMS gateway's shape: ``POST`` to a URL template (``{phone}``,
  ``{id}``) with a JSON body, an ``Idempotency-Key`` header that is the delivery's id on
  every attempt (a gateway drops repeats by it), and ``X-Xiuhua-Signature: sha256=<hex>``,
  HMAC-SHA256 of the body with the shared secret. 2xx: accepted (the gateway's
  ``message_id`` from the answer, if it gives one, is the receipt's key); 5xx, 408, 429, a
  timeout or a refused connection: retried by the queue; any other 4xx: failed with the
  gateway's answer as the reason.
* :class:`SmtpSender`: e-mail through an SMTP server (aiosmtplib). The server taking the
  message is ``sent``, not ``delivered``: SMTP gives no receipt, so an e-mail is only
  ``delivered`` if a receipt comes through the receipts endpoint. 5xx replies fail it,
  4xx replies and connection problems are retried.
* :class:`SpeakerSender`: the loudspeakers of a grid area: a signed ``speaker.say`` per
  speaker through the command queue; the command's id is the provider id and its ack
  (``succeeded``) is the receipt (:meth:`NoticeService.sweep_speaker_receipts`).

Vendor types (httpx, aiosmtplib) stay in this module.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol
from urllib.parse import quote

import aiosmtplib
import httpx
import sqlalchemy as sa

from central_hub.db.schema import commands
from central_hub.domain.notices import Accepted, NoticeChannel, Refused, Retryable, SendOutcome
from central_hub.errors import CommandError, NotFoundError
from central_hub.services.commands import CommandService

log = logging.getLogger(__name__)

__all__ = [
    "SIGNATURE_HEADER",
    "NoticeSender",
    "Outgoing",
    "SmtpSender",
    "SpeakerSender",
    "WebhookSender",
    "sign_body",
    "verify_signature",
]

#: The header carrying ``sha256=<hex HMAC-SHA256 of the body>``, both ways.
SIGNATURE_HEADER = "X-Xiuhua-Signature"
#: The longest provider id kept (the column's width).
_PROVIDER_ID_MAX = 128


def sign_body(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``body``'s signature with ``secret`` (constant time)."""
    if not header:
        return False
    return hmac.compare_digest(sign_body(secret, body), header.strip())


@dataclass(frozen=True)
class Outgoing:
    """One delivery as a channel sends it: ``delivery_id`` is the idempotency key."""

    delivery_id: str
    notice_id: str
    address: str
    name: str
    subject: str
    body: str


class NoticeSender(Protocol):
    """One channel's adapter: sends a delivery and says how it went, never raises for a
    failed send (the outcome carries it)."""

    channel: NoticeChannel

    async def send(self, item: Outgoing) -> SendOutcome:
        """Send ``item`` once."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class WebhookSender:
    """Texts through an SMS gateway's webhook (see the module docstring)."""

    channel = NoticeChannel.SMS

    def __init__(
        self,
        url_template: str,
        secret: bytes,
        *,
        timeout_s: float = 10.0,
        connections: int = 64,
    ) -> None:
        self.url_template = url_template
        self.secret = secret
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._client = httpx.AsyncClient(timeout=timeout_s, limits=limits)

    def url_for(self, item: Outgoing) -> str:
        """The URL template with ``{phone}`` and ``{id}`` filled (URL-quoted)."""
        return self.url_template.replace("{phone}", quote(item.address, safe="")).replace(
            "{id}", quote(item.delivery_id, safe="")
        )

    async def send(self, item: Outgoing) -> SendOutcome:
        """POST the text; see the module docstring for what each answer means."""
        body = json.dumps(
            {
                "id": item.delivery_id,
                "notice": item.notice_id,
                "to": item.address,
                "text": item.body,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": item.delivery_id,
            SIGNATURE_HEADER: sign_body(self.secret, body),
        }
        try:
            resp = await self._client.post(self.url_for(item), content=body, headers=headers)
        except httpx.TimeoutException:
            return Retryable("gateway timed out")
        except httpx.HTTPError as exc:
            return Retryable(f"gateway unreachable: {type(exc).__name__}")
        code = resp.status_code
        if 200 <= code < 300:
            return Accepted(_provider_id(resp, item.delivery_id))
        reason = f"gateway answered {code}: {resp.text[:200]}"
        if code >= 500 or code in (408, 429):
            return Retryable(reason)
        return Refused(reason)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _provider_id(resp: httpx.Response, fallback: str) -> str:
    try:
        answer = resp.json()
    except ValueError:
        return fallback
    if isinstance(answer, dict):
        given = answer.get("message_id")
        if isinstance(given, str) and 0 < len(given) <= _PROVIDER_ID_MAX:
            return given
    return fallback


class SmtpSender:
    """E-mails through an SMTP server (see the module docstring)."""

    channel = NoticeChannel.EMAIL

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls = starttls
        self.username, self.password = username, password
        self.timeout_s = timeout_s

    async def send(self, item: Outgoing) -> SendOutcome:
        """Hand the message to the server; its Message-ID is the provider id."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = item.address
        msg["Subject"] = item.subject or item.body[:60]
        message_id = make_msgid(idstring=item.delivery_id, domain="xiuhua.notices")
        msg["Message-ID"] = message_id
        msg.set_content(item.body)
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.host,
                port=self.port,
                start_tls=self.starttls,
                username=self.username,
                password=self.password,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            reason = f"server refused the recipient: {codes}"
            return Retryable(reason) if all(400 <= c < 500 for c in codes) else Refused(reason)
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"server answered {exc.code}: {exc.message[:200]}"
            return Retryable(reason) if 400 <= exc.code < 500 else Refused(reason)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Retryable(f"server unreachable: {type(exc).__name__}")
        return Accepted(message_id[:_PROVIDER_ID_MAX])

    async def aclose(self) -> None:
        """Nothing held between sends (one connection a message: a few thousand a year)."""


class SpeakerSender:
    """Announcements on loudspeakers: a ``speaker.say`` command per speaker device."""

    channel = NoticeChannel.SPEAKER

    def __init__(self, commands: CommandService) -> None:
        self.commands = commands

    async def send(self, item: Outgoing) -> SendOutcome:
        """Queue a signed ``speaker.say`` for the device ``item.address``, once: the command
        is created by ``notice:<delivery id>``, and a resend after a killed worker finds
        it rather than announcing twice."""
        actor = f"notice:{item.delivery_id}"
        async with self.commands.engine.connect() as conn:
            earlier = (
                await conn.execute(
                    sa.select(commands.c.cmd_id).where(
                        commands.c.device_id == item.address, commands.c.created_by == actor
                    )
                )
            ).first()
        if earlier is not None:
            return Accepted(earlier.cmd_id)
        try:
            view = await self.commands.enqueue(
                item.address, "speaker.say", {"text": item.body}, actor=actor
            )
        except NotFoundError as exc:
            return Refused(str(exc))
        except CommandError as exc:
            return Refused(f"speaker.say refused: {exc}")
        return Accepted(view.cmd_id)

    async def aclose(self) -> None:
        """Nothing to release."""
