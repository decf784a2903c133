"""Files stored events as cases, inside the ingest transaction, using the domain's pure plan.

:meth:`CaseFiler.file_many` is the one way a report becomes a case: ingest files a batch
with it, and a single event (isolating a failed batch, or retrying a lost race) as a batch
of one. The database pre-filters candidate cases (same code, open, bounding boxes around
the reports and their merge windows, with no cap: the plan picks the nearest, which a cap
could drop); :func:`central_hub.domain.filing.plan_filing` decides.

Two hub workers filing reports of the same new problem at the same instant give one case:
on PostgreSQL each report first takes transaction-scoped advisory locks on the squares its
merge radius reaches (:func:`lock_keys`), so two reports that could merge share a lock and
the second files after the first has committed, and sees its case. Locks are taken in one
sorted statement, so two workers never wait on each other in a cycle. SQLite needs none:
its transactions begin IMMEDIATE and so already file one at a time.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import math
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from central_hub.db.schema import UTCDateTime, audits, cases, utc_from_driver
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.errors import DomainError
from central_hub.domain.filing import EventFacts, FilingPlan, OpenCase, plan_filing
from central_hub.domain.grid import Grid
from central_hub.domain.workflow import FINAL_STAGES
from central_hub.errors import StorageError

log = logging.getLogger(__name__)

__all__ = ["FILING_ACTION", "LOCK_TILE_M", "SYSTEM_ROLE", "CaseFiler", "lock_keys"]

#: The audit action recorded when a case is opened by filing.
FILING_ACTION = "file"
#: The audit role of the hub itself (filing is not a person's action).
SYSTEM_ROLE = "system"
_METRES_PER_DEGREE = 111_320.0
#: Tiles per side of a block in the candidate query of a widely spread batch.
QUERY_BLOCK = 8
#: Up to this many distinct tiles, the candidate query asks for each tile's neighbourhood.
MAX_FINE_BOXES = 1_500
#: Longitude ranges per band term of the candidate query (a band with more gets more terms).
LON_SLOTS = 4
#: Band terms per candidate query (more run as several queries; bounds bound parameters).
MAX_TERMS = 1_024
#: Side (north-south, metres) of the squares filing locks; a report's radius reaches a few.
LOCK_TILE_M = 250.0
#: Metres per degree of latitude, rounded down, so a lock square errs on the large side.
_LOCK_M_PER_DEG = 110_000.0
_LOCK_SQL = sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


def lock_keys(batch: list[EventFacts], catalogue: Catalogue) -> list[int]:
    """The advisory-lock keys a batch takes before filing, sorted (pure).

    A report locks every square (of :data:`LOCK_TILE_M`, per code) that the box around
    its merge radius touches. A report B that could merge into a case opened by report A
    lies within A's radius, so B's own square is among A's: any two reports that could
    merge share a key, whichever worker files them.
    """
    tile = LOCK_TILE_M / _LOCK_M_PER_DEG
    keys: set[int] = set()
    for facts in batch:
        if facts.code not in catalogue:
            continue
        dlat = catalogue.get(facts.code).merge_radius_m / _LOCK_M_PER_DEG
        dlon = dlat / max(math.cos(math.radians(min(abs(facts.lat) + dlat, 89.0))), 1e-6)
        lat0, lat1 = math.floor((facts.lat - dlat) / tile), math.floor((facts.lat + dlat) / tile)
        lon0, lon1 = math.floor((facts.lon - dlon) / tile), math.floor((facts.lon + dlon) / tile)
        for ilat in range(lat0, lat1 + 1):
            for ilon in range(lon0, lon1 + 1):
                name = f"xh-file:{facts.code}:{ilat}:{ilon}".encode()
                digest = hashlib.blake2b(name, digest_size=8).digest()
                keys.add(int.from_bytes(digest, "big", signed=True))
    return sorted(keys)


class CaseFiler:
    """The :class:`central_hub.workers.ingest.EventFiler` over the catalogue, grid and calendar."""

    def __init__(self, catalogue: Catalogue, grid: Grid, calendar: WorkCalendar) -> None:
        self.catalogue = catalogue
        self.grid = grid
        self.calendar = calendar

    async def file_many(
        self, conn: AsyncConnection, batch: list[EventFacts], now: datetime
    ) -> list[int | DomainError]:
        """File a batch of reports in a few statements; per report a case id or the refusal.

        Candidates for every report come from one query (open cases in any of the
        batch's bounding boxes); reports earlier in the batch are candidates for later ones,
        so two reports of one new problem in the same batch open one case. New cases are
        inserted with one multi-row INSERT ... RETURNING, merges and audits likewise.
        """
        results: list[int | str | DomainError] = []
        if not batch:
            return []
        if conn.dialect.name == "postgresql":
            await conn.execute(_LOCK_SQL, {"keys": lock_keys(batch, self.catalogue)})
        buckets = _Buckets(self.catalogue, batch)
        for found in await self._batch_candidates(conn, batch, buckets):
            buckets.add(found)
        new_rows: list[dict[str, Any]] = []
        pending: dict[str, int] = {}  # local id -> index in new_rows
        merges: dict[int, tuple[int, datetime]] = {}
        for n, facts in enumerate(batch):
            try:
                plan = plan_filing(
                    facts, buckets.near(facts), self.catalogue, self.grid, self.calendar, now
                )
            except DomainError as exc:
                results.append(exc)
                continue
            if plan.merge_into is None:
                local = f"new-{n}"
                pending[local] = len(new_rows)
                new_rows.append(self._case_row(plan, facts, now))
                buckets.put(
                    OpenCase(
                        local,
                        facts.code,
                        facts.lat,
                        facts.lon,
                        plan.initial_stage,
                        facts.detected_at,
                    )
                )
                results.append(local)
                continue
            target = plan.merge_into
            buckets.touch(target, facts.detected_at)
            if isinstance(target, str):
                row = new_rows[pending[target]]
                row["event_count"] += 1
                row["last_event_at"] = max(row["last_event_at"], facts.detected_at)
            else:
                count, last = merges.get(int(target), (0, facts.detected_at))
                merges[int(target)] = (count + 1, max(last, facts.detected_at))
            results.append(target)
        ids: dict[str, int] = {}
        if new_rows:
            # Unsorted RETURNING is one multi-row statement; map rows back by report id.
            inserted = await conn.execute(
                cases.insert().returning(cases.c.id, cases.c.first_report_id), new_rows
            )
            by_report = {r.first_report_id: int(r.id) for r in inserted}
            for local, row in zip(pending, new_rows, strict=True):
                ids[local] = by_report[row["first_report_id"]]
            await conn.execute(
                audits.insert(),
                [
                    self._filing_audit(ids[local], batch[int(local[4:])], row["stage"], now)
                    for local, row in zip(pending, new_rows, strict=True)
                ],
            )
        if merges:
            await conn.execute(
                cases.update()
                .where(cases.c.id == sa.bindparam("b_id"))
                .values(
                    event_count=cases.c.event_count + sa.bindparam("b_count"),
                    last_event_at=sa.case(
                        (
                            cases.c.last_event_at < sa.bindparam("b_last", type_=UTCDateTime),
                            sa.bindparam("b_last", type_=UTCDateTime),
                        ),
                        else_=cases.c.last_event_at,
                    ),
                    updated_at=now,
                ),
                [{"b_id": k, "b_count": c, "b_last": t} for k, (c, t) in merges.items()],
            )
        return [ids[r] if isinstance(r, str) else r for r in results]

    async def _batch_candidates(
        self, conn: AsyncConnection, batch: list[EventFacts], buckets: _Buckets
    ) -> list[OpenCase]:
        bands = buckets.query_bands()
        windows = [
            timedelta(hours=self.catalogue.get(f.code).merge_window_h)
            for f in batch
            if f.code in self.catalogue
        ]
        if not bands or not windows:
            return []
        widest = max(windows)
        t0 = min(f.detected_at for f in batch) - widest
        t1 = max(f.detected_at for f in batch) + widest
        if conn.dialect.name == "postgresql":
            return await _candidates_pg(conn, bands, t0, t1)
        # One term per band and up to LON_SLOTS longitude ranges: the (code, lat) index
        # scans each band once and the longitude test runs on the rows it finds.
        terms: list[tuple[str, float, float, tuple[tuple[float, float], ...]]] = []
        for code, lat0, lat1, ranges in bands:
            for k in range(0, len(ranges), LON_SLOTS):
                terms.append((code, lat0, lat1, ranges[k : k + LON_SLOTS]))
        dialect = conn.dialect
        to_db = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        assert to_db is not None
        fixed = [to_db(t0), to_db(t1), *_FINALS]
        found: list[OpenCase] = []
        for start in range(0, len(terms), MAX_TERMS):
            chunk = terms[start : start + MAX_TERMS]
            slots = _padded(len(chunk))
            chunk = chunk + [chunk[-1]] * (slots - len(chunk))  # repeats find nothing new
            params: list[Any] = list(fixed)
            for code, lat0, lat1, ranges in chunk:
                params += (code, lat0, lat1)
                for m in range(LON_SLOTS):
                    params += ranges[min(m, len(ranges) - 1)]
            # Straight to the driver: with thousands of parameters SQLAlchemy's per-call
            # cache-key and parameter handling cost more than SQLite's scan of the bands.
            sql = _candidate_sql(slots, LON_SLOTS, dialect.paramstyle)
            result = await conn.exec_driver_sql(sql, tuple(params))
            for row in result.all():
                case_id, code, lat, lon, stage, last = tuple(row)
                at = utc_from_driver(last)  # NOT NULL column
                found.append(OpenCase(int(case_id), code, lat, lon, stage, at))
        return found

    def _case_row(self, plan: FilingPlan, facts: EventFacts, now: datetime) -> dict[str, Any]:
        return {
            "source": plan.source,
            "code": plan.code,
            "major": plan.major,
            "category": plan.category_name,
            "title": plan.title[:200],
            "line": plan.line,
            "grid_cell_id": plan.grid_cell_id,
            "squad_id": plan.squad_id,
            "stage": plan.initial_stage.value,
            "lat": facts.lat,
            "lon": facts.lon,
            "reported_at": plan.reported_at,
            "deadline": plan.deadline,
            "limit_kind": plan.limit.kind,
            "limit_amount": plan.limit.amount,
            "verification_required": plan.verification_required,
            "event_count": 1,
            "last_event_at": facts.detected_at,
            "updated_at": now,
            "closed_at": None,
            "first_report_id": facts.event_id,
            "grid_version": self.grid.version,
        }

    @staticmethod
    def _filing_audit(case_id: int, facts: EventFacts, stage: str, now: datetime) -> dict[str, Any]:
        return {
            "case_id": case_id,
            "at": now,
            "from_stage": None,
            "to_stage": stage,
            "action": FILING_ACTION,
            "actor": facts.device_id or facts.source,
            "role": SYSTEM_ROLE,
            "reason": f"filed from {facts.source} report {facts.event_id}",
            "attachments": [],
        }


_FINALS = sorted(s.value for s in FINAL_STAGES)


#: Open cases of a code in any of the boxes passed as arrays, last event in [$6, $7].
#: PostgreSQL plans one statement over ``unnest`` once (the OR form with a thousand terms
#: cost more to plan than to run). The LATERAL subquery behind an ``OFFSET 0`` fence
#: keeps the plan a (code, lat) index scan per box: without it, the generic plan a
#: prepared statement falls back to after five runs sometimes joined the boxes against
#: every open case of the code, and the query took 8 s of a 13 s drain.
_CANDIDATES_PG = """
SELECT c.id, c.code, c.lat, c.lon, c.stage, c.last_event_at
FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::float8[])
     AS b(code, lat0, lat1, lon0, lon1)
