"""Citizen reports (Open311 service requests): stored and filed as cases, read back.

A report is filed by the one filing path every report takes,
:meth:`central_hub.services.case_filing.CaseFiler.file_many`, as source ``citizen``: it
opens a case in stage ``reported`` (citizen reports need a person's verification) or
joins the open case of the same code nearby (the filer's code and radius rule), and the
report's row is written in the same transaction, so a report is never stored unfiled nor
filed unstored. Concurrent submissions are safe as ingest's are (SQLite files one
transaction at a time; PostgreSQL takes the filer's place locks). A client's
``Idempotency-Key`` is unique per api_key: a retry returns the first report, and two
racing with the same key give one report (the loser's transaction rolls back, filing
included, and finds the winner's).

Trusted clients' api_keys (:class:`Open311Keys`) are random, shown once and stored as
SHA-256 hashes, like users' tokens.

A report an operator hid (:mod:`central_hub.services.citizen_moderation`) is left out of
:meth:`CitizenReports.find` and :meth:`CitizenReports.get`, so Open311's ``GET requests``
and ``requests/{id}`` do not show it (404, as if unknown); its token still finds it
(:meth:`CitizenReports.by_token`). A redacted report needs nothing here: its description
and photo are gone from the row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.engine import reader, writer_turn
from central_hub.db.schema import audits, cases, citizen_reports, open311_keys
from central_hub.domain.errors import DomainError
from central_hub.domain.filing import EventFacts
from central_hub.domain.open311 import (
    MAX_RESULTS,
    Open311Error,
    ReportInput,
    RequestQuery,
    RequestView,
)
from central_hub.domain.workflow import FINAL_STAGES, Action, Stage
from central_hub.errors import ConflictError, NotFoundError, StorageError
from central_hub.services.users import hash_token
from central_hub.workers.ingest import EventFiler
from edge_agent.protocol import uuid7

log = logging.getLogger(__name__)

__all__ = [
    "KEY_PREFIX",
    "CitizenReports",
    "Open311Key",
    "Open311Keys",
    "StoredReport",
    "Submitted",
]

#: Open311 api_keys start with this, so a leaked one is recognisable.
KEY_PREFIX = "xh311_"
#: Tries of a submission whose Idempotency-Key another submission took meanwhile.
_ATTEMPTS = 3
#: The most api_keys one query checks.
_CHECK_MAX = 500
#: A batch's answer for a report that goes alone after it (a repeat of a refused one).
_ALONE = StorageError("filed alone")
#: The most reports one group commit stores and files.
_BATCH_MAX = 256
_FINALS = sorted(s.value for s in FINAL_STAGES)


@dataclass(frozen=True)
class Open311Key:
    """A trusted client's api_key (its hash aside)."""

    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


