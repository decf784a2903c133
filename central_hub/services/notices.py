"""Notices: templates, sending to an audience, the delivery queue, receipts, opt-outs.

:meth:`NoticeService.send_many` fills each notice's template once, resolves its audience
to recipients (:class:`AudienceResolver`) and writes the notice and one delivery row per
recipient in one transaction, so a notice is never half queued. The cheap, first-class
call for a move-your-car reminder is :meth:`NoticeService.remind`: one template, one
contact, one channel, a case id.

The deliveries are the durable queue (:mod:`central_hub.domain.notices` has the states).
:meth:`NoticeService.claim` takes due rows in one conditional ``UPDATE`` that marks them
``sending`` under a random claim token and a lease (on PostgreSQL the rows are picked
``FOR UPDATE SKIP LOCKED``, so two hub workers never take the same row; SQLite has one
writer). A row left ``sending`` past its lease (its worker was killed between sending and
recording) is claimed again and sent again under the same delivery id, which the webhook
carries as its ``Idempotency-Key``: at least once on the wire, once at a gateway that
drops repeats. :meth:`NoticeService.record` writes every outcome of a batch in one
transaction, and only where the claim is still the worker's.

Opt-outs (channel + address) are honoured when a delivery is claimed: it ends ``failed``
with ``opted_out`` and is not sent. Quiet hours: a delivery is queued for their end, and
while they last only urgent deliveries off the speaker channel are claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.notice_channels import Outgoing
from central_hub.db.engine import insert_ignore, is_sqlite, writer_turn
from central_hub.db.schema import (
    cases,
    commands,
    events,
    notice_deliveries,
    notice_opt_outs,
    notice_templates,
    notices,
    service_object_contacts,
)
from central_hub.domain.errors import NoticeError, UnknownCell
from central_hub.domain.grid import Grid
from central_hub.domain.notices import (
    Audience,
    DeliveryState,
    NoticeChannel,
    NoticeTemplate,
    QuietHours,
    Recipient,
    RetryPolicy,
    SendOutcome,
    after_attempt,
    after_receipt,
    due_at,
    make_template,
    render,
)
from central_hub.errors import ConflictError, InvalidInputError, NotFoundError
from central_hub.services.service_objects import AudienceContact, ServiceObjects
from edge_agent.protocol import uuid7

log = logging.getLogger(__name__)

__all__ = [
    "OPTED_OUT",
    "AudienceResolver",
    "Claimed",
    "DeliveryView",
    "HubAudiences",
    "NoticeRequest",
    "NoticeService",
    "NoticeView",
    "OptOutView",
    "RegistryAudiences",
    "TemplateView",
]

#: A delivery's ``last_error`` when its address opted out of the channel.
OPTED_OUT = "opted_out"
#: Recipients one notice may have (an industry is a few thousand).
MAX_RECIPIENTS = 50_000
_D = notice_deliveries


class AudienceResolver(Protocol):
    """Turns an :class:`Audience` into the recipients a channel reaches."""

    async def resolve(self, audience: Audience, channel: NoticeChannel) -> list[Recipient]:
        """The recipients; :class:`NoticeError` when the audience cannot be resolved."""
        ...


class HubAudiences:
    """The hub's own resolver: explicit lists of contacts, and on the speaker channel the
    loudspeakers of a grid area (the pole units whose latest event lies in the area or
    below it; a pole's place is where its camera's events are). Audiences by the
    service-object registry's keys go to ``registry`` when one is given."""

    def __init__(
        self, engine: AsyncEngine, grid: Grid, registry: AudienceResolver | None = None
    ) -> None:
        self.engine = engine
        self.grid = grid
        self.registry = registry

    async def resolve(self, audience: Audience, channel: NoticeChannel) -> list[Recipient]:
        """See the class docstring."""
        if audience.kind == "contacts":
            return list(audience.recipients)
        if channel is NoticeChannel.SPEAKER:
            if audience.kind != "area":
                raise NoticeError("audience: the speaker channel reaches a grid area (kind area)")
            return await self._speakers(audience.key)
        if self.registry is None:
            raise NoticeError(
                f"audience: kind {audience.kind} needs the service-object registry, "
                "which this hub does not have"
            )
        return await self.registry.resolve(audience, channel)

    async def _speakers(self, cell_id: str) -> list[Recipient]:
        if cell_id not in self.grid:
            raise NoticeError(f"audience: unknown grid cell {cell_id!r}")
        cells = {c.id for c in self.grid.cells() if cell_id in (c.id, *_ancestors(self.grid, c.id))}
        latest = (
            sa.select(events.c.device_id, sa.func.max(events.c.detected_at).label("at"))
            .group_by(events.c.device_id)
            .subquery()
        )
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(events.c.device_id, events.c.lat, events.c.lon).join(
                        latest,
                        sa.and_(
                            latest.c.device_id == events.c.device_id,
                            latest.c.at == events.c.detected_at,
                        ),
                    )
                )
            ).all()
        found: dict[str, Recipient] = {}
        for row in rows:
            cell = self.grid.locate(row.lat, row.lon)
            if cell is not None and cell.id in cells:
                found[row.device_id] = Recipient(row.device_id, row.device_id)
        return sorted(found.values(), key=lambda r: r.contact_id)


