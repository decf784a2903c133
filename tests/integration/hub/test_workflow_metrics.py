"""A case through the whole workflow (with rework) over the API; metrics match a hand table."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from central_hub.adapters.evidence import EvidenceStore
from central_hub.api import API_PREFIX, create_app
from central_hub.db.schema import audits, cases, frame_reads
from central_hub.domain.metrics import AuditFact, CaseFacts, compute_metrics, daily_counts
from central_hub.domain.workflow import Action, Role, Stage, allowed_actions, transition
from central_hub.errors import NotFoundError
from central_hub.hub import Hub
from central_hub.testing import TINY_JPEG, FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker

pytestmark = pytest.mark.integration

MARKET = (28.6472, 121.2615)
PARKING = (28.6455, 121.2650)


def phone_photo() -> bytes:
    """A real JPEG carrying EXIF text, as a phone's photo carries its position."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010E] = "taken at 28.6472N 121.2615E"
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 60)).save(out, format="JPEG", exif=exif)
    data = out.getvalue()
    assert b"28.6472N" in data
    return data


def local(hour: int, minute: int = 0, day: int = 23) -> datetime:
    """A time on Monday 2026-11-23 in Shanghai (UTC+8), as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as client:
        yield client


async def _tokens(hub: Hub) -> dict[Role, dict[str, str]]:
    out = {}
    for role in Role:
        _, token = await hub.users.add(f"{role.value}-1", role)
        out[role] = {"Authorization": f"Bearer {token}"}
    return out


async def _file(hub: Hub, clock: FakeClock, tmp_path: Path, *events: object) -> None:
    worker = IngestWorker(
        hub.engine, ListSource(), EvidenceStore(tmp_path / "ev"), hub.filer, clock
    )
    await worker.process([inbound(e) for e in events])
    assert worker.stats.dead_lettered == 0


async def test_clean_frames_are_kept_apart_for_admins_and_every_read_recorded(
    hub: Hub, api: httpx.AsyncClient, clock: FakeClock, tmp_path: Path
) -> None:
    """The unit's clean frame goes to the frames store, not the public evidence; only an
    admin may fetch it, and the hub records who did and when."""
    t = await _tokens(hub)
    clean = TINY_JPEG + b"clean"
    clock.now = local(9)
    worker = IngestWorker(
        hub.engine, ListSource(), hub.evidence, hub.filer, clock, frames=hub.frames
    )
    event = make_event("pole-1", at=clock.now, snapshot=TINY_JPEG, frame=clean)
    await worker.process([inbound(event)])
    stored = (
        await api.get(f"{API_PREFIX}/events/{event.event_id}", headers=t[Role.OPERATOR])
    ).json()
    sha = stored["frame_sha256"]
    assert sha is not None
    assert sha != stored["snapshot_sha256"]
    assert hub.frames.get_sync(sha) == clean
    with pytest.raises(NotFoundError):
        hub.evidence.get_sync(sha)  # not among the public images
    url = f"{API_PREFIX}/frames/{sha}"
    for role in (Role.OPERATOR, Role.DISPATCHER, Role.HANDLER):
        assert (await api.get(url, headers=t[role])).status_code == 403
    async with hub.engine.connect() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(frame_reads))
        ).scalar() == 0
    clock.now = local(10)
    r = await api.get(url, headers=t[Role.ADMIN])
    assert r.status_code == 200
    assert r.content == clean
    assert r.headers["content-type"] == "image/jpeg"
    async with hub.engine.connect() as conn:
        reads = (await conn.execute(frame_reads.select())).all()
    assert [(x.sha256, x.user_name, x.at) for x in reads] == [(sha, "admin-1", local(10))]
    assert (
        await api.get(f"{API_PREFIX}/frames/{'0' * 64}", headers=t[Role.ADMIN])
    ).status_code == 404
    # A worker given no frames store keeps no frame, and loses nothing else.
    bare = IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, clock)
    other = make_event("pole-2", at=clock.now, snapshot=TINY_JPEG, frame=clean)
    await bare.process([inbound(other)])
    row = (await api.get(f"{API_PREFIX}/events/{other.event_id}", headers=t[Role.OPERATOR])).json()
    assert row["frame_sha256"] is None
    assert row["snapshot_sha256"] is not None


async def test_verdicts_become_labels_for_the_admin(
    hub: Hub, api: httpx.AsyncClient, clock: FakeClock, tmp_path: Path
) -> None:
    """Verified AI reports are true positives, cancelled ones false alarms of the kind the
    operator said; undecided ones are not labelled; only an admin may read them."""
    t = await _tokens(hub)
    op, admin = t[Role.OPERATOR], t[Role.ADMIN]
    clock.now = local(9)
    seen = make_event("pole-1", code="0504", seq=1, at=clock.now, lat=MARKET[0], lon=MARKET[1])
    again = make_event("pole-1", code="0504", seq=2, at=clock.now, lat=MARKET[0], lon=MARKET[1])
    umbrella = make_event(
        "pole-2", code="0501", seq=1, at=clock.now, lat=PARKING[0], lon=PARKING[1]
    )
    waiting = make_event("pole-3", code="0505", seq=1, at=clock.now, lat=28.6500, lon=121.2600)
    await _file(hub, clock, tmp_path, seen, again, umbrella, waiting)
    listed = (await api.get(f"{API_PREFIX}/cases", headers=op)).json()
    by_code = {c["code"]: c["id"] for c in listed}

    async def act(case_id: int, action: str, at: datetime, **kw: object) -> None:
        clock.now = at
        r = await api.post(
            f"{API_PREFIX}/cases/{case_id}/transitions", json={"action": action, **kw}, headers=op
        )
        assert r.status_code == 200, r.text

    await act(by_code["0504"], "start_verify", local(9, 5))
    await act(by_code["0504"], "verify", local(9, 6))
    await act(by_code["0501"], "cancel", local(9, 7), verdict="wrong_object")
    period = {"since": local(0).isoformat(), "until": local(0, day=24).isoformat()}
    r = await api.get(f"{API_PREFIX}/labels", params=period, headers=admin)
    assert r.status_code == 200, r.text
    got = {(x["event"]["event_id"], x["label"], x["decided_by"]) for x in r.json()}
    assert got == {
        (seen.event_id, "true_positive", "operator-1"),
        (again.event_id, "true_positive", "operator-1"),
        (umbrella.event_id, "false_positive:wrong_object", "operator-1"),
    }
    assert all(x["event"]["objects"] for x in r.json())  # the detections come along
    assert (await api.get(f"{API_PREFIX}/labels", params=period, headers=op)).status_code == 403
    later = {"since": local(9, 7).isoformat(), "until": local(10).isoformat()}
    only = (await api.get(f"{API_PREFIX}/labels", params=later, headers=admin)).json()
    assert [x["event"]["event_id"] for x in only] == [umbrella.event_id]
    bad = {"since": local(10).isoformat(), "until": local(9).isoformat()}
    r = await api.get(f"{API_PREFIX}/labels", params=bad, headers=admin)
    assert r.status_code == 422
    assert "since before until" in r.json()["detail"]


async def test_full_workflow_with_rework_and_metrics(
    hub: Hub, api: httpx.AsyncClient, clock: FakeClock, tmp_path: Path
) -> None:
    t = await _tokens(hub)
    op, disp, hand = t[Role.OPERATOR], t[Role.DISPATCHER], t[Role.HANDLER]

    async def act(case_id: int, action: str, who: dict[str, str], at: datetime, **kw: object):
        clock.now = at
        return await api.post(
            f"{API_PREFIX}/cases/{case_id}/transitions", json={"action": action, **kw}, headers=who
        )

    # Case A: trading outside a shop at the market pole, 09:00.
    clock.now = local(9)
    await _file(
        hub,
        clock,
        tmp_path,
        make_event("pole-1", code="0504", at=clock.now, lat=MARKET[0], lon=MARKET[1]),
    )
    # Case B: a parked car at the parking pole, 09:05 (will be cancelled).
    clock.now = local(9, 5)
    await _file(
        hub,
        clock,
        tmp_path,
        make_event("pole-2", code="0505", at=clock.now, lat=PARKING[0], lon=PARKING[1]),
    )
    # The same shop front again at 09:15: merges into A, no new case.
    clock.now = local(9, 15)
    await _file(
        hub,
        clock,
        tmp_path,
        make_event(
            "pole-1", code="0504", seq=2, at=clock.now, lat=MARKET[0], lon=MARKET[1] + 0.00005
        ),
    )
    # Case C: exposed garbage at the parking pole, 09:30 (dispatched, never handled).
    clock.now = local(9, 30)
    await _file(
        hub,
        clock,
        tmp_path,
        make_event("pole-2", code="0102", seq=2, at=clock.now, lat=PARKING[0], lon=PARKING[1]),
    )

    listed = (await api.get(f"{API_PREFIX}/cases", headers=op)).json()
    assert len(listed) == 3
    by_code = {c["code"]: c for c in listed}
    a, b, c = by_code["0504"]["id"], by_code["0505"]["id"], by_code["0102"]["id"]
    assert by_code["0504"]["event_count"] == 2
    assert by_code["0504"]["stage"] == "reported"
    assert by_code["0504"]["grid_cell_id"] == "hy-st-11"
    assert by_code["0504"]["squad_id"] == "zf-market-patrol"
    assert by_code["0102"]["line"] == "sanitation"

    # AI reports need verification: registering straight away is refused with a reason.
    r = await act(a, "register", op, local(9, 8))
    assert r.status_code == 409
    assert r.json()["detail"]
    # A handler may not verify.
    r = await act(a, "start_verify", hand, local(9, 8))
    assert r.status_code == 403
    assert "handler" in r.json()["detail"]

    assert (await act(a, "start_verify", op, local(9, 8))).status_code == 200
    assert (await act(a, "verify", op, local(9, 10), reason="seen on camera")).status_code == 200
    assert (await act(a, "dispatch", disp, local(9, 20))).status_code == 200
    r = await act(a, "approve", op, local(9, 30))
    assert r.status_code == 409  # cannot close what nobody handled
    # Bytes that only start like a JPEG are refused; a real photo loses its metadata.
    fake = await api.post(
        f"{API_PREFIX}/evidence", files={"file": ("p.jpg", TINY_JPEG, "image/jpeg")}, headers=hand
    )
    assert fake.status_code == 422
    assert "JPEG, PNG or WebP" in fake.json()["detail"]
    photo = await api.post(
        f"{API_PREFIX}/evidence",
        files={"file": ("p.jpg", phone_photo(), "image/jpeg")},
        headers=hand,
    )
    assert photo.status_code == 200
    sha = photo.json()["sha256"]
    stored = await hub.evidence.get(sha)
    assert stored.startswith(b"\xff\xd8")
    assert b"28.6472N" not in stored  # the phone's position (EXIF) is gone
    assert (await act(a, "handle", hand, local(9, 50), attachments=[sha])).status_code == 200
    assert (await act(a, "check", op, local(10))).status_code == 200
    r = await act(a, "return_for_rework", op, local(10, 5), reason="goods still out")
    assert r.json()["case"]["stage"] == "returned"
    assert (await act(a, "dispatch", disp, local(10, 10))).status_code == 200
    assert (await act(a, "handle", hand, local(10, 40))).status_code == 200
    assert (await act(a, "check", op, local(10, 45))).status_code == 200
    r = await act(a, "approve", op, local(10, 50), reason="clear")
    assert r.status_code == 200
    detail = r.json()
    assert detail["case"]["stage"] == "closed"
    # Deadline: 2 working hours from the first dispatch at 09:20.
    assert datetime.fromisoformat(detail["case"]["deadline"]) == local(11, 20)
    trail = detail["audits"]
    assert [x["action"] for x in trail] == [
        "file", "start_verify", "verify", "dispatch", "handle", "check",
        "return_for_rework", "dispatch", "handle", "check", "approve",
    ]  # fmt: skip
    assert trail[4]["attachments"] == [sha]
    assert trail[4]["actor"] == "handler-1"
    assert trail[6]["reason"] == "goods still out"
    assert len(detail["event_ids"]) == 2

    assert (await act(b, "start_verify", op, local(9, 12))).status_code == 200
    refused = await act(b, "cancel", op, local(9, 13), reason="car left")
    assert refused.status_code == 422
    assert "verdict must be one of wrong_object, not_a_violation" in refused.json()["detail"]
    wrong = await act(b, "verify", op, local(9, 13), verdict="duplicate")
    assert wrong.status_code == 422
    assert "a verdict goes with cancel only" in wrong.json()["detail"]
    cancel = await act(b, "cancel", op, local(9, 13), reason="car left", verdict="other")
    assert cancel.status_code == 200
    assert cancel.json()["audits"][-1]["verdict"] == "other"
    assert (await act(c, "start_verify", op, local(9, 35))).status_code == 200
    assert (await act(c, "verify", op, local(9, 36))).status_code == 200
    r = await act(c, "dispatch", disp, local(9, 40), squad_id="hw-east-2")
    assert r.status_code == 200
    assert r.json()["case"]["squad_id"] == "hw-east-2"
    assert "-> hw-east-2" in r.json()["audits"][-1]["reason"]

    # C: 4 working hours from 09:40 = 2h20 before noon + 1h40 after 14:30 -> 16:10.
    overdue_at = lambda when: api.get(  # noqa: E731
        f"{API_PREFIX}/cases", params={"overdue": "true", "at": when.isoformat()}, headers=op
    )
    assert (await overdue_at(local(16))).json() == []
    assert [x["id"] for x in (await overdue_at(local(16, 11))).json()] == [c]

    # Metrics for the week, as of Monday 17:00.
    clock.now = local(17)
    params = {"start": local(0).isoformat(), "end": local(0, day=30).isoformat()}
    m = (await api.get(f"{API_PREFIX}/metrics", params=params, headers=op)).json()
    expected = {
        "reported": 3, "accepted": 3, "registered": 2, "cancelled": 1, "dispatched": 2,
        "handled": 1, "closed": 1, "due_to_close": 2, "closed_on_time": 1, "returned": 1,
        "from_ai": 3, "overdue_unhandled": 1,
    }  # fmt: skip
    assert {k: m[k] for k in expected} == expected
    assert m["registration_rate"] == pytest.approx(2 / 3)
    assert m["dispatch_rate"] == pytest.approx(1.0)
    assert m["closure_rate"] == pytest.approx(0.5)
    assert m["on_time_closure_rate"] == pytest.approx(0.5)
    assert m["rework_rate"] == pytest.approx(0.5)
    assert m["disposal_rate"] == pytest.approx(1 / 3)
    assert m["recognition_share"] == pytest.approx(1.0)
    assert m["avg_handling_hours"] == pytest.approx(80 / 60)
    # The market street cell's subtree holds only case A.
    sub = (
        await api.get(f"{API_PREFIX}/metrics", params={**params, "cell": "hy-st-11"}, headers=op)
    ).json()
    assert (sub["reported"], sub["closed"], sub["overdue_unhandled"]) == (1, 1, 0)
    # Handlers do not see statistics.
    assert (await api.get(f"{API_PREFIX}/metrics", params=params, headers=hand)).status_code == 403


async def test_service_reads_what_the_pure_metrics_need(hub: Hub, clock: FakeClock) -> None:
    """The service reads only some rows (by period and area); figures match all rows.

    A generated district: 400 cases over six weeks walked through the state machine
    (rework, cancellations, cases open across the period's start, some without a cell),
    then every metric and daily flow from the service against the pure functions over
    every case and audit entry in the database.
    """
    rng = random.Random(11)
    now = clock()
    streets = [c.id for c in hub.grid.cells() if c.level == "street"]
    case_rows, audit_rows = [], []
    for case_id in range(1, 401):
        reported = now - timedelta(minutes=rng.randint(0, 42 * 1440))
        stage = rng.choice([Stage.REPORTED, Stage.REGISTERED])
        trail: list[tuple[Stage | None, Stage, str, datetime]] = [(None, stage, "file", reported)]
        at, deadline, closed_at = reported, None, None
        for _ in range(rng.randint(0, 9)):
            options = allowed_actions(stage, Role.ADMIN)
            if not options:
                break
            action = rng.choice(options)
            at += timedelta(minutes=rng.choice([0, 7, 90, 600, 3 * 1440]))
            new = transition(stage, action, Role.ADMIN)
            if action is Action.DISPATCH and deadline is None:
                deadline = at + timedelta(hours=rng.choice([2, 8, 48]))
            if new in (Stage.CLOSED, Stage.CANCELLED):
                closed_at = at
            trail.append((stage, new, action.value, at))
            stage = new
        cell = rng.choice([*streets, None]) if rng.random() < 0.9 else None
        case_rows.append(
            {
                "id": case_id,
                "source": rng.choice(["ai", "citizen", "inspector"]),
                "code": "0501",
                "major": "05",
                "category": "x",
                "title": "x",
                "line": "urban",
                "grid_cell_id": cell,
                "stage": stage.value,
                "reported_at": reported,
                "deadline": deadline,
                "limit_kind": "working_hours",
                "limit_amount": 4.0,
                "verification_required": False,
                "last_event_at": reported,
                "updated_at": at,
                "closed_at": closed_at,
            }
        )
        for frm, to, action_name, when in trail:
            audit_rows.append(
                {
                    "case_id": case_id,
                    "at": when,
                    "from_stage": None if frm is None else frm.value,
                    "to_stage": to.value,
                    "action": action_name,
                    "actor": "gen",
                    "role": "admin",
                    "reason": "",
                    "attachments": [],
                }
            )
    rng.shuffle(audit_rows)  # ids out of time order, as concurrent writers leave them
    async with hub.engine.begin() as conn:
        await conn.execute(cases.insert(), case_rows)
        await conn.execute(audits.insert(), audit_rows)
        every_case = (await conn.execute(sa.select(cases))).all()
        every_audit = (await conn.execute(sa.select(audits).order_by(audits.c.id))).all()
    initial = {a.case_id: a.to_stage for a in every_audit if a.from_stage is None}
    all_cases = [
        CaseFacts(c.id, c.source, c.code, c.grid_cell_id, c.reported_at, c.deadline, initial[c.id])
        for c in every_case
    ]
    all_audits = [
        AuditFact(a.case_id, a.at, a.from_stage, a.to_stage, a.action, a.actor, a.role)
        for a in every_audit
    ]
    zone = next(c.id for c in hub.grid.cells() if c.level == "zone")
    views = [
        (now - timedelta(days=7), now, now),
        (now - timedelta(days=30), now, now),
        (now - timedelta(days=20), now - timedelta(days=10), now),
        (now - timedelta(days=40), now - timedelta(days=5), now - timedelta(days=9)),
    ]
    for start, end, at in views:
        for cell in (None, zone):
            cells = hub.grid.subtree(cell) if cell else None
            metrics, daily = await hub.metrics.overview(start, end, cell_id=cell, now=at)
            want = compute_metrics(
                all_cases, all_audits, period_start=start, period_end=end, now=at, cell_ids=cells
            )
            want_daily = daily_counts(
                all_cases, all_audits, period_start=start, period_end=end, now=at, cell_ids=cells
            )
            assert metrics == want, (start, cell)
            assert daily == want_daily, (start, cell)
            assert metrics.reported > 0


def test_fact_datetimes_read_in_utc() -> None:
    """SQLite's text (with or without a zone) and driver datetimes all come back in UTC."""
    from central_hub.db.schema import utc_from_driver

    want = datetime(2026, 11, 23, 1, 2, 3, 456789, tzinfo=UTC)
    for raw in (
        "2026-11-23 01:02:03.456789",
        "2026-11-23T09:02:03.456789+08:00",
        datetime(2026, 11, 23, 1, 2, 3, 456789),
        want,
        want.astimezone(timezone(timedelta(hours=-5))),
    ):
        got = utc_from_driver(raw)
        assert got == want, raw
        assert got.tzinfo is UTC, raw
    with pytest.raises(TypeError):
        utc_from_driver(42)


async def test_sqlite_datetimes_stored_as_sqlalchemy_writes_them(tmp_path: Path) -> None:
    """UTCDateTime's one-step SQLite binding stores SQLAlchemy's own text, in UTC.

    Older databases hold that text, and queries compare it as text: a different form
    (a 'T', missing microseconds, a zone) would sort wrongly against it.
    """
    from central_hub.db.engine import create_engine
    from central_hub.db.schema import UTCDateTime

    table = sa.Table("t", sa.MetaData(), sa.Column("at", UTCDateTime))
    plain = sa.Table("t", sa.MetaData(), sa.Column("at", sa.Text))
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'dt.db'}")
    values = [
        datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC),
        datetime(2026, 11, 23, 9, 2, 3, 7, tzinfo=timezone(timedelta(hours=8))),
    ]
    async with engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        await conn.execute(table.insert(), [{"at": v} for v in values])
        text = (await conn.execute(sa.select(plain.c.at))).scalars().all()
        back = (await conn.execute(sa.select(table.c.at))).scalars().all()
        with pytest.raises(sa.exc.StatementError, match="naive datetime"):
            await conn.execute(table.insert(), [{"at": datetime(2026, 1, 1)}])
    await engine.dispose()
    assert text == ["2026-11-23 01:02:03.000000", "2026-11-23 01:02:03.000007"]
    assert back == [v.astimezone(UTC) for v in values]
