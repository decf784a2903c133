"""The vendor file (文明执法查询平台): people, their 0501 cases and counsellings, lookups.

Officers of the roles the city allows (``XH_HUB_VENDOR_FILE_ROLES``, default handler
and admin) create a person (name, phone, photo, identity number), link unlicensed-vendor
cases (code ``0501``) to them (a case links to one person at most), and record each
counselling. The colour is :func:`central_hub.domain.vendor_file.assess` of the history
read back each time, never stored or typed in. Every other role is refused
(:class:`~central_hub.errors.ForbiddenError`) by every method here, whatever the route.

Every look into the file (a search by name or by identity number, a person's file, the
person a case page shows) writes a ``vendor_file_lookups`` row (who, their role, when,
why, what they searched, which people were shown) and commits it before the result is
returned: a lookup that cannot be recorded shows nothing.

The identity number is encrypted with the key of ``XH_HUB_VENDOR_FILE_KEY_FILE``
(:mod:`central_hub.adapters.id_cipher`) and shown masked only; :meth:`VendorFile.
check_key` (run by ``serve`` before it starts) refuses a hub whose key is missing or not
the one the stored people were written with. The file is permanent: there is no method
that deletes or unlinks anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.id_cipher import KEY_SETTING, IdCipher, KeyMismatch
from central_hub.db.engine import writer_turn
from central_hub.db.schema import (
    cases,
    events,
    vendor_counsellings,
    vendor_file_lookups,
    vendor_person_cases,
    vendor_persons,
)
from central_hub.domain.open311 import mask_phone
from central_hub.domain.vendor_file import (
    NAME_MAX,
    NOTE_MAX,
    REASON_MAX,
    VENDOR_CODE,
    Assessment,
    Counselling,
    History,
    IdNumberError,
    Outcome,
    Violation,
    assess,
    check_id_number,
    mask_id_number,
)
from central_hub.domain.workflow import Role
from central_hub.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    SettingsError,
)
from central_hub.services.users import User
from central_hub.settings import HubSettings

log = logging.getLogger(__name__)

__all__ = [
    "CaseLink",
    "CounsellingView",
    "LookupKind",
    "LookupRecord",
    "PersonFile",
    "PersonSummary",
    "VendorFile",
    "ViolationView",
    "vendor_photos_path",
]

#: Most people a search shows.
SEARCH_LIMIT = 20
#: Most evidence frames listed per case in a file.
FRAMES_PER_CASE = 6
#: How far ahead of the hub's clock a counselling's time may be (a phone's clock).
_AHEAD = timedelta(minutes=5)
#: What kind of look a lookup row records.
LookupKind = str
PHONE_MAX = 40


@dataclass(frozen=True)
class PersonSummary:
    """A person as a search result shows them: masked phone and identity number, the
    colour with since when and why, and how many violations and counsellings."""

    id: int
    name: str
    phone_masked: str | None
    id_number_masked: str | None
    photo_sha256: str | None
    assessment: Assessment
    violations: int
    counsellings: int
    created_at: datetime


@dataclass(frozen=True)
class ViolationView:
    """A linked case with what the file page shows of it and its evidence frames."""

    case_id: int
    code: str
    title: str
    stage: str
    reported_at: datetime
    linked_by: str
    linked_at: datetime
    frames: tuple[str, ...]


@dataclass(frozen=True)
class CounsellingView:
    """A counselling as recorded."""

    id: int
    at: datetime
    officer: str
    outcome: Outcome
    case_id: int | None
    note: str
    recorded_by: str


@dataclass(frozen=True)
class PersonFile:
    """A person's whole file: summary, violations (oldest first) and counsellings."""

    person: PersonSummary
    violations: tuple[ViolationView, ...]
    counsellings: tuple[CounsellingView, ...]


@dataclass(frozen=True)
class CaseLink:
    """A case's link to a person (``created``: this call made it)."""

    case_id: int
    person_id: int
    linked_by: str
    linked_at: datetime
    created: bool