class RegistryAudiences:
    """Audiences by the service-object registry: one contact (its id), one object's
    contacts, an industry's or a subcategory's (their codes), a grid area's (a cell id:
    the objects placed in it or below it). Recipients are ``so-<contact id>``."""

    def __init__(self, registry: ServiceObjects) -> None:
        self.registry = registry

    async def resolve(self, audience: Audience, channel: NoticeChannel) -> list[Recipient]:
        """See the class docstring; an unknown key is a :class:`NoticeError` naming it."""
        key = audience.key
        try:
            if audience.kind in ("contact", "object"):
                if not key.isdigit() or len(key) > 18:
                    raise NoticeError(f"audience: {audience.kind} key {key[:20]!r} is not an id")
                if audience.kind == "object":
                    rows = await self.registry.contacts_of_object(int(key))
                else:
                    return await self._contact(int(key))
            elif audience.kind == "industry":
                rows = await self.registry.contacts_of_industry(key)
            elif audience.kind == "subcategory":
                rows = await self.registry.contacts_of_subcategory(key)
            elif audience.kind == "area":
                rows = await self.registry.contacts_in_area(key)
            else:
                raise NoticeError(f"audience: the registry does not resolve {audience.kind}")
        except (NotFoundError, InvalidInputError, UnknownCell) as exc:
            raise NoticeError(f"audience: {exc}") from exc
        return [_recipient(r) for r in rows]

    async def _contact(self, contact_id: int) -> list[Recipient]:
        c = service_object_contacts
        async with self.registry.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(c.c.id, c.c.name, c.c.phone, c.c.email).where(c.c.id == contact_id)
                )
            ).first()
        if row is None:
            raise NoticeError(f"audience: no contact {contact_id}")
        return [Recipient(f"so-{row.id}", row.name, row.phone, row.email)]


def _recipient(row: AudienceContact) -> Recipient:
    return Recipient(f"so-{row.contact_id}", row.name, row.phone, row.email)


def _ancestors(grid: Grid, cell_id: str) -> list[str]:
    out: list[str] = []
    parent = grid.get(cell_id).parent_id
    while parent:
        out.append(parent)
        parent = grid.get(parent).parent_id
    return out


@dataclass(frozen=True)
class TemplateView:
    """A stored template."""

    id: int
    name: str
    subject: str
    body: str
    variables: tuple[str, ...]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class NoticeRequest:
    """One notice to send: a template's name and variables, an audience, a channel."""

    template: str
    variables: dict[str, str]
    audience: Audience
    channel: NoticeChannel
    case_id: int | None = None
    urgent: bool = False