class Open311Keys:
    """Adds, lists, revokes and checks trusted clients' api_keys."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock
        self._asked: dict[str, list[asyncio.Future[Open311Key | None]]] = {}
        self._checker: asyncio.Task[None] | None = None

    async def add(self, name: str) -> tuple[Open311Key, str]:
        """A new key for client ``name`` and the key itself (shown once)."""
        if not 1 <= len(name) <= 64 or not name.isprintable():
            raise ConflictError("a client name has 1-64 printable characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        try:
            async with self.engine.begin() as conn:
                key_id = (
                    await conn.execute(
                        open311_keys.insert()
                        .values(name=name, key_hash=hash_token(key), created_at=now)
                        .returning(open311_keys.c.id)
                    )
                ).scalar_one()
        except sa.exc.IntegrityError as exc:
            raise ConflictError(f"an Open311 key named {name!r} exists") from exc
        log.info("open311 key %s added", name)
        return Open311Key(int(key_id), name, now, None), key

    async def all(self) -> list[Open311Key]:
        """Every key, by name."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(open311_keys.select().order_by(open311_keys.c.name))).all()
        return [Open311Key(r.id, r.name, r.created_at, r.revoked_at) for r in rows]

    async def revoke(self, name: str) -> None:
        """Stop a key working at once (its reports stay)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                open311_keys.update()
                .where(open311_keys.c.name == name, open311_keys.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no Open311 key {name!r} that is not revoked")
        log.info("open311 key %s revoked", name)

    async def authenticate(self, key: str | None) -> Open311Key | None:
        """The live key ``key`` is, or None (missing, unknown or revoked).

        Checks asked for at the same moment are answered by one query (every Open311 POST
        asks, and a query each was most of a burst's cost); each is answered from the
        database as it is after the check was asked for, so a revoked key stops at once.
        """
        if not key:
            return None
        answer: asyncio.Future[Open311Key | None] = asyncio.get_running_loop().create_future()
        self._asked.setdefault(hash_token(key), []).append(answer)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_asked(), name="open311-key-check")
            self._checker.add_done_callback(self._checker_ended)
        return await answer

    def _checker_ended(self, task: asyncio.Task[None]) -> None:
        # Cancelled before it began, it never reached its own handler: answer here.
        if task.cancelled() or task.exception() is not None:
            self._fail_asked(StorageError("the hub is stopping"), [])
            self._asked.clear()

    def _fail_asked(
        self, error: BaseException, taken: list[list[asyncio.Future[Open311Key | None]]]
    ) -> None:
        """Answer with ``error`` every check not answered yet: ``taken`` and the asked."""
        for answers in [*taken, *self._asked.values()]:
            for answer in answers:
                if not answer.done():
                    answer.set_exception(error)

    async def _check_asked(self) -> None:
        asked: dict[str, list[asyncio.Future[Open311Key | None]]] = {}
        while self._asked:
            digests = list(self._asked)[:_CHECK_MAX]
            asked = {d: self._asked.pop(d) for d in digests}
            try:
                async with reader(self.engine).connect() as conn:
                    rows = (
                        await conn.execute(
                            open311_keys.select().where(open311_keys.c.key_hash.in_(digests))
                        )
                    ).all()
            except BaseException as exc:  # each caller gets the failure (a 500), none waits
                self._fail_asked(
                    exc if isinstance(exc, Exception) else StorageError("the hub is stopping"),
                    list(asked.values()),
                )
                if not isinstance(exc, Exception):
                    self._asked.clear()
                    raise
                continue
            live = {
                r.key_hash: Open311Key(r.id, r.name, r.created_at, r.revoked_at)
                for r in rows
                if r.revoked_at is None
            }
            for digest, answers in asked.items():
                for answer in answers:
                    if not answer.done():
                        answer.set_result(live.get(digest))


@dataclass(frozen=True)
class Submitted:
    """A stored report: its service_request_id and case; ``created`` is False when an
    Idempotency-Key found an earlier one."""

    id: int
    token: str
    case_id: int
    account_id: str | None
    created: bool


@dataclass(frozen=True)
class StoredReport:
    """A report as staff see it: everything, the contact included (mask it by role)."""

    id: int
    token: str
    case_id: int
    code: str
    created_at: datetime
    lat: float
    lon: float
    location_source: str
    address: str | None
    description: str
    attributes: dict[str, Any]
    media_url: str | None
    photo_sha256: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    device_id: str | None
    account_id: str | None
    contact_cleared_at: datetime | None
    #: Moderation (:mod:`central_hub.services.citizen_moderation`): who hid or redacted it.
    hidden_at: datetime | None = None
    hidden_by: str | None = None
    redacted_at: datetime | None = None
    redacted_by: str | None = None


@dataclass(frozen=True)
class _Pending:
    """A report waiting for the next group commit, and where its answer goes."""

    report: ReportInput
    key: Open311Key
    idempotency_key: str | None
    photo_sha256: str | None
    now: datetime
    done: asyncio.Future[Submitted]


def _report_row(p: _Pending, token: str, case_id: int) -> dict[str, Any]:
    r = p.report
    return {
        "report_id": token,
        "api_key_id": p.key.id,
        "idempotency_key": p.idempotency_key,
        "code": r.service_code,
        "case_id": case_id,
        "lat": r.lat,
        "lon": r.lon,
        "location_source": r.location_source,
        "address": r.address,
        "description": r.description,
        "attributes": r.attributes,
        "media_url": r.media_url,
        "photo_sha256": p.photo_sha256,
        "email": r.email,
        "first_name": r.first_name,
        "last_name": r.last_name,
        "phone": r.phone,
        "device_id": r.device_id,
        "account_id": r.account_id,
        "created_at": p.now,
    }


class CitizenReports:
    """Files citizen reports and reads them back for Open311 and for staff."""

    def __init__(
        self, engine: AsyncEngine, filer: EventFiler, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.filer = filer
        self.clock = clock
        self._waiting: list[_Pending] = []
        self._committer: asyncio.Task[None] | None = None

    async def submit(
        self,
        report: ReportInput,
        *,
        key: Open311Key,
        idempotency_key: str | None = None,
        photo_sha256: str | None = None,
        now: datetime | None = None,
    ) -> Submitted:
        """Store and file ``report`` (see the module doc): with the other reports waiting
        at this moment, in one transaction.

        Raises :class:`Open311Error` (400) when filing refuses the report.
        """
        pending = _Pending(
            report,
            key,
            idempotency_key,
            photo_sha256,
            now or self.clock(),
            asyncio.get_running_loop().create_future(),
        )
        # Read here too, so a refusal whose client hung up is not logged as never retrieved.
        pending.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append(pending)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(
                self._commit_waiting(), name="citizen-reports-commit"
            )
            self._committer.add_done_callback(self._committer_ended)
        # Shielded: a client that hangs up does not unfile a report being committed.
        return await asyncio.shield(pending.done)

    async def _commit_waiting(self) -> None:
        """Commit what waits, a batch at a time, until nothing does (the group commit).

        Cancelled (the hub stopping), every report not answered yet is answered with a
        StorageError (a 500), so no request waits for ever."""
        batch: list[_Pending] = []
        try:
            while self._waiting:
                batch = self._waiting[:_BATCH_MAX]
                del self._waiting[:_BATCH_MAX]
                for p, outcome in zip(batch, await self._commit(batch), strict=True):
                    if p.done.done():
                        continue
                    if isinstance(outcome, BaseException):
                        p.done.set_exception(outcome)
                    else:
                        p.done.set_result(outcome)
        except asyncio.CancelledError:
            self._stop_waiting(batch)
            raise

    def _committer_ended(self, task: asyncio.Task[None]) -> None:
        # Cancelled before it began, it never reached its own handler: answer here.
        if task.cancelled() or task.exception() is not None:
            self._stop_waiting([])

    def _stop_waiting(self, taken: list[_Pending]) -> None:
        """Answer every report not answered yet (``taken`` and the waiting) with a
        StorageError, a 500, and wait for none."""
        stopping = StorageError("the hub is stopping; send the report again")
        for p in [*taken, *self._waiting]:
            if not p.done.done():
                p.done.set_exception(stopping)
        self._waiting.clear()

    async def _commit(self, batch: list[_Pending]) -> list[Submitted | Exception]:
        try:
            async with writer_turn(self.engine):  # SQLite: in turn, not in its busy loop
                outcomes = await self._submit_batch(batch)
        except sa.exc.IntegrityError as exc:
            # Another process took one of the batch's Idempotency-Keys meanwhile (the
            # batch rolled back whole): each report goes alone, so each gets its answer.
            log.info("a batch of %d citizen reports goes one by one: %s", len(batch), exc)
            return [await self._submit_alone(p) for p in batch]
        except Exception as exc:  # the database failed: each report's answer (a 500)
            log.error("a batch of %d citizen reports was not stored: %s", len(batch), exc)
            return [exc] * len(batch)
        # A repeat of a key whose first report was refused is a report of its own.
        return [
            await self._submit_alone(p) if outcome is _ALONE else outcome
            for p, outcome in zip(batch, outcomes, strict=True)
        ]

    async def _submit_alone(self, p: _Pending) -> Submitted | Exception:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with writer_turn(self.engine):
                    [outcome] = await self._submit_batch([p])
                return outcome
            except sa.exc.IntegrityError as exc:
                if p.idempotency_key is None or attempt == _ATTEMPTS:
                    return exc
                log.info("an Open311 submission with the same Idempotency-Key won; reading it")
            except Exception as exc:  # the report's own answer (a 500)
                return exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _submit_batch(self, batch: list[_Pending]) -> list[Submitted | Exception]:
        """Store and file ``batch`` in one transaction; per report its answer."""
        out: list[Submitted | Exception | None] = [None] * len(batch)
        first: dict[tuple[int, str], int] = {}  # (api_key, Idempotency-Key) -> index
        repeats: list[tuple[int, int]] = []  # (index, index of the same key's first)
        for n, p in enumerate(batch):
            if p.idempotency_key is not None:
                pair = (p.key.id, p.idempotency_key)
                if pair in first:
                    repeats.append((n, first[pair]))
                    continue
                first[pair] = n
        async with self.engine.begin() as conn:
            if first:
                rows = (
                    await conn.execute(
                        sa.select(
                            citizen_reports.c.id,
                            citizen_reports.c.report_id,
                            citizen_reports.c.case_id,
                            citizen_reports.c.account_id,
                            citizen_reports.c.api_key_id,
                            citizen_reports.c.idempotency_key,
                        ).where(
                            citizen_reports.c.api_key_id.in_(sorted({k for k, _ in first})),
                            citizen_reports.c.idempotency_key.in_(sorted({i for _, i in first})),
                        )
                    )
                ).all()
                for r in rows:
                    hit = first.get((r.api_key_id, r.idempotency_key))
                    if hit is not None:
                        out[hit] = Submitted(r.id, r.report_id, r.case_id, r.account_id, False)
            skip = {n for n, _ in repeats}
            todo = [n for n in range(len(batch)) if out[n] is None and n not in skip]
            facts = [
                EventFacts(
                    event_id=uuid7(),
                    code=batch[n].report.service_code,
                    lat=batch[n].report.lat,
                    lon=batch[n].report.lon,
                    detected_at=batch[n].now,
                    source="citizen",
                    kind="open311",
                )
                for n in todo
            ]
            filed = await self.filer.file_many(conn, facts, max(p.now for p in batch))
            rows_in: list[dict[str, Any]] = []
            stored: list[tuple[int, str, int]] = []  # (index, token, case id)
            for n, f, outcome in zip(todo, facts, filed, strict=True):
                if isinstance(outcome, DomainError):
                    out[n] = Open311Error(400, f"the report cannot be filed: {outcome}")
                    continue
                stored.append((n, f.event_id, outcome))
                rows_in.append(_report_row(batch[n], f.event_id, outcome))
            if rows_in:
                ids = (
                    await conn.execute(
                        citizen_reports.insert().returning(
                            citizen_reports.c.id, sort_by_parameter_order=True
                        ),
                        rows_in,
                    )
                ).scalars()
                for (n, token, case_id), row_id in zip(stored, ids, strict=True):
                    p = batch[n]
                    out[n] = Submitted(int(row_id), token, int(case_id), p.report.account_id, True)
                    log.info(
                        "citizen report %s filed into case %s (client %s)",
                        row_id,
                        case_id,
                        p.key.name,
                    )
        for n, m in repeats:
            earlier = out[m]
            out[n] = (
                dataclasses.replace(earlier, created=False)
                if isinstance(earlier, Submitted)
                else _ALONE
            )
        return [o if o is not None else AssertionError("unanswered") for o in out]

    async def find(self, query: RequestQuery, *, limit: int = MAX_RESULTS) -> list[RequestView]:
        """Reports matching a ``GET requests``, newest first (at most ``limit``); hidden
        reports are left out."""
        q = _view_query().where(citizen_reports.c.hidden_at.is_(None))
        if query.ids is not None:
            q = q.where(citizen_reports.c.id.in_(sorted(set(query.ids))))
        else:
            q = q.where(
                citizen_reports.c.created_at >= query.start,
                citizen_reports.c.created_at <= query.end,
            )
            if query.codes is not None:
                q = q.where(citizen_reports.c.code.in_(sorted(set(query.codes))))
            if query.statuses is not None and len(query.statuses) == 1:
                final = cases.c.stage.in_(_FINALS)
                q = q.where(final if "closed" in query.statuses else sa.not_(final))
        q = q.order_by(citizen_reports.c.created_at.desc(), citizen_reports.c.id.desc())
        return await self._views(q.limit(limit))

    async def get(self, request_id: int, *, include_hidden: bool = False) -> RequestView | None:
        """One report by its service_request_id; None for a hidden one unless
        ``include_hidden`` (the reporter's own view, reached by the report's token)."""
        q = _view_query().where(citizen_reports.c.id == request_id)
        if not include_hidden:
            q = q.where(citizen_reports.c.hidden_at.is_(None))
        found = await self._views(q)
        return found[0] if found else None

    async def by_token(self, token: str) -> tuple[int, str] | None:
        """(service_request_id, token) of the report whose token is ``token``; hidden
        reports too: the token is the reporter's, and their status page keeps working."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(citizen_reports.c.id).where(citizen_reports.c.report_id == token)
                )
            ).first()
        return (int(row.id), token) if row is not None else None

    async def of_case(self, case_id: int) -> list[StoredReport]:
        """The reports filed into a case, oldest first, with their contact (staff only)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    citizen_reports.select()
                    .where(citizen_reports.c.case_id == case_id)
                    .order_by(citizen_reports.c.id)
                )
            ).all()
        return [
            StoredReport(
                id=r.id,
                token=r.report_id,
                case_id=r.case_id,
                code=r.code,
                created_at=r.created_at,
                lat=r.lat,
                lon=r.lon,
                location_source=r.location_source,
                address=r.address,
                description=r.description,
                attributes=dict(r.attributes or {}),
                media_url=r.media_url,
                photo_sha256=r.photo_sha256,
                email=r.email,
                first_name=r.first_name,
                last_name=r.last_name,
                phone=r.phone,
                device_id=r.device_id,
                account_id=r.account_id,
                contact_cleared_at=r.contact_cleared_at,
                hidden_at=r.hidden_at,
                hidden_by=r.hidden_by,
                redacted_at=r.redacted_at,
                redacted_by=r.redacted_by,
            )
            for r in rows
        ]

    async def _views(self, q: sa.Select[Any]) -> list[RequestView]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
            cancelled = sorted({r.case_id for r in rows if r.stage == Stage.CANCELLED.value})
            reasons: dict[int, str] = {}
            if cancelled:
                trail = await conn.execute(
                    sa.select(audits.c.case_id, audits.c.reason)
                    .where(audits.c.case_id.in_(cancelled), audits.c.action == Action.CANCEL.value)
                    .order_by(audits.c.id)
                )
                reasons = {int(case_id): reason for case_id, reason in trail}  # the last wins
        return [
            RequestView(
                id=r.id,
                token=r.report_id,
                code=r.code,
                lat=r.lat,
                lon=r.lon,
                address=r.address,
                description=r.description,
                media_url=r.media_url,
                requested_at=r.created_at,
                stage=Stage(r.stage),
                line=r.line,
                squad_id=r.squad_id,
                deadline=r.deadline,
                case_updated_at=r.updated_at,
                closed_at=r.closed_at,
                cancel_reason=reasons.get(r.case_id),
            )
            for r in rows
        ]


def _view_query() -> sa.Select[Any]:
    """Reports joined with their cases: the columns a :class:`RequestView` needs."""
    return sa.select(
        citizen_reports.c.id,
        citizen_reports.c.report_id,
        citizen_reports.c.case_id,
        citizen_reports.c.code,
        citizen_reports.c.lat,
        citizen_reports.c.lon,
        citizen_reports.c.address,
        citizen_reports.c.description,
        citizen_reports.c.media_url,
        citizen_reports.c.created_at,
        cases.c.stage,
        cases.c.line,
        cases.c.squad_id,
        cases.c.deadline,
        cases.c.updated_at,
        cases.c.closed_at,
    ).select_from(citizen_reports.join(cases, cases.c.id == citizen_reports.c.case_id))
