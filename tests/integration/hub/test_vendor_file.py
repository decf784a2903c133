"""The vendor file on SQLite and PostgreSQL: only 0501 cases link, one person per case,
the colour follows the stored history, every look is recorded with who, when and why
before anything is returned, identity numbers are stored encrypted and found by their
keyed hash, other roles are refused everything, and a hub with a missing or wrong key
does not start."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.id_cipher import IdCipher, write_key_file
from central_hub.app import run_hub
from central_hub.db.engine import create_engine
from central_hub.db.schema import vendor_file_lookups, vendor_persons
from central_hub.domain.vendor_file import Colour, Outcome
from central_hub.domain.workflow import Role
from central_hub.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    SettingsError,
)
from central_hub.hub import Hub, build_hub
from central_hub.services.backup import BackupError, backup, restore
from central_hub.services.users import User
from central_hub.services.vendor_file import VendorFile
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, RecordingPublisher

sys.path.insert(0, str(Path(__file__).parent))
from vendor_seed import NUMBER, seed_case

pytestmark = pytest.mark.integration

HANDLER = User(id=1, name="li.handler", role=Role.HANDLER)
OPERATOR = User(id=2, name="zhao.operator", role=Role.OPERATOR)
ROLES = frozenset({Role.HANDLER, Role.ADMIN})


def service(db: AsyncEngine, tmp_path: Path, clock: FakeClock, key: bytes | None) -> VendorFile:
    return VendorFile(
        db,
        EvidenceStore(tmp_path / "photos"),
        clock,
        roles=ROLES,
        cipher=IdCipher(key) if key is not None else None,
    )


@pytest.fixture
def vf(db: AsyncEngine, tmp_path: Path, clock: FakeClock) -> VendorFile:
    return service(db, tmp_path, clock, bytes(range(32)))


async def lookups(db: AsyncEngine) -> list[sa.Row[tuple[object, ...]]]:
    async with db.connect() as conn:
        return list(
            (
                await conn.execute(vendor_file_lookups.select().order_by(vendor_file_lookups.c.id))
            ).all()
        )


async def test_only_0501_cases_link_and_a_case_links_to_one_person(
    vf: VendorFile, db: AsyncEngine, clock: FakeClock
) -> None:
    a = await vf.create_person(HANDLER, name="张三", phone="13812345678")
    b = await vf.create_person(HANDLER, name="李四")
    vendor = await seed_case(db, clock())
    parked = await seed_case(db, clock(), code="0505")
    link = await vf.link_case(HANDLER, a, vendor)
    assert link.created
    assert link.linked_by == HANDLER.name
    again = await vf.link_case(HANDLER, a, vendor)  # the same link: nothing changes
    assert not again.created
    with pytest.raises(ConflictError, match=f"linked to person {a} already"):
        await vf.link_case(HANDLER, b, vendor)
    with pytest.raises(ConflictError, match="has code 0505; only 0501"):
        await vf.link_case(HANDLER, b, parked)
    with pytest.raises(NotFoundError, match="no case 999"):
        await vf.link_case(HANDLER, b, 999)
    with pytest.raises(NotFoundError, match="no person 999"):
        await vf.link_case(HANDLER, 999, vendor)
    # Creating a person for a case takes the same checks, and nothing is kept on refusal.
    with pytest.raises(ConflictError, match="has code 0505"):
        await vf.create_person(HANDLER, name="王五", link_case=parked)
    made = await vf.create_person(HANDLER, name="王五", link_case=await seed_case(db, clock()))
    assert (await vf.file(HANDLER, made, "check")).violations[0].code == "0501"
    assert [p.name for p in await vf.search(HANDLER, "王", "check")] == ["王五"]
    # A counselling may name only one of the person's own cases.
    with pytest.raises(ConflictError, match="not linked to person"):
        await vf.add_counselling(HANDLER, b, outcome=Outcome.REFUSED, case_id=vendor)
    with pytest.raises(InvalidInputError, match="at: in the future"):
        await vf.add_counselling(HANDLER, a, outcome="refused", at=clock() + timedelta(hours=1))
    with pytest.raises(InvalidInputError, match="outcome: 'angry' is not one of"):
        await vf.add_counselling(HANDLER, a, outcome="angry")


async def test_the_colour_follows_the_stored_history(
    vf: VendorFile, db: AsyncEngine, clock: FakeClock
) -> None:
    who = await vf.create_person(HANDLER, name="张三")

    async def now_colour() -> Colour:
        return (await vf.file(HANDLER, who, "colour")).person.assessment.colour

    first = await seed_case(db, clock())
    await vf.link_case(HANDLER, who, first)
    await vf.add_counselling(HANDLER, who, outcome=Outcome.COMPLIED, case_id=first)
    assert await now_colour() is Colour.NONE
    clock.advance(days=3)
    await vf.add_counselling(HANDLER, who, outcome=Outcome.REFUSED, officer="王队")
    assert await now_colour() is Colour.YELLOW
    clock.advance(days=10)
    second = await seed_case(db, clock())
    await vf.link_case(HANDLER, who, second)
    assert await now_colour() is Colour.YELLOW
    await vf.add_counselling(HANDLER, who, outcome=Outcome.INEFFECTIVE, case_id=second)
    assert await now_colour() is Colour.GREEN
    clock.advance(days=10)
    await vf.link_case(HANDLER, who, await seed_case(db, clock()))
    await vf.add_counselling(HANDLER, who, outcome=Outcome.COMPLIED)
    got = await vf.file(HANDLER, who, "colour")
    assert got.person.assessment.colour is Colour.RED
    assert got.person.assessment.since == clock()
    assert [v.case_id for v in got.violations] == [first, second, second + 1]
    assert [c.outcome for c in got.counsellings] == [
        Outcome.COMPLIED,
        Outcome.REFUSED,
        Outcome.INEFFECTIVE,
        Outcome.COMPLIED,
    ]
    assert got.counsellings[1].officer == "王队"
    assert got.counsellings[0].officer == HANDLER.name
    # No colour is stored anywhere: the person row holds none.
    assert "colour" not in vendor_persons.c


async def test_every_look_is_recorded_with_who_when_why_before_it_is_returned(
    vf: VendorFile, db: AsyncEngine, clock: FakeClock
) -> None:
    who = await vf.create_person(HANDLER, name="张三")
    await vf.create_person(HANDLER, name="张三丰")
    await vf.create_person(HANDLER, name="100%_vendor")
    found = await vf.search(HANDLER, "张三", "  checking a stall on 县前街 ")
    assert [p.name for p in found] == ["张三", "张三丰"]
    assert [p.name for p in await vf.search(HANDLER, "%", "wildcards are text")] == ["100%_vendor"]
    await vf.file(HANDLER, who, "opened from the search")
    for bad in ("", "   "):
        with pytest.raises(InvalidInputError, match="reason: required"):
            await vf.search(HANDLER, "张", bad)
    with pytest.raises(InvalidInputError, match="reason: 201 characters, at most 200"):
        await vf.file(HANDLER, who, "x" * 201)
    with pytest.raises(NotFoundError):
        await vf.file(HANDLER, 999, "no one")
    rows = await lookups(db)
    assert [(r.kind, r.query, r.reason, r.shown) for r in rows] == [
        ("search", "张三", "checking a stall on 县前街", [who, who + 1]),
        ("search", "%", "wildcards are text", [who + 2]),
        ("file", "", "opened from the search", [who]),
    ]
    assert {(r.user_name, r.role, r.at) for r in rows} == {(HANDLER.name, "handler", clock())}


async def test_identity_numbers_are_stored_encrypted_and_found_by_their_keyed_hash(
    vf: VendorFile, db: AsyncEngine
) -> None:
    who = await vf.create_person(HANDLER, name="张三", id_number="110105 19491231 002x")
    async with db.connect() as conn:
        row = (await conn.execute(vendor_persons.select())).one()
    assert NUMBER.encode() not in bytes(row.id_cipher)
    assert NUMBER not in str(row.id_hmac)
    assert row.key_id == vf.cipher.key_id  # type: ignore[union-attr]
    found = await vf.find_by_id_number(HANDLER, NUMBER.lower(), "a vendor showed a card")
    assert [p.id for p in found] == [who]
    assert found[0].id_number_masked == "110***********002X"
    assert (await vf.file(HANDLER, who, "x")).person.id_number_masked == "110***********002X"
    assert await vf.find_by_id_number(HANDLER, "33010219800101123X", "another") == []
    with pytest.raises(ConflictError, match=f"person {who} in the vendor file has this"):
        await vf.create_person(HANDLER, name="张叁", id_number=NUMBER)
    with pytest.raises(InvalidInputError, match="check character 1 is wrong"):
        await vf.create_person(HANDLER, name="张叁", id_number="110105194912310021")
    rows = await lookups(db)
    # The number searched for is recorded masked, never in full.
    assert [r.query for r in rows if r.kind == "id_number"] == [
        "110***********002X",
        "330***********123X",
    ]


async def test_a_role_the_city_did_not_allow_is_refused_everything_and_leaves_no_trace(
    vf: VendorFile, db: AsyncEngine, clock: FakeClock
) -> None:
    who = await vf.create_person(HANDLER, name="张三")
    case = await seed_case(db, clock())
    calls = [
        vf.search(OPERATOR, "张", "curious"),
        vf.find_by_id_number(OPERATOR, NUMBER, "curious"),
        vf.file(OPERATOR, who, "curious"),
        vf.person_of_case(OPERATOR, case),
        vf.lookups(OPERATOR),
        vf.create_person(OPERATOR, name="x"),
        vf.link_case(OPERATOR, who, case),
        vf.add_counselling(OPERATOR, who, outcome=Outcome.COMPLIED),
        vf.set_photo(OPERATOR, who, "0" * 64),
        vf.photo(OPERATOR, who, "curious"),
    ]
    for call in calls:
        with pytest.raises(ForbiddenError, match="role operator may not see the vendor file"):
            await call
    assert await lookups(db) == []
    # Nothing in the service deletes or unlinks: the file is permanent.
    assert not [m for m in dir(VendorFile) if any(w in m for w in ("delet", "remov", "unlink"))]


async def test_the_hub_does_not_start_without_the_key_its_people_were_stored_with(
    db: AsyncEngine, tmp_path: Path, clock: FakeClock
) -> None:
    right, wrong = tmp_path / "right.key", tmp_path / "wrong.key"
    write_key_file(right)
    write_key_file(wrong)

    async def hub_with(key: Path | None) -> tuple[Hub, HubSettings]:
        settings = HubSettings(data_dir=tmp_path / "hub", vendor_file_key_file=key)
        hub = await build_hub(
            settings,
            clock=clock,
            mqtt=False,
            engine=db,
            run_migrations=False,
            publisher=RecordingPublisher(),
        )
        return hub, settings

    hub, settings = await hub_with(right)
    await hub.vendor_file.check_key()  # nobody stored yet: any key (or none) is fine
    await hub.vendor_file.create_person(HANDLER, name="张三", id_number=NUMBER)
    await hub.vendor_file.check_key()
    for key, says in ((None, "not set"), (wrong, "stored with another key")):
        other, settings = await hub_with(key)
        with pytest.raises(SettingsError, match=f"XH_HUB_VENDOR_FILE_KEY_FILE.*{says}"):
            await asyncio.wait_for(
                run_hub(other, settings, api=False, stop=asyncio.Event()), timeout=10
            )
    # Without the key nothing can be added either, and the reason names the setting.
    with pytest.raises(ConflictError, match="XH_HUB_VENDOR_FILE_KEY_FILE"):
        await service(db, tmp_path, clock, None).create_person(HANDLER, name="李四")
    # A row whose ciphertext was altered is a loud error too, not a garbage number.
    async with db.begin() as conn:
        await conn.execute(vendor_persons.update().values(id_cipher=b"\0" * 40))
    with pytest.raises(SettingsError, match="does not decrypt"):
        await hub.vendor_file.check_key()


async def test_a_backup_carries_people_encrypted_and_their_photos(
    vf: VendorFile, db: AsyncEngine, tmp_path: Path, clock: FakeClock
) -> None:
    sha = await vf.photos.put(b"\xff\xd8 a person's photo \xff\xd9")
    who = await vf.create_person(HANDLER, name="张三", id_number=NUMBER, photo_sha256=sha)
    archive = tmp_path / "hub.tar"
    await backup(db, EvidenceStore(tmp_path / "evidence"), archive, None, vf.photos)
    bare = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}")
    try:
        with pytest.raises(BackupError, match="vendor file photos"):
            await restore(bare, EvidenceStore(tmp_path / "bare"), archive)
    finally:
        await bare.dispose()
    target = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}")
    try:
        photos = EvidenceStore(tmp_path / "restored_photos")
        await restore(target, EvidenceStore(tmp_path / "restored_evidence"), archive, None, photos)
        again = VendorFile(target, photos, clock, roles=ROLES, cipher=vf.cipher)
        await again.check_key()
        got = await again.file(HANDLER, who, "restored")
        assert got.person.id_number_masked == "110***********002X"
        assert await again.photo(HANDLER, who, "restored") == b"\xff\xd8 a person's photo \xff\xd9"
    finally:
        await target.dispose()
