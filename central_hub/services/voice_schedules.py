"""Scheduled announcements: a notice to every loudspeaker of a grid area at set times.

A schedule (``voice_schedules``) names a grid area, a notice template and its variables,
local times and weekdays and a date range. Serve's ``voice-schedules`` task calls
:meth:`VoiceSchedules.run_due` every tick: each slot that is due (pure:
:func:`central_hub.domain.voice_schedule.due_slots`) is claimed by inserting its row in
``voice_schedule_slots`` (the primary key lets one worker of several win it, and a worker
that restarts finds it claimed) and announced through the notices' speaker channel
(:meth:`central_hub.services.notices.NoticeService.send_many`: one ``speaker.say`` per
loudspeaker of the area). The notice is queued under the actor ``schedule:<id>@<slot>``;
a worker killed between its claim and recording the notice's id leaves the slot open,
and the next pass that takes the claim over (after :data:`CLAIM_LEASE`) first looks for
a notice by that actor, so the area hears each slot once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import notices, voice_schedule_slots, voice_schedules
from central_hub.domain.errors import NoticeError
from central_hub.domain.notices import Audience, NoticeChannel
from central_hub.domain.voice_schedule import Schedule, ScheduleError, due_slots, parse_times
from central_hub.errors import InvalidInputError, NotFoundError
from central_hub.services.notices import NoticeRequest, NoticeService

log = logging.getLogger(__name__)

__all__ = ["CLAIM_LEASE", "ScheduleView", "VoiceSchedules"]

#: A claim without a notice this old is taken over (its worker died).
CLAIM_LEASE = timedelta(seconds=60)
#: A slot missed by more than this (the hub was down) is skipped, not announced late.
GRACE = timedelta(minutes=10)
_S, _SL = voice_schedules.c, voice_schedule_slots.c


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as the API shows it."""

    id: int
    area: str
    template: str
    variables: dict[str, str]
    times: list[str]
    weekdays: list[int]
    start_date: date
    end_date: date | None
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None
    #: Slots announced so far: (slot time, notice id), newest first, at most 20.
    sent: list[tuple[datetime, str | None]]


def _schedule(row: Any, tz: str) -> Schedule:
    return Schedule(
        parse_times(list(row.times)), frozenset(row.weekdays), row.start_date, row.end_date, tz
    )


