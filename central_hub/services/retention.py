"""Retention passes: drop what the city's policy no longer keeps (DB rows and image
files), the same way from the serve loop and from ``central-hub retention``.

Rows first, files after: a photo's file goes only when no row still points at it and the
file is older than :data:`FILE_GRACE` (an upload not yet attached to a transition, or an
image being ingested, has a fresh mtime; :meth:`EvidenceStore.put_sync` refreshes the
mtime of bytes stored again). Case records and audit trails stay; a case's attachments
keep their hashes, so the trail still says a photo was there.

Operators' recorded messages (the voice folder, ``<sha256>.wav``) go when no
``speaker.play_clip`` command sent within ``voice_days`` nor any still open names them and
the file is older than both the grace and the cutoff; the commands' rows (who said what
to which unit) stay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.db.schema import (
    audits,
    cases,
    citizen_reports,
    commands,
    dead_letters,
    events,
    notice_deliveries,
    service_object_photos,
    snapshots,
    tracks,
)
from central_hub.domain.retention import RetentionPolicy, RetentionReport
from central_hub.domain.workflow import FINAL_STAGES
from central_hub.services.citizen_followup import CONTACT_PREFIX, mask_address
from central_hub.services.commands import OPEN_STATES
from central_hub.services.voice import PLAY_CLIP

log = logging.getLogger(__name__)

__all__ = ["FILE_GRACE", "apply_retention"]

#: Files younger than this are never deleted, referenced or not.
FILE_GRACE = timedelta(days=1)
#: A citizen reporter's contact columns (personal data), cleared by retention.
_CONTACT = ("email", "first_name", "last_name", "phone", "device_id", "account_id")


async def apply_retention(
    engine: AsyncEngine,
    evidence: EvidenceStore,
    frames: EvidenceStore,
    policy: RetentionPolicy,
    now: datetime,
    *,
    voice: Path | None = None,
    dry_run: bool = False,
) -> RetentionReport:
    """One pass of ``policy`` at ``now``; with ``dry_run`` count and change nothing.

    ``voice`` is the folder of operators' recorded messages (none: not swept).
    """
    cut = policy.cutoffs(now)
    counts: dict[str, int] = {}
    final = [s.value for s in FINAL_STAGES]
    # A dry run makes the same changes in a transaction it rolls back: the counts, and
    # the files no kept row points at, are exactly those of a real pass.
    async with engine.connect() as conn:
        trans = await conn.begin()

        async def step(name: str, stmt: sa.Executable) -> None:
            counts[name] = int(getattr(await conn.execute(stmt), "rowcount", 0) or 0)

        old: sa.ColumnElement[bool]
        if cut.evidence is not None:
            expired_cases = sa.select(cases.c.id).where(
                cases.c.stage.in_(final), cases.c.closed_at < cut.evidence
            )
            stale = events.c.snapshot_sha256.is_not(None) & (
                events.c.case_id.in_(expired_cases)
                | (events.c.case_id.is_(None) & (events.c.detected_at < cut.evidence))
            )
            await step(
                "events_evidence_dropped", events.update().where(stale).values(snapshot_sha256=None)
            )
            photo = citizen_reports.c.photo_sha256.is_not(None)
            await step(
                "citizen_photos_dropped",
                citizen_reports.update()
                .where(photo, citizen_reports.c.case_id.in_(expired_cases))
                .values(photo_sha256=None),
            )
        if cut.frames is not None:
            old = events.c.frame_sha256.is_not(None) & (events.c.detected_at < cut.frames)
            await step(
                "frames_dropped",
                events.update().where(old).values(frame_sha256=None, frame_faces=None),
            )
        if cut.snapshots is not None:
            old = snapshots.c.received_at < cut.snapshots
            await step("snapshots_deleted", snapshots.delete().where(old))
        if cut.tracks is not None:
            old = tracks.c.last_ts < cut.tracks
            await step("tracks_deleted", tracks.delete().where(old))
        if cut.dead_letters is not None:
            old = dead_letters.c.received_at < cut.dead_letters
            await step("dead_letters_deleted", dead_letters.delete().where(old))
        if cut.shadow is not None:
            old = events.c.shadow & (events.c.detected_at < cut.shadow)
            await step("shadow_events_deleted", events.delete().where(old))
        if cut.citizen_contact is not None:
            closed_long_ago = sa.select(cases.c.id).where(
                cases.c.stage.in_(final), cases.c.closed_at < cut.citizen_contact
            )
            contact = [citizen_reports.c[name] for name in _CONTACT]
            clearing = [
                r[0]
                for r in await conn.execute(
                    sa.select(citizen_reports.c.id).where(
                        citizen_reports.c.case_id.in_(closed_long_ago),
                        sa.or_(*(column.is_not(None) for column in contact)),
                    )
                )
            ]
            counts["followup_addresses_masked"] = await _mask_followups(conn, clearing)
            await step(
                "citizen_contacts_cleared",
                citizen_reports.update()
                .where(
                    citizen_reports.c.case_id.in_(closed_long_ago),
                    sa.or_(*(column.is_not(None) for column in contact)),
                )
                .values(dict.fromkeys(_CONTACT, None) | {"contact_cleared_at": now}),
            )
        live_evidence = await _live_evidence(conn, cut.evidence, final)
        live_frames = {
            r[0]
            for r in await conn.execute(
                sa.select(events.c.frame_sha256).where(events.c.frame_sha256.is_not(None))
            )
        }
        voiced = await _voice_in_use(conn, cut.voice, now) if cut.voice and voice else set()
        if dry_run:
            await trans.rollback()
        else:
            await trans.commit()
    grace = time.time() - FILE_GRACE.total_seconds()
    counts["evidence_files_deleted"] = await asyncio.to_thread(
        _sweep, evidence.root, live_evidence, grace, dry_run
    )
    counts["frame_files_deleted"] = await asyncio.to_thread(
        _sweep, frames.root, live_frames, grace, dry_run
    )
    if cut.voice is not None and voice is not None:
        counts["voice_clips_deleted"] = await asyncio.to_thread(
            _sweep, voice, voiced, min(grace, cut.voice.timestamp()), dry_run, "*.wav"
        )
    report = RetentionReport(dry_run=dry_run, **counts)
    log.info("retention pass%s: %s", " (dry run)" if dry_run else "", report)
    return report


async def _live_evidence(
    conn: AsyncConnection, cutoff: datetime | None, final: list[str]
) -> set[str]:
    """Every evidence hash a kept row points at (after this pass's updates)."""
    live = {
        r[0]
        for r in await conn.execute(
            sa.select(events.c.snapshot_sha256).where(events.c.snapshot_sha256.is_not(None))
        )
    }
    live.update(r[0] for r in await conn.execute(sa.select(snapshots.c.sha256)))
    live.update(
        r[0]
        for r in await conn.execute(
            sa.select(citizen_reports.c.photo_sha256).where(
                citizen_reports.c.photo_sha256.is_not(None)
            )
        )
    )
    # Service objects' photos are kept as long as their object (the registry is permanent).
    live.update(r[0] for r in await conn.execute(sa.select(service_object_photos.c.sha256)))
    q = sa.select(audits.c.attachments).join(cases, cases.c.id == audits.c.case_id)
    if cutoff is not None:
        q = q.where(~(cases.c.stage.in_(final) & (cases.c.closed_at < cutoff)))
    for (attached,) in await conn.execute(q):
        live.update(str(sha) for sha in attached or ())
    return live


async def _mask_followups(conn: AsyncConnection, report_ids: list[int]) -> int:
    """Mask the addresses the follow-ups of ``report_ids`` went to (their deliveries)."""
    masked = 0
    for at in range(0, len(report_ids), 500):
        contacts = [f"{CONTACT_PREFIX}{n}" for n in report_ids[at : at + 500]]
        rows = (
            await conn.execute(
                sa.select(notice_deliveries.c.id, notice_deliveries.c.address).where(
                    notice_deliveries.c.contact_id.in_(contacts)
                )
            )
        ).all()
        hidden = [
            {"b_id": delivery_id, "b_address": masked_address}
            for delivery_id, address in rows
            if (masked_address := mask_address(address)) != address
        ]
        if hidden:
            await conn.execute(
                notice_deliveries.update()
                .where(notice_deliveries.c.id == sa.bindparam("b_id"))
                .values(address=sa.bindparam("b_address")),
                hidden,
            )
        masked += len(hidden)
    return masked


async def _voice_in_use(conn: AsyncConnection, cutoff: datetime, now: datetime) -> set[str]:
    """The clips a play_clip command issued since ``cutoff``, or still open, names."""
    still_open = commands.c.state.in_(OPEN_STATES) & (commands.c.expires_at > now)
    q = sa.select(commands.c.params).where(
        commands.c.kind == PLAY_CLIP, (commands.c.issued_at >= cutoff) | still_open
    )
    return {str(p.get("sha256")) for (p,) in await conn.execute(q) if isinstance(p, dict)}


def _sweep(
    root: Path, live: set[str], older_than: float, dry_run: bool, pattern: str = "??/??/*.jpg"
) -> int:
    """Delete (or count) the files under ``root`` (``pattern``, named by their hash) no kept
    row points at, older than ``older_than``."""
    if not root.is_dir():
        return 0
    gone = 0
    for path in root.glob(pattern):
        if path.stem in live:
            continue
        try:
            if path.stat().st_mtime >= older_than:
                continue
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            continue
        gone += 1
    return gone