@dataclass(frozen=True)
class LookupRecord:
    """One recorded look into the file."""

    id: int
    user_name: str
    role: str
    at: datetime
    reason: str
    kind: str
    query: str
    shown: tuple[int, ...]


def _text(value: str, field: str, limit: int, *, required: bool = True) -> str:
    """``value`` stripped; InvalidInputError naming ``field`` when empty, too long or
    holding control characters."""
    text = value.strip()
    if required and not text:
        raise InvalidInputError(f"{field}: required")
    if len(text) > limit:
        raise InvalidInputError(f"{field}: {len(text)} characters, at most {limit}")
    if not text.replace("\n", " ").isprintable():
        raise InvalidInputError(f"{field}: holds control characters")
    return text


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def vendor_photos_path(settings: HubSettings) -> Path:
    """Where the vendor file's photos of people are kept (apart from the case evidence,
    which retention sweeps; backups carry them)."""
    return settings.data_dir / "vendor_photos"


class VendorFile:
    """The vendor file's service: see the module doc."""

    def __init__(
        self,
        engine: AsyncEngine,
        photos: EvidenceStore,
        clock: Callable[[], datetime],
        *,
        roles: frozenset[Role],
        cipher: IdCipher | None,
    ) -> None:
        self.engine = engine
        #: Persons' photos: a store of their own, served only to the allowed roles.
        self.photos = photos
        self.clock = clock
        #: The roles the city lets see the file.
        self.roles = roles
        self.cipher = cipher

    # --- access and the key -------------------------------------------------------------------

    def may(self, user: User) -> bool:
        """Whether ``user``'s role may see the file."""
        return user.role in self.roles

    def require(self, user: User) -> None:
        """ForbiddenError unless ``user``'s role may see the file."""
        if not self.may(user):
            raise ForbiddenError(
                f"role {user.role.value} may not see the vendor file; needs one of "
                + ", ".join(sorted(r.value for r in self.roles))
            )

    def _need_cipher(self) -> IdCipher:
        if self.cipher is None:
            raise ConflictError(
                f"{KEY_SETTING} is not set: the vendor file keeps no one without its key "
                "(`central-hub vendor-file keygen --out FILE`)"
            )
        return self.cipher

    async def check_key(self) -> None:
        """SettingsError naming the setting when people are stored and the key is missing
        or is not the one they were written with (``serve`` runs this before it starts)."""
        async with self.engine.connect() as conn:
            key_ids = {
                str(k)
                for k in (await conn.execute(sa.select(vendor_persons.c.key_id).distinct()))
                .scalars()
                .all()
            }
            sample = (
                await conn.execute(
                    sa.select(vendor_persons.c.id_cipher)
                    .where(vendor_persons.c.id_cipher.is_not(None))
                    .limit(1)
                )
            ).scalar_one_or_none()
        if not key_ids:
            return
        if self.cipher is None:
            raise SettingsError(
                f"{KEY_SETTING}: not set, and the vendor file holds people stored with a key "
                f"(key id {sorted(key_ids)[0]}); set it to that key file"
            )
        self.cipher.check_key_ids(key_ids)
        if sample is not None:
            try:
                self.cipher.decrypt(bytes(sample))
            except KeyMismatch as exc:
                raise SettingsError(str(exc)) from exc

    # --- reading ------------------------------------------------------------------------------

    async def _histories(
        self, conn: AsyncConnection, person_ids: Sequence[int]
    ) -> dict[int, History]:
        if not person_ids:
            return {}
        found: dict[int, list[Violation]] = {p: [] for p in person_ids}
        counsel: dict[int, list[Counselling]] = {p: [] for p in person_ids}
        rows = await conn.execute(
            sa.select(vendor_person_cases.c.person_id, cases.c.id, cases.c.reported_at)
            .join(cases, cases.c.id == vendor_person_cases.c.case_id)
            .where(vendor_person_cases.c.person_id.in_(person_ids))
        )
        for person_id, case_id, reported_at in rows:
            found[int(person_id)].append(Violation(case_id=int(case_id), at=reported_at))
        rows = await conn.execute(
            vendor_counsellings.select().where(vendor_counsellings.c.person_id.in_(person_ids))
        )
        for r in rows:
            counsel[int(r.person_id)].append(
                Counselling(
                    at=r.at,
                    officer=r.officer,
                    outcome=Outcome(r.outcome),
                    case_id=r.case_id,
                    note=r.note,
                )
            )
        return {p: History(tuple(found[p]), tuple(counsel[p])) for p in person_ids}

    def _masked_id(self, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        if self.cipher is None:
            raise SettingsError(
                f"{KEY_SETTING}: not set, and a stored identity number needs it to be shown"
            )
        return mask_id_number(self.cipher.decrypt(bytes(blob)))

    async def _summaries(
        self, conn: AsyncConnection, where: sa.ColumnElement[bool], limit: int | None = None
    ) -> list[PersonSummary]:
        query = vendor_persons.select().where(where).order_by(vendor_persons.c.id)
        if limit is not None:
            query = query.limit(limit)
        rows = (await conn.execute(query)).all()
        histories = await self._histories(conn, [int(r.id) for r in rows])
        out = []
        for r in rows:
            h = histories[int(r.id)]
            out.append(
                PersonSummary(
                    id=int(r.id),
                    name=r.name,
                    phone_masked=mask_phone(r.phone),
                    id_number_masked=self._masked_id(r.id_cipher),
                    photo_sha256=r.photo_sha256,
                    assessment=assess(h),
                    violations=len(h.violations),
                    counsellings=len(h.counsellings),
                    created_at=r.created_at,
                )
            )
        return out

    async def _record(
        self, user: User, *, kind: str, reason: str, query: str, shown: Sequence[int]
    ) -> None:
        """Write the lookup row and commit it (before any result leaves the service)."""
        async with writer_turn(self.engine), self.engine.begin() as conn:
            await conn.execute(
                vendor_file_lookups.insert().values(
                    user_name=user.name,
                    role=user.role.value,
                    at=self.clock(),
                    reason=reason,
                    kind=kind,
                    query=query,
                    shown=list(shown),
                )
            )

    async def search(self, user: User, name: str, reason: str) -> list[PersonSummary]:
        """People whose name contains ``name`` (at most :data:`SEARCH_LIMIT`), recorded
        with ``reason`` before they are returned."""
        self.require(user)
        name = _text(name, "name", NAME_MAX)
        reason = _text(reason, "reason", REASON_MAX)
        async with self.engine.connect() as conn:
            found = await self._summaries(
                conn,
                sa.func.lower(vendor_persons.c.name).like(_like(name.lower()), escape="\\"),
                SEARCH_LIMIT,
            )
        await self._record(
            user, kind="search", reason=reason, query=name, shown=[p.id for p in found]
        )
        return found

    async def find_by_id_number(self, user: User, number: str, reason: str) -> list[PersonSummary]:
        """The person with this identity number (none or one), found by its keyed hash;
        recorded with the number masked."""
        self.require(user)
        reason = _text(reason, "reason", REASON_MAX)
        try:
            checked = check_id_number(number)
        except IdNumberError as exc:
            raise InvalidInputError(str(exc)) from None
        digest = self._need_cipher().lookup_hash(checked)
        async with self.engine.connect() as conn:
            found = await self._summaries(conn, vendor_persons.c.id_hmac == digest)
        await self._record(
            user,
            kind="id_number",
            reason=reason,
            query=mask_id_number(checked),
            shown=[p.id for p in found],
        )
        return found

    async def file(self, user: User, person_id: int, reason: str) -> PersonFile:
        """A person's whole file, recorded with ``reason`` before it is returned."""
        self.require(user)
        reason = _text(reason, "reason", REASON_MAX)
        async with self.engine.connect() as conn:
            found = await self._summaries(conn, vendor_persons.c.id == person_id)
            if not found:
                raise NotFoundError(f"no person {person_id} in the vendor file")
            rows = (
                await conn.execute(
                    sa.select(
                        cases.c.id,
                        cases.c.code,
                        cases.c.title,
                        cases.c.stage,
                        cases.c.reported_at,
                        vendor_person_cases.c.linked_by,
                        vendor_person_cases.c.linked_at,
                    )
                    .join(cases, cases.c.id == vendor_person_cases.c.case_id)
                    .where(vendor_person_cases.c.person_id == person_id)
                    .order_by(cases.c.reported_at, cases.c.id)
                )
            ).all()
            frames: dict[int, list[str]] = {int(r.id): [] for r in rows}
            if frames:
                shots = await conn.execute(
                    sa.select(events.c.case_id, events.c.snapshot_sha256)
                    .where(
                        events.c.case_id.in_(list(frames)), events.c.snapshot_sha256.is_not(None)
                    )
                    .order_by(events.c.case_id, events.c.detected_at)
                )
                for case_id, sha in shots:
                    kept = frames[int(case_id)]
                    if len(kept) < FRAMES_PER_CASE and sha not in kept:
                        kept.append(str(sha))
            talks = (
                await conn.execute(
                    vendor_counsellings.select()
                    .where(vendor_counsellings.c.person_id == person_id)
                    .order_by(vendor_counsellings.c.at, vendor_counsellings.c.id)
                )
            ).all()
        result = PersonFile(
            person=found[0],
            violations=tuple(
                ViolationView(
                    case_id=int(r.id),
                    code=r.code,
                    title=r.title,
                    stage=r.stage,
                    reported_at=r.reported_at,
                    linked_by=r.linked_by,
                    linked_at=r.linked_at,
                    frames=tuple(frames[int(r.id)]),
                )
                for r in rows
            ),
            counsellings=tuple(
                CounsellingView(
                    id=int(c.id),
                    at=c.at,
                    officer=c.officer,
                    outcome=Outcome(c.outcome),
                    case_id=c.case_id,
                    note=c.note,
                    recorded_by=c.recorded_by,
                )
                for c in talks
            ),
        )
        await self._record(user, kind="file", reason=reason, query="", shown=[person_id])
        return result

    async def person_of_case(self, user: User, case_id: int) -> PersonSummary | None:
        """The person a case is linked to (for its case page), recorded as a lookup of
        kind ``case`` when there is one; None when the case is linked to no one."""
        self.require(user)
        async with self.engine.connect() as conn:
            found = await self._summaries(
                conn,
                vendor_persons.c.id.in_(
                    sa.select(vendor_person_cases.c.person_id).where(
                        vendor_person_cases.c.case_id == case_id
                    )
                ),
            )
        if not found:
            return None
        await self._record(
            user, kind="case", reason=f"case {case_id} page", query="", shown=[found[0].id]
        )
        return found[0]

    async def photo(self, user: User, person_id: int, reason: str) -> bytes:
        """A person's photo (JPEG), recorded as a look of kind ``photo`` with ``reason``
        (a face is personal data too); NotFoundError when they have none."""
        self.require(user)
        reason = _text(reason, "reason", REASON_MAX)
        async with self.engine.connect() as conn:
            sha = (
                await conn.execute(
                    sa.select(vendor_persons.c.photo_sha256).where(vendor_persons.c.id == person_id)
                )
            ).scalar_one_or_none()
        if sha is None:
            raise NotFoundError(f"no photo of person {person_id}")
        data = await self.photos.get(str(sha))
        await self._record(user, kind="photo", reason=reason, query="", shown=[person_id])
        return data

    async def lookups(self, user: User, *, limit: int = 100, offset: int = 0) -> list[LookupRecord]:
        """The recorded lookups, newest first."""
        self.require(user)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                vendor_file_lookups.select()
                .order_by(vendor_file_lookups.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [
                LookupRecord(
                    id=int(r.id),
                    user_name=r.user_name,
                    role=r.role,
                    at=r.at,
                    reason=r.reason,
                    kind=r.kind,
                    query=r.query,
                    shown=tuple(int(x) for x in r.shown),
                )
                for r in rows
            ]

    # --- writing ------------------------------------------------------------------------------

    async def create_person(
        self,
        user: User,
        *,
        name: str,
        phone: str | None = None,
        id_number: str | None = None,
        photo_sha256: str | None = None,
        link_case: int | None = None,
    ) -> int:
        """Create a person (and link ``link_case`` to them in the same transaction); their
        id. ConflictError when the identity number is in the file already (naming who)."""
        self.require(user)
        cipher = self._need_cipher()
        name = _text(name, "name", NAME_MAX)
        phone = _text(phone or "", "phone", PHONE_MAX, required=False) or None
        if phone is not None and not all(ch.isdigit() or ch in "+-() " for ch in phone):
            raise InvalidInputError("phone: only digits, spaces and + - ( )")
        cipher_text = digest = None
        if id_number is not None and id_number.strip():
            try:
                checked = check_id_number(id_number)
            except IdNumberError as exc:
                raise InvalidInputError(str(exc)) from None
            cipher_text, digest = cipher.encrypt(checked), cipher.lookup_hash(checked)
        now = self.clock()
        async with writer_turn(self.engine), self.engine.begin() as conn:
            if digest is not None:
                taken = (
                    await conn.execute(
                        sa.select(vendor_persons.c.id).where(vendor_persons.c.id_hmac == digest)
                    )
                ).scalar_one_or_none()
                if taken is not None:
                    raise ConflictError(
                        f"id_number: person {taken} in the vendor file has this identity number"
                    )
            if link_case is not None:
                await self._vendor_case(conn, link_case)
            try:
                person_id = int(
                    (
                        await conn.execute(
                            vendor_persons.insert()
                            .values(
                                name=name,
                                phone=phone,
                                photo_sha256=photo_sha256,
                                id_cipher=cipher_text,
                                id_hmac=digest,
                                key_id=cipher.key_id,
                                created_by=user.name,
                                created_at=now,
                            )
                            .returning(vendor_persons.c.id)
                        )
                    ).scalar_one()
                )
            except sa.exc.IntegrityError as exc:  # a racing creation of the same number
                raise ConflictError(
                    "id_number: a person with this identity number is in the vendor file"
                ) from exc
            if link_case is not None:
                await self._link(conn, user, person_id, link_case, now)
        log.info("vendor file: %s created person %s", user.name, person_id)
        return person_id

    async def set_photo(self, user: User, person_id: int, photo_sha256: str) -> None:
        """Give a person a (new) photo, stored in :attr:`photos` already."""
        self.require(user)
        async with writer_turn(self.engine), self.engine.begin() as conn:
            done = await conn.execute(
                vendor_persons.update()
                .where(vendor_persons.c.id == person_id)
                .values(photo_sha256=photo_sha256)
            )
            if done.rowcount == 0:
                raise NotFoundError(f"no person {person_id} in the vendor file")

    async def _vendor_case(self, conn: AsyncConnection, case_id: int) -> None:
        code = (
            await conn.execute(sa.select(cases.c.code).where(cases.c.id == case_id))
        ).scalar_one_or_none()
        if code is None:
            raise NotFoundError(f"no case {case_id}")
        if code != VENDOR_CODE:
            raise ConflictError(
                f"case {case_id} has code {code}; only {VENDOR_CODE} (unlicensed mobile "
                "vendor) cases link to a person"
            )

    async def _link(
        self, conn: AsyncConnection, user: User, person_id: int, case_id: int, now: datetime
    ) -> CaseLink:
        held = (
            await conn.execute(
                vendor_person_cases.select().where(vendor_person_cases.c.case_id == case_id)
            )
        ).one_or_none()
        if held is not None:
            if int(held.person_id) != person_id:
                raise ConflictError(
                    f"case {case_id} is linked to person {held.person_id} already; a case "
                    "links to one person"
                )
            return CaseLink(case_id, person_id, held.linked_by, held.linked_at, created=False)
        await conn.execute(
            vendor_person_cases.insert().values(
                case_id=case_id, person_id=person_id, linked_by=user.name, linked_at=now
            )
        )
        return CaseLink(case_id, person_id, user.name, now, created=True)

    async def _person_exists(self, conn: AsyncConnection, person_id: int) -> None:
        found = (
            await conn.execute(
                sa.select(vendor_persons.c.id).where(vendor_persons.c.id == person_id)
            )
        ).scalar_one_or_none()
        if found is None:
            raise NotFoundError(f"no person {person_id} in the vendor file")

    async def link_case(self, user: User, person_id: int, case_id: int) -> CaseLink:
        """Link a ``0501`` case to a person (again: nothing changes). 404 for an unknown
        person or case; ConflictError for another code or a case linked to someone else."""
        self.require(user)
        try:
            async with writer_turn(self.engine), self.engine.begin() as conn:
                await self._person_exists(conn, person_id)
                await self._vendor_case(conn, case_id)
                link = await self._link(conn, user, person_id, case_id, self.clock())
        except sa.exc.IntegrityError as exc:  # PostgreSQL: another link won the race
            raise ConflictError(f"case {case_id} was linked to a person meanwhile") from exc
        if link.created:
            log.info("vendor file: %s linked case %s to person %s", user.name, case_id, person_id)
        return link

    async def add_counselling(
        self,
        user: User,
        person_id: int,
        *,
        outcome: Outcome | str,
        at: datetime | None = None,
        officer: str | None = None,
        case_id: int | None = None,
        note: str = "",
    ) -> int:
        """Record a counselling (``at`` default now, ``officer`` default the user); its id.
        ``case_id``, when given, must be one of the person's linked cases."""
        self.require(user)
        try:
            outcome = Outcome(outcome)
        except ValueError:
            raise InvalidInputError(
                f"outcome: {str(outcome)[:20]!r} is not one of "
                + ", ".join(o.value for o in Outcome)
            ) from None
        now = self.clock()
        at = at or now
        if at.tzinfo is None:
            raise InvalidInputError("at: needs a time zone")
        if not 2000 <= at.year <= 2100:
            raise InvalidInputError(f"at: year {at.year} is not a year of this file")
        if at > now + _AHEAD:
            raise InvalidInputError("at: in the future")
        officer = _text(officer or user.name, "officer", 64)
        note = _text(note, "note", NOTE_MAX, required=False)
        async with writer_turn(self.engine), self.engine.begin() as conn:
            await self._person_exists(conn, person_id)
            if case_id is not None:
                owner = (
                    await conn.execute(
                        sa.select(vendor_person_cases.c.person_id).where(
                            vendor_person_cases.c.case_id == case_id
                        )
                    )
                ).scalar_one_or_none()
                if owner is None or int(owner) != person_id:
                    raise ConflictError(
                        f"case_id: case {case_id} is not linked to person {person_id}"
                    )
            return int(
                (
                    await conn.execute(
                        vendor_counsellings.insert()
                        .values(
                            person_id=person_id,
                            case_id=case_id,
                            at=at,
                            officer=officer,
                            outcome=outcome.value,
                            note=note,
                            recorded_by=user.name,
                            recorded_at=now,
                        )
                        .returning(vendor_counsellings.c.id)
                    )
                ).scalar_one()
            )