class VoiceSchedules:
    """Schedules and the pass that announces their due slots; see the module doc."""

    def __init__(
        self,
        engine: AsyncEngine,
        notice_service: NoticeService,
        clock: Callable[[], datetime],
        *,
        tz: str = "Asia/Shanghai",
        tick_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.notices = notice_service
        self.clock = clock
        self.tz = tz
        self.tick_s = tick_s

    async def create(
        self,
        *,
        area: str,
        template: str,
        variables: dict[str, str],
        times: list[str],
        weekdays: list[int],
        start_date: date,
        end_date: date | None,
        actor: str,
    ) -> ScheduleView:
        """Store a schedule; :class:`InvalidInputError` names what is wrong."""
        try:
            parsed = Schedule(
                parse_times(times), frozenset(weekdays), start_date, end_date, self.tz
            )
        except ScheduleError as exc:
            raise InvalidInputError(f"schedule not kept: {exc}") from exc
        # The audience and template are checked now, not at the first slot.
        await self._check_notice(area, template, variables)
        async with self.engine.begin() as conn:
            made = await conn.execute(
                voice_schedules.insert().values(
                    area=area,
                    template=template,
                    variables=dict(variables),
                    times=[t.strftime("%H:%M") for t in parsed.times],
                    weekdays=sorted(parsed.weekdays),
                    start_date=start_date,
                    end_date=end_date,
                    created_by=actor,
                    created_at=self.clock(),
                )
            )
            new_id = int(made.inserted_primary_key[0])  # type: ignore[index]
        log.info("voice schedule %d for area %s by %s", new_id, area, actor)
        return await self.get(new_id)

    async def _check_notice(self, area: str, template: str, variables: dict[str, str]) -> None:
        try:
            await self.notices.template(template)
            await self.notices.resolver.resolve(Audience("area", key=area), NoticeChannel.SPEAKER)
        except (NoticeError, NotFoundError) as exc:
            raise InvalidInputError(f"schedule not kept: {exc}") from exc

    async def cancel(self, schedule_id: int) -> ScheduleView:
        """Stop a schedule (its sent slots stay on record)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                voice_schedules.update()
                .where(_S.id == schedule_id, _S.cancelled_at.is_(None))
                .values(cancelled_at=self.clock())
            )
        return await self.get(schedule_id)

    async def get(self, schedule_id: int) -> ScheduleView:
        """One schedule with its latest sent slots; NotFoundError when unknown."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(voice_schedules.select().where(_S.id == schedule_id))).first()
            if row is None:
                raise NotFoundError(f"no voice schedule {schedule_id}")
            sent = (
                await conn.execute(
                    sa.select(_SL.slot_at, _SL.notice_id)
                    .where(_SL.schedule_id == schedule_id)
                    .order_by(_SL.slot_at.desc())
                    .limit(20)
                )
            ).all()
        return ScheduleView(
            id=row.id,
            area=row.area,
            template=row.template,
            variables=dict(row.variables),
            times=list(row.times),
            weekdays=list(row.weekdays),
            start_date=row.start_date,
            end_date=row.end_date,
            created_by=row.created_by,
            created_at=row.created_at,
            cancelled_at=row.cancelled_at,
            sent=[(s.slot_at, s.notice_id) for s in sent],
        )

    async def all(self) -> list[ScheduleView]:
        """Every schedule, newest first."""
        async with self.engine.connect() as conn:
            ids = (await conn.execute(sa.select(_S.id).order_by(_S.id.desc()))).scalars().all()
        return [await self.get(i) for i in ids]

    async def run_due(self) -> int:
        """Announce every due slot of every open schedule; the number announced now."""
        now = self.clock()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(voice_schedules.select().where(_S.cancelled_at.is_(None)))
            ).all()
        sent = 0
        for row in rows:
            for slot in due_slots(_schedule(row, self.tz), row.created_at, now, grace=GRACE):
                sent += await self._announce(row, slot, now)
        return sent

    async def _claim(self, schedule_id: int, slot: datetime, now: datetime) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    voice_schedule_slots.insert().values(
                        schedule_id=schedule_id, slot_at=slot, claimed_at=now
                    )
                )
            return True
        except IntegrityError:
            pass
        # Claimed before: take it over only when its worker died before queueing.
        async with self.engine.begin() as conn:
            taken = await conn.execute(
                voice_schedule_slots.update()
                .where(
                    _SL.schedule_id == schedule_id,
                    _SL.slot_at == slot,
                    _SL.notice_id.is_(None),
                    _SL.claimed_at < now - CLAIM_LEASE,
                )
                .values(claimed_at=now)
            )
            return taken.rowcount == 1

    async def _announce(self, row: Any, slot: datetime, now: datetime) -> int:
        if not await self._claim(row.id, slot, now):
            return 0
        actor = f"schedule:{row.id}@{slot:%Y-%m-%dT%H:%MZ}"
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(sa.select(notices.c.id).where(notices.c.created_by == actor))
            ).scalar()
        if found is None:
            request = NoticeRequest(
                row.template,
                dict(row.variables),
                Audience("area", key=row.area),
                NoticeChannel.SPEAKER,
            )
            try:
                [found] = await self.notices.send_many([request], actor=actor)
            except NoticeError as exc:  # the template or area went away since
                log.warning("voice schedule %d slot %s not announced: %s", row.id, slot, exc)
                found = ""
        async with self.engine.begin() as conn:
            await conn.execute(
                voice_schedule_slots.update()
                .where(_SL.schedule_id == row.id, _SL.slot_at == slot)
                .values(notice_id=found or "")
            )
        log.info("voice schedule %d: slot %s announced (notice %s)", row.id, slot, found)
        return 1 if found else 0

    async def run(self) -> None:
        """Serve's task: :meth:`run_due` every ``tick_s``; a failing pass is logged."""
        while True:
            try:
                await self.run_due()
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                log.warning("voice schedules: pass failed, retrying: %s", exc)
            await asyncio.sleep(self.tick_s)