CROSS JOIN LATERAL (
  SELECT id, code, lat, lon, stage, last_event_at FROM cases
  WHERE code = b.code AND lat BETWEEN b.lat0 AND b.lat1 AND lon BETWEEN b.lon0 AND b.lon1
    AND last_event_at BETWEEN $6 AND $7 AND stage <> ALL($8::text[])
  OFFSET 0
) AS c
"""


async def _candidates_pg(
    conn: AsyncConnection,
    bands: list[tuple[str, float, float, tuple[tuple[float, float], ...]]],
    t0: datetime,
    t1: datetime,
) -> list[OpenCase]:
    """The candidate query on PostgreSQL: the bands' boxes as five parallel arrays."""
    codes: list[str] = []
    lat0s: list[float] = []
    lat1s: list[float] = []
    lon0s: list[float] = []
    lon1s: list[float] = []
    for code, lat0, lat1, ranges in bands:
        for lon0, lon1 in ranges:
            codes.append(code)
            lat0s.append(lat0)
            lat1s.append(lat1)
            lon0s.append(lon0)
            lon1s.append(lon1)
    params = (codes, lat0s, lat1s, lon0s, lon1s, t0, t1, _FINALS)
    result = await conn.exec_driver_sql(_CANDIDATES_PG, params)
    found: dict[int, OpenCase] = {}  # boxes share edges: a case on one comes twice
    for row in result.all():
        case_id, code, lat, lon, stage, last = tuple(row)
        found[int(case_id)] = OpenCase(int(case_id), code, lat, lon, stage, utc_from_driver(last))
    return list(found.values())


