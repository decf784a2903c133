"""The notice worker: claims due deliveries, sends them on their channel, records how it went.

One task per configured channel (``notices-sms``, ``notices-email``, ``notices-speaker``)
inside the worker's own task group, so ``central-hub serve`` runs and stops it as one
named task. Each pass takes as many deliveries as the channel's token bucket allows (at
most ``batch``), sends them ``concurrency`` at a time, and records the batch in one
transaction. The queue is in the database (:mod:`central_hub.services.notices`), so a
killed worker loses nothing: its claimed rows are taken again when their lease ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.notice_channels import (
    NoticeSender,
    SmtpSender,
    SpeakerSender,
    WebhookSender,
)
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.errors import NoticeError
from central_hub.domain.grid import Grid
from central_hub.domain.notices import (
    NoticeChannel,
    QuietHours,
    RetryPolicy,
    SendOutcome,
    TokenBucket,
)
from central_hub.errors import SettingsError
from central_hub.services.commands import CommandService
from central_hub.services.notices import AudienceResolver, Claimed, HubAudiences, NoticeService
from central_hub.settings import HubSettings

log = logging.getLogger(__name__)

__all__ = ["ChannelLimits", "NoticeWorker", "notices_from_settings", "quiet_hours_of"]


@dataclass(frozen=True)
class ChannelLimits:
    """A channel's rate (sends a second, this process), burst and sends in flight."""

    per_s: float
    burst: int
    concurrency: int = 32


class NoticeWorker:
    """See the module docstring."""

    def __init__(
        self,
        service: NoticeService,
        senders: Mapping[NoticeChannel, NoticeSender],
        limits: Mapping[NoticeChannel, ChannelLimits],
        *,
        tick_s: float = 1.0,
        batch: int = 200,
    ) -> None:
        self.service = service
        self.senders = dict(senders)
        self.limits = dict(limits)
        self.buckets = {
            ch: TokenBucket(rate_per_s=lim.per_s, burst=lim.burst) for ch, lim in limits.items()
        }
        self.tick_s = tick_s
        self.batch = batch
        for channel in self.senders:
            service.woken.setdefault(channel, asyncio.Event())

    async def run(self) -> None:
        """Send forever on every channel; cancelling it ends every channel's task."""
        try:
            async with asyncio.TaskGroup() as tg:
                for channel in self.senders:
                    tg.create_task(self._loop(channel), name=f"notices-{channel.value}")
        finally:
            for sender in self.senders.values():
                await sender.aclose()

    async def _loop(self, channel: NoticeChannel) -> None:
        woken = self.service.woken[channel]
        while True:
            woken.clear()
            wait = self.tick_s
            try:
                sent = await self.run_once(channel)
                if channel is NoticeChannel.SPEAKER:
                    await self.service.sweep_speaker_receipts()
                if sent:
                    continue  # more may be due at once
                bucket_wait = self.buckets[channel].wait_s(self.service.clock())
                if bucket_wait:
                    wait = min(wait, bucket_wait)
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                log.error("notice pass on %s failed, retrying: %s", channel.value, exc)
            try:
                async with asyncio.timeout(wait):
                    await woken.wait()
            except TimeoutError:
                pass

    async def run_once(self, channel: NoticeChannel) -> int:
        """One pass on ``channel``: claim what the rate allows, send, record; how many
        deliveries were claimed."""
        bucket = self.buckets[channel]
        allowed = min(self.batch, bucket.available(self.service.clock()))
        claimed = await self.service.claim(channel, allowed)
        if not claimed:
            return 0
        bucket.take(self.service.clock(), len(claimed))
        sender = self.senders[channel]
        gate = asyncio.Semaphore(self.limits[channel].concurrency)

        async def one(item: Claimed) -> tuple[Claimed, SendOutcome]:
            async with gate:
                return item, await sender.send(item.item)

        results = await asyncio.gather(*(one(c) for c in claimed))
        await self.service.record(results)
        return len(claimed)


def quiet_hours_of(text: str | None, calendar: WorkCalendar) -> QuietHours | None:
    """``HH:MM-HH:MM`` (the setting) in the calendar's zone; None for empty."""
    if not text:
        return None
    start, end = (time.fromisoformat(part) for part in text.split("-"))
    try:
        return QuietHours(start, end, calendar.tz)
    except NoticeError as exc:
        raise SettingsError(f"notice_quiet_hours (XH_HUB_NOTICE_QUIET_HOURS): {exc}") from exc


def notices_from_settings(
    settings: HubSettings,
    engine: AsyncEngine,
    clock: Callable[[], datetime],
    grid: Grid,
    calendar: WorkCalendar,
    commands: CommandService,
    *,
    registry: AudienceResolver | None = None,
) -> tuple[NoticeService, NoticeWorker]:
    """The notice service and its worker with the channels ``settings`` configure (the
    speaker channel always; texts with ``notice_sms_url``; e-mail with
    ``notice_smtp_host``); a secret file that cannot be read is a SettingsError."""
    secret = (
        settings.notice_secret("notice_sms_secret_file")
        if settings.notice_sms_secret_file is not None
        else None
    )
    service = NoticeService(
        engine,
        clock,
        HubAudiences(engine, grid, registry),
        quiet=quiet_hours_of(settings.notice_quiet_hours, calendar),
        retry=RetryPolicy(
            settings.notice_retry_initial_s,
            settings.notice_retry_cap_s,
            settings.notice_max_attempts,
        ),
        lease=timedelta(seconds=settings.notice_lease_s),
        receipt_secret=secret,
    )
    senders: dict[NoticeChannel, NoticeSender] = {NoticeChannel.SPEAKER: SpeakerSender(commands)}
    limits = {
        NoticeChannel.SPEAKER: ChannelLimits(
            settings.notice_speaker_per_s, settings.notice_speaker_burst, 8
        )
    }
    if settings.notice_sms_url is not None and secret is not None:
        senders[NoticeChannel.SMS] = WebhookSender(
            settings.notice_sms_url,
            secret,
            timeout_s=settings.notice_sms_timeout_s,
            connections=settings.notice_sms_concurrency,
        )
        limits[NoticeChannel.SMS] = ChannelLimits(
            settings.notice_sms_per_s, settings.notice_sms_burst, settings.notice_sms_concurrency
        )
    if settings.notice_smtp_host is not None and settings.notice_smtp_from is not None:
        password = None
        if settings.notice_smtp_password_file is not None:
            password = settings.notice_secret("notice_smtp_password_file").decode("utf-8")
        senders[NoticeChannel.EMAIL] = SmtpSender(
            settings.notice_smtp_host,
            settings.notice_smtp_port,
            settings.notice_smtp_from,
            starttls=settings.notice_smtp_starttls,
            username=settings.notice_smtp_username,
            password=password,
        )
        limits[NoticeChannel.EMAIL] = ChannelLimits(
            settings.notice_email_per_s, settings.notice_email_burst, 4
        )
    return service, NoticeWorker(service, senders, limits, tick_s=settings.notice_tick_s)