@dataclass(frozen=True)
class NoticeView:
    """A notice with its deliveries counted by state."""

    id: str
    template: str
    channel: NoticeChannel
    audience: str
    subject: str
    body: str
    urgent: bool
    case_id: int | None
    created_by: str
    created_at: datetime
    deliveries: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryView:
    """One delivery of a notice."""

    id: str
    contact_id: str
    name: str
    address: str
    channel: NoticeChannel
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    provider_message_id: str | None
    sent_at: datetime | None
    receipt_at: datetime | None
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True)
class OptOutView:
    """An address that wants no notices on a channel."""

    channel: NoticeChannel
    address: str
    reason: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery, ready for its channel."""

    item: Outgoing
    attempts: int
    claim: str


class NoticeService:
    """See the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], datetime],
        resolver: AudienceResolver,
        *,
        quiet: QuietHours | None = None,
        retry: RetryPolicy | None = None,
        lease: timedelta = timedelta(seconds=60),
        uniform: Callable[[float, float], float] = random.uniform,
        receipt_secret: bytes | None = None,
    ) -> None:
        self.engine = engine
        #: The secret a gateway's receipts are signed with (None: no receipts taken).
        self.receipt_secret = receipt_secret
        self.clock = clock
        self.resolver = resolver
        self.quiet = quiet
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.uniform = uniform
        self._templates: dict[str, tuple[int, NoticeTemplate]] = {}
        #: Per channel, set when deliveries were queued; the worker waits on it.
        self.woken: dict[NoticeChannel, asyncio.Event] = {}

    # --- templates ----------------------------------------------------------------

    async def create_template(
        self, name: str, subject: str, body: str, variables: Sequence[str], *, actor: str
    ) -> TemplateView:
        """Check (:func:`make_template`) and store a template; ConflictError if the name is
        taken (templates are never edited: a new text is a new name, so sent notices keep
        meaning what they said)."""
        make_template(name, subject, body, variables)
        now = self.clock()
        async with self.engine.begin() as conn:
            done = await conn.execute(
                insert_ignore(notice_templates, conn.dialect, ["name"]).values(
                    name=name,
                    subject=subject,
                    body=body,
                    variables=list(variables),
                    created_by=actor,
                    created_at=now,
                )
            )
        if done.rowcount != 1:
            raise ConflictError(f"a template named {name!r} exists")
        return await self.template(name)

    async def ensure_template(
        self, name: str, subject: str, body: str, variables: Sequence[str], *, actor: str
    ) -> None:
        """Create the hub's own template ``name`` unless it exists (the city's, made
        first, wins; so does another worker's, made meanwhile)."""
        try:
            await self.template(name)
        except NotFoundError:
            with contextlib.suppress(ConflictError):
                await self.create_template(name, subject, body, variables, actor=actor)

    async def templates(self) -> list[TemplateView]:
        """Every template, by name."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(notice_templates.select().order_by(notice_templates.c.name))
            ).all()
        return [_template_view(r) for r in rows]

    async def template(self, name: str) -> TemplateView:
        """One template; NotFoundError when unknown."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(notice_templates.select().where(notice_templates.c.name == name))
            ).first()
        if row is None:
            raise NotFoundError(f"no notice template {name!r}")
        return _template_view(row)

    async def _compile(self, names: set[str]) -> None:
        """Load the templates ``names`` not yet cached (unknown ones stay out)."""
        wanted = names - self._templates.keys()
        if not wanted:
            return
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    notice_templates.select().where(notice_templates.c.name.in_(wanted))
                )
            ).all()
        for row in rows:
            compiled = make_template(row.name, row.subject, row.body, row.variables)
            self._templates[row.name] = (row.id, compiled)

    # --- sending ------------------------------------------------------------------

    async def remind(
        self,
        template: str,
        contact: Recipient,
        channel: NoticeChannel,
        variables: dict[str, str],
        *,
        case_id: int | None = None,
        actor: str,
    ) -> str:
        """Send one templated notice to one contact on one channel (a move-your-car
        reminder); the notice's id."""
        request = NoticeRequest(
            template, variables, Audience("contacts", recipients=(contact,)), channel, case_id
        )
        return (await self.send_many([request], actor=actor))[0]

    async def send_many(self, requests: Sequence[NoticeRequest], *, actor: str) -> list[str]:
        """Queue ``requests`` in one transaction; their notice ids, in order.

        Every request is checked before anything is written; :class:`NoticeError` names
        the request (by its index) and what is wrong with it. A recipient the channel
        cannot reach (no phone for a text) gets no delivery.
        """
        now = self.clock()
        notice_rows: list[dict[str, Any]] = []
        delivery_rows: list[dict[str, Any]] = []
        problems: list[str] = []
        # Templates first, in one short read: no connection is held while audiences are
        # resolved (on SQLite every transaction holds the write lock, and a resolver
        # reads through connections of its own).
        await self._compile({r.template for r in requests})
        for index, req in enumerate(requests):
            where = f"notices[{index}]" if len(requests) > 1 else "notice"
            if req.template not in self._templates:
                problems.append(f"{where}: no notice template {req.template!r}")
                continue
            template_id, template = self._templates[req.template]
            try:
                text = render(template, req.variables)
                recipients = await self.resolver.resolve(req.audience, req.channel)
            except NoticeError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if len(recipients) > MAX_RECIPIENTS:
                problems.append(f"{where}: {len(recipients)} recipients, at most 50000")
                continue
            notice_id = uuid7()
            notice_rows.append(
                {
                    "id": notice_id,
                    "template_id": template_id,
                    "variables": dict(req.variables),
                    "audience": _audience_json(req.audience),
                    "channel": req.channel.value,
                    "urgent": req.urgent,
                    "subject": text.subject,
                    "body": text.body,
                    "case_id": req.case_id,
                    "created_by": actor,
                    "created_at": now,
                }
            )
            start = due_at(now, req.channel, req.urgent, self.quiet)
            seen: set[str] = set()
            for person in recipients:
                address = person.address(req.channel)
                if not address or person.contact_id in seen:
                    continue
                seen.add(person.contact_id)
                delivery_rows.append(
                    {
                        "id": uuid7(),
                        "notice_id": notice_id,
                        "contact_id": person.contact_id[:64],
                        "name": person.name[:100],
                        "address": address[:254],
                        "channel": req.channel.value,
                        "urgent": req.urgent,
                        "state": DeliveryState.QUEUED.value,
                        "attempts": 0,
                        "next_attempt_at": start,
                        "updated_at": now,
                    }
                )
        case_ids = {r.case_id for r in requests if r.case_id is not None}
        if case_ids:
            async with self.engine.connect() as conn:
                known = set(
                    (await conn.execute(sa.select(cases.c.id).where(cases.c.id.in_(case_ids))))
                    .scalars()
                    .all()
                )
            problems.extend(f"case_id: no case {i}" for i in sorted(case_ids - known))
        if problems:
            raise NoticeError("; ".join(problems))
        async with writer_turn(self.engine), self.engine.begin() as conn:
            if notice_rows:
                await conn.execute(notices.insert(), notice_rows)
            if delivery_rows:
                await conn.execute(_D.insert(), delivery_rows)
        log.info(
            "queued %d notices (%d deliveries) by %s", len(notice_rows), len(delivery_rows), actor
        )
        for channel in {NoticeChannel(r["channel"]) for r in notice_rows}:
            self.wake(channel)
        return [r["id"] for r in notice_rows]

    def wake(self, channel: NoticeChannel) -> None:
        """Tell the worker of ``channel`` that deliveries are due."""
        event = self.woken.get(channel)
        if event is not None:
            event.set()

    # --- reading ------------------------------------------------------------------

    async def recent(self, *, limit: int = 50, offset: int = 0) -> list[NoticeView]:
        """The newest notices with their deliveries counted by state."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(notices, notice_templates.c.name.label("template_name"))
                    .join(notice_templates, notice_templates.c.id == notices.c.template_id)
                    .order_by(notices.c.created_at.desc(), notices.c.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
            counts: dict[str, dict[str, int]] = {r.id: {} for r in rows}
            if rows:
                for c in (
                    await conn.execute(
                        sa.select(_D.c.notice_id, _D.c.state, sa.func.count())
                        .where(_D.c.notice_id.in_(list(counts)))
                        .group_by(_D.c.notice_id, _D.c.state)
                    )
                ).all():
                    counts[c[0]][c[1]] = int(c[2])
        return [_notice_view(r, counts[r.id]) for r in rows]

    async def get(self, notice_id: str) -> NoticeView:
        """One notice; NotFoundError when unknown."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(notices, notice_templates.c.name.label("template_name"))
                    .join(notice_templates, notice_templates.c.id == notices.c.template_id)
                    .where(notices.c.id == notice_id)
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no notice {notice_id!r}")
            counts = {
                c[0]: int(c[1])
                for c in (
                    await conn.execute(
                        sa.select(_D.c.state, sa.func.count())
                        .where(_D.c.notice_id == notice_id)
                        .group_by(_D.c.state)
                    )
                ).all()
            }
        return _notice_view(row, counts)

    async def deliveries(
        self, notice_id: str, *, limit: int = 100, offset: int = 0
    ) -> list[DeliveryView]:
        """A notice's deliveries; NotFoundError when the notice is unknown."""
        await self.get(notice_id)
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    _D.select()
                    .where(_D.c.notice_id == notice_id)
                    .order_by(_D.c.contact_id, _D.c.channel)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        return [_delivery_view(r) for r in rows]

    # --- the queue ----------------------------------------------------------------

    async def claim(self, channel: NoticeChannel, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due deliveries of ``channel`` (``sending``, leased);
        those whose address opted out end ``failed`` (``opted_out``) instead."""
        if limit <= 0:
            return []
        now = self.clock()
        due = sa.or_(
            sa.and_(_D.c.state == DeliveryState.QUEUED.value, _D.c.next_attempt_at <= now),
            sa.and_(_D.c.state == DeliveryState.SENDING.value, _D.c.lease_until < now),
        )
        conditions = [_D.c.channel == channel.value, due]
        if self.quiet is not None and self.quiet.release_at(now) is not None:
            if channel is NoticeChannel.SPEAKER:
                return []
            conditions.append(_D.c.urgent.is_(True))
        pick = sa.select(_D.c.id).where(*conditions).order_by(_D.c.next_attempt_at).limit(limit)
        token = secrets.token_hex(16)
        async with writer_turn(self.engine), self.engine.begin() as conn:
            if not is_sqlite(conn.dialect):
                pick = pick.with_for_update(skip_locked=True)
            claimed = (
                await conn.execute(
                    _D.update()
                    .where(_D.c.id.in_(pick.scalar_subquery()))
                    .values(
                        state=DeliveryState.SENDING.value,
                        claim=token,
                        lease_until=now + self.lease,
                        attempts=_D.c.attempts + 1,
                        updated_at=now,
                    )
                    .returning(_D.c.id, _D.c.notice_id, _D.c.address, _D.c.name, _D.c.attempts)
                )
            ).all()
            if not claimed:
                return []
            opted = set(
                (
                    await conn.execute(
                        sa.select(notice_opt_outs.c.address).where(
                            notice_opt_outs.c.channel == channel.value,
                            notice_opt_outs.c.address.in_({r.address for r in claimed}),
                        )
                    )
                ).scalars()
            )
            if opted:
                await conn.execute(
                    _D.update()
                    .where(_D.c.claim == token, _D.c.address.in_(opted))
                    .values(
                        state=DeliveryState.FAILED.value,
                        last_error=OPTED_OUT,
                        claim=None,
                        lease_until=None,
                        updated_at=now,
                    )
                )
            texts = {
                r.id: (r.subject, r.body)
                for r in (
                    await conn.execute(
                        sa.select(notices.c.id, notices.c.subject, notices.c.body).where(
                            notices.c.id.in_({r.notice_id for r in claimed})
                        )
                    )
                ).all()
            }
        out = []
        for r in claimed:
            if r.address in opted:
                continue
            subject, body = texts[r.notice_id]
            out.append(
                Claimed(
                    Outgoing(r.id, r.notice_id, r.address, r.name, subject, body), r.attempts, token
                )
            )
        return out

    async def record(self, results: Sequence[tuple[Claimed, SendOutcome]]) -> None:
        """Write the outcomes of a batch of claimed deliveries in one transaction; a row
        whose claim is no longer this one (its lease ran out and another worker took it,
        or a receipt came first) is left as it is."""
        if not results:
            return
        now = self.clock()
        rows = []
        for claimed, outcome in results:
            step = after_attempt(outcome, claimed.attempts, self.retry, now, self.uniform)
            rows.append(
                {
                    "_id": claimed.item.delivery_id,
                    "_claim": claimed.claim,
                    "state": step.state.value,
                    "next_attempt_at": step.next_attempt_at or now,
                    "provider_message_id": step.provider_id,
                    "sent_at": now if step.state is DeliveryState.SENT else None,
                    "last_error": step.error[:500] if step.error else None,
                    "lease_until": None,
                    "claim": None,
                    "updated_at": now,
                }
            )
        stmt = (
            _D.update()
            .where(
                _D.c.id == sa.bindparam("_id"),
                _D.c.claim == sa.bindparam("_claim"),
                _D.c.state == DeliveryState.SENDING.value,
            )
            .values(
                state=sa.bindparam("state"),
                next_attempt_at=sa.bindparam("next_attempt_at"),
                provider_message_id=sa.bindparam("provider_message_id"),
                sent_at=sa.bindparam("sent_at"),
                last_error=sa.bindparam("last_error"),
                lease_until=sa.bindparam("lease_until"),
                claim=sa.bindparam("claim"),
                updated_at=sa.bindparam("updated_at"),
            )
        )
        async with writer_turn(self.engine), self.engine.begin() as conn:
            await conn.execute(stmt, rows)

    async def receipt(self, message_id: str, delivered: bool, reason: str = "") -> bool:
        """A channel's receipt for ``message_id`` (the provider's id, or the delivery's
        own id): ``sent`` (or still ``sending``) becomes ``delivered`` or ``failed``.
        True if it changed a delivery; a repeated receipt changes nothing."""
        now = self.clock()
        async with writer_turn(self.engine), self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(_D.c.id, _D.c.state).where(
                        sa.or_(_D.c.provider_message_id == message_id, _D.c.id == message_id)
                    )
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no delivery with message id {message_id!r}")
            new = after_receipt(DeliveryState(row.state), delivered)
            if new is None:
                return False
            done = await conn.execute(
                _D.update()
                .where(_D.c.id == row.id, _D.c.state == row.state)
                .values(
                    state=new.value,
                    receipt_at=now,
                    last_error=None if delivered else (reason or "receipt: not delivered")[:500],
                    claim=None,
                    lease_until=None,
                    updated_at=now,
                )
            )
        return done.rowcount == 1

    async def sweep_speaker_receipts(self) -> int:
        """Speaker deliveries whose ``speaker.say`` finished: ``succeeded`` is the receipt
        (``delivered``), ``failed``/``rejected``/``expired`` fail it; how many moved."""
        now = self.clock()
        moved = 0
        async with writer_turn(self.engine), self.engine.begin() as conn:
            for states, new in (
                (["succeeded"], DeliveryState.DELIVERED),
                (["failed", "rejected", "expired"], DeliveryState.FAILED),
            ):
                finished = sa.select(commands.c.cmd_id).where(commands.c.state.in_(states))
                done = await conn.execute(
                    _D.update()
                    .where(
                        _D.c.channel == NoticeChannel.SPEAKER.value,
                        _D.c.state == DeliveryState.SENT.value,
                        _D.c.provider_message_id.in_(finished.scalar_subquery()),
                    )
                    .values(
                        state=new.value,
                        receipt_at=now,
                        last_error=None
                        if new is DeliveryState.DELIVERED
                        else "speaker.say " + "/".join(states),
                        updated_at=now,
                    )
                )
                moved += done.rowcount
        return moved

    # --- opt-outs -----------------------------------------------------------------

    async def opt_out(
        self, channel: NoticeChannel, address: str, *, reason: str = "", actor: str
    ) -> OptOutView:
        """Record that ``address`` wants no more notices on ``channel`` (again: no change)."""
        address = address.strip()
        if not address:
            raise NoticeError("address: empty")
        now = self.clock()
        async with writer_turn(self.engine), self.engine.begin() as conn:
            await conn.execute(
                insert_ignore(notice_opt_outs, conn.dialect, ["channel", "address"]).values(
                    channel=channel.value,
                    address=address,
                    reason=reason,
                    created_by=actor,
                    created_at=now,
                )
            )
            row = (
                await conn.execute(
                    notice_opt_outs.select().where(
                        notice_opt_outs.c.channel == channel.value,
                        notice_opt_outs.c.address == address,
                    )
                )
            ).one()
        return _opt_out_view(row)

    async def opt_in(self, channel: NoticeChannel, address: str) -> bool:
        """Remove an opt-out; True if there was one."""
        async with writer_turn(self.engine), self.engine.begin() as conn:
            done = await conn.execute(
                notice_opt_outs.delete().where(
                    notice_opt_outs.c.channel == channel.value,
                    notice_opt_outs.c.address == address.strip(),
                )
            )
        return done.rowcount > 0

    async def opt_outs(self, *, limit: int = 100, offset: int = 0) -> list[OptOutView]:
        """Opt-outs, newest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    notice_opt_outs.select()
                    .order_by(notice_opt_outs.c.created_at.desc(), notice_opt_outs.c.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        return [_opt_out_view(r) for r in rows]


def _audience_json(audience: Audience) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": audience.kind}
    if audience.kind == "contacts":
        # Ids only: the contacts' phones and addresses are on their deliveries.
        out["contact_ids"] = [r.contact_id for r in audience.recipients]
    else:
        out["key"] = audience.key
    return out


def _describe(audience: dict[str, Any]) -> str:
    if audience.get("kind") == "contacts":
        return f"{len(audience.get('contact_ids', []))} contacts"
    return f"{audience.get('kind')} {audience.get('key', '')}"


def _template_view(row: sa.Row[Any]) -> TemplateView:
    return TemplateView(
        id=row.id,
        name=row.name,
        subject=row.subject,
        body=row.body,
        variables=tuple(row.variables),
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _notice_view(row: sa.Row[Any], counts: dict[str, int]) -> NoticeView:
    return NoticeView(
        id=row.id,
        template=row.template_name,
        channel=NoticeChannel(row.channel),
        audience=_describe(row.audience),
        subject=row.subject,
        body=row.body,
        urgent=row.urgent,
        case_id=row.case_id,
        created_by=row.created_by,
        created_at=row.created_at,
        deliveries=counts,
    )


def _delivery_view(row: sa.Row[Any]) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        contact_id=row.contact_id,
        name=row.name,
        address=row.address,
        channel=NoticeChannel(row.channel),
        state=DeliveryState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        provider_message_id=row.provider_message_id,
        sent_at=row.sent_at,
        receipt_at=row.receipt_at,
        last_error=row.last_error,
        updated_at=row.updated_at,
    )


def _opt_out_view(row: sa.Row[Any]) -> OptOutView:
    return OptOutView(
        channel=NoticeChannel(row.channel),
        address=row.address,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
    )