def _padded(n: int) -> int:
    """``n`` rounded up to one of few sizes (under 16 or n/8 more), so queries are reused."""
    step = max(16, 1 << max(0, n.bit_length() - 4))
    return -(-n // step) * step


@functools.lru_cache(maxsize=64)
def _candidate_sql(slots: int, lon_slots: int, paramstyle: str) -> str:
    """Open cases of a code in any of ``slots`` bands whose last event is in [t0, t1].

    Positional parameters: t0, t1, the final stages, then per band its code, latitude
    range and ``lon_slots`` longitude ranges. Built once per size and driver style.
    """
    count = itertools.count(1)

    def p() -> str:
        n = next(count)
        if paramstyle == "qmark":
            return "?"
        if paramstyle == "numeric_dollar":
            return f"${n}"
        if paramstyle == "numeric":
            return f":{n}"
        if paramstyle == "format":
            return "%s"
        raise StorageError(f"no positional parameters for paramstyle {paramstyle!r}")

    time_range = f"last_event_at BETWEEN {p()} AND {p()}"
    not_final = ", ".join(p() for _ in _FINALS)
    terms = []
    for _ in range(slots):
        band = f"code = {p()} AND lat BETWEEN {p()} AND {p()}"
        lons = " OR ".join(f"lon BETWEEN {p()} AND {p()}" for _ in range(lon_slots))
        terms.append(f"({band} AND ({lons}))")
    return (
        "SELECT id, code, lat, lon, stage, last_event_at FROM cases"
        f" WHERE {time_range} AND stage NOT IN ({not_final}) AND ({' OR '.join(terms)})"
    )


class _Buckets:
    """Open cases bucketed by code and a coarse tile, so each report sees only its neighbours.

    Tiles are as wide as the widest merge radius of the batch's codes (wider in longitude
    by the latitude's cosine), so the 3x3 tiles around a report hold every case within
    its radius.
    """

    def __init__(self, catalogue: Catalogue, batch: list[EventFacts]) -> None:
        radii = [catalogue.get(f.code).merge_radius_m for f in batch if f.code in catalogue]
        self.catalogue = catalogue
        self.dlat = max(radii, default=30.0) / _METRES_PER_DEGREE
        widest = min(max(abs(f.lat) for f in batch) + 1.0, 89.0)
        self.dlon = self.dlat / math.cos(math.radians(widest))
        self.tiles: dict[tuple[str, int, int], dict[int | str, OpenCase]] = {}
        self.where: dict[int | str, tuple[str, int, int]] = {}
        self.batch = batch

    def _tile(self, code: str, lat: float, lon: float) -> tuple[str, int, int]:
        return (code, math.floor(lat / self.dlat), math.floor(lon / self.dlon))

    def add(self, case: OpenCase) -> None:
        """Add a case found in the database."""
        self.put(case)

    def put(self, case: OpenCase) -> None:
        """Add or replace a case."""
        if case.lat is None or case.lon is None:
            return
        key = self._tile(case.code, case.lat, case.lon)
        self.tiles.setdefault(key, {})[case.case_id] = case
        self.where[case.case_id] = key

    def touch(self, case_id: int | str, at: datetime) -> None:
        """Record that a report merged into ``case_id`` at ``at``."""
        key = self.where.get(case_id)
        if key is None:
            return
        case = self.tiles[key][case_id]
        if at > case.last_event_at:
            self.tiles[key][case_id] = OpenCase(
                case.case_id, case.code, case.lat, case.lon, case.stage, at
            )

    def near(self, facts: EventFacts) -> list[OpenCase]:
        """Cases of the report's code in the 3x3 tiles around it."""
        code, ilat, ilon = self._tile(facts.code, facts.lat, facts.lon)
        out: list[OpenCase] = []
        for da in (-1, 0, 1):
            for do in (-1, 0, 1):
                out.extend(self.tiles.get((code, ilat + da, ilon + do), {}).values())
        return out

    def query_bands(self) -> list[tuple[str, float, float, tuple[tuple[float, float], ...]]]:
        """Disjoint latitude bands per code, each with the longitude ranges to look in.

        A batch touching few tiles asks for each tile's 3x3 neighbourhood; a batch spread
        over a district asks for coarse blocks of ``QUERY_BLOCK`` tiles (plus a margin),
        which bounds the query while bounding what it returns. The areas are cut into
        rows of tiles, rows merged with their neighbours when they ask for the same
        longitudes, so the index on (code, lat) scans each row of cases once.
        """
        tiles = {self._tile(f.code, f.lat, f.lon) for f in self.batch if f.code in self.catalogue}
        size, margin = (1, 1) if len(tiles) <= MAX_FINE_BOXES else (QUERY_BLOCK, 1)
        blocks = {(code, ilat // size, ilon // size) for code, ilat, ilon in tiles}
        wanted: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for code, blat, blon in blocks:
            span = (blon * size - margin, (blon + 1) * size + margin)  # tile columns [lo, hi)
            for row in range(blat * size - margin, (blat + 1) * size + margin):
                wanted.setdefault((code, row), []).append(span)
        bands: list[tuple[str, int, int, tuple[tuple[int, int], ...]]] = []
        for (code, row), spans in sorted(wanted.items()):
            merged: list[tuple[int, int]] = []
            for lo, hi in sorted(spans):
                if merged and lo <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
                else:
                    merged.append((lo, hi))
            cols = tuple(merged)
            if bands and bands[-1][0] == code and bands[-1][2] == row and bands[-1][3] == cols:
                bands[-1] = (code, bands[-1][1], row + 1, cols)
            else:
                bands.append((code, row, row + 1, cols))
        return [
            (
                code,
                row0 * self.dlat,
                row1 * self.dlat,
                tuple((lo * self.dlon, hi * self.dlon) for lo, hi in cols),
            )
            for code, row0, row1, cols in bands
        ]
