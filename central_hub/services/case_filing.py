"""Files stored events as cases, inside the ingest transaction, using the domain's pure plan.

:meth:`CaseFiler.file_many` is the one way a report becomes a case: ingest files a batch
with it, and a single event (isolating a failed batch, or retrying a lost race) as a batch
of one. Candidate cases are the open cases of the report's code in the squares of
:data:`PLACE_SQUARE_DEG` that its merge radius reaches, with no cap (the plan picks the
nearest, which a cap could drop); :func:`central_hub.domain.filing.plan_filing` decides.
On SQLite the filer keeps the squares it has read, and what it filed into them, in an
:class:`~central_hub.domain.open_cases.OpenCaseIndex` for as long as a token the
database's triggers change says no one else changed a case (:meth:`CaseFiler.file_many`);
it reads only squares no batch has reached since. On PostgreSQL it reads every batch's
squares, within the batch's merge windows.

Each case stores the key of its square (``cases.place_key``, :func:`place_key`), indexed
with its code, so the candidate read looks up a few squares per report: its cost follows
the batch, not the number of open cases (reading latitude bands, as before, scanned every
open case of the code across the district's width).

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
import json
import logging
import math
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from central_hub.db.bulk import bind_processors, insert_rows
from central_hub.db.schema import UTCDateTime, audits, cases, utc_from_driver
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.errors import DomainError
from central_hub.domain.filing import EventFacts, FilingPlan, OpenCase, plan_filing
from central_hub.domain.grid import Grid
from central_hub.domain.open_cases import OpenCaseIndex, Square
from central_hub.domain.workflow import FINAL_STAGES
from central_hub.errors import StorageError

log = logging.getLogger(__name__)

__all__ = [
    "FILING_ACTION",
    "FILING_TOKEN_TABLE",
    "FILING_TOKEN_TRIGGERS",
    "LOCK_TILE_M",
    "MAX_INDEXED_CASES",
    "PLACE_SQUARE_DEG",
    "SYSTEM_ROLE",
    "CaseFiler",
    "lock_keys",
    "place_key",
    "place_keys_near",
]

#: The audit action recorded when a case is opened by filing.
FILING_ACTION = "file"
#: The audit role of the hub itself (filing is not a person's action).
SYSTEM_ROLE = "system"
_METRES_PER_DEGREE = 111_320.0
#: Side of the squares cases are keyed by (``cases.place_key``), in degrees of latitude
#: and of longitude: about 44 m by 39 m in the sample district. Changing it needs a
#: migration that recomputes every case's key.
PLACE_SQUARE_DEG = 0.0004
#: Side (north-south, metres) of the squares filing locks; a report's radius reaches a few.
LOCK_TILE_M = 250.0
#: Metres per degree of latitude, rounded down, so a lock square errs on the large side.
_LOCK_M_PER_DEG = 110_000.0
#: ``place_key`` packs a square's row and column: columns span 360 / PLACE_SQUARE_DEG.
_PLACE_ROW = 1 << 21
_PLACE_COL0 = 1 << 20
#: The table (SQLite only, kept by triggers; migration 0022) whose one token changes with
#: every change to a case that filing reads: the index of open cases holds while it stays.
FILING_TOKEN_TABLE = "filing_token"
#: The triggers that keep the token (a migration that rebuilds ``cases`` drops them).
FILING_TOKEN_TRIGGERS = (
    "cases_filing_token_insert",
    "cases_filing_token_delete",
    "cases_filing_token_update",
)
#: The token, or NULL while any of the triggers is missing (then no index is kept).
_TOKEN_READ = (
    f"SELECT token FROM {FILING_TOKEN_TABLE} WHERE id = 1 AND (SELECT count(*) FROM"
    " sqlite_master WHERE type = 'trigger' AND tbl_name = 'cases' AND name IN"
    f" ({', '.join(repr(t) for t in FILING_TOKEN_TRIGGERS)})) = {len(FILING_TOKEN_TRIGGERS)}"
)
_TOKEN_NEXT = f"UPDATE {FILING_TOKEN_TABLE} SET token = random() WHERE id = 1 RETURNING token"
#: Cases the index of open cases holds at most (about 50 MB of memory at the cap);
#: past it, it starts again empty and refills with the squares batches reach.
MAX_INDEXED_CASES = 100_000
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
        radius = catalogue.get(facts.code).merge_radius_m
        rows, cols = _squares_around(facts.lat, facts.lon, radius, tile)
        for ilat in rows:
            for ilon in cols:
                name = f"xh-file:{facts.code}:{ilat}:{ilon}".encode()
                digest = hashlib.blake2b(name, digest_size=8).digest()
                keys.add(int.from_bytes(digest, "big", signed=True))
    return sorted(keys)


def place_key(lat: float, lon: float) -> int:
    """The key of the square of :data:`PLACE_SQUARE_DEG` holding a place (pure).

    Row and column numbers in one integer (columns offset to stay positive), unique for
    every place on Earth and well inside a 64-bit integer.
    """
    row = math.floor(lat / PLACE_SQUARE_DEG)
    col = math.floor(lon / PLACE_SQUARE_DEG)
    return row * _PLACE_ROW + col + _PLACE_COL0


def place_keys_near(lat: float, lon: float, radius_m: float) -> list[int]:
    """The keys of every square that the box around a radius touches (pure)."""
    rows, cols = _squares_around(lat, lon, radius_m, PLACE_SQUARE_DEG)
    return [row * _PLACE_ROW + col + _PLACE_COL0 for row in rows for col in cols]


def _squares_around(lat: float, lon: float, radius_m: float, side: float) -> tuple[range, range]:
    """Rows and columns of the squares of ``side`` degrees the box around a radius touches.

    Degrees per metre are overestimated (110 km a degree of latitude, longitude wider by
    the cosine at the box's far edge), so the box holds the whole circle.
    """
    dlat = radius_m / _LOCK_M_PER_DEG
    dlon = dlat / max(math.cos(math.radians(min(abs(lat) + dlat, 89.0))), 1e-6)
    rows = range(math.floor((lat - dlat) / side), math.floor((lat + dlat) / side) + 1)
    cols = range(math.floor((lon - dlon) / side), math.floor((lon + dlon) / side) + 1)
    return rows, cols


class CaseFiler:
    """The :class:`central_hub.workers.ingest.EventFiler` over the catalogue, grid and calendar."""

    def __init__(self, catalogue: Catalogue, grid: Grid, calendar: WorkCalendar) -> None:
        self.catalogue = catalogue
        self.grid = grid
        self.calendar = calendar
        #: Open cases read or filed by earlier batches (see :meth:`file_many`).
        self._index = OpenCaseIndex()
        self._index_in_use = False

    async def file_many(
        self, conn: AsyncConnection, batch: list[EventFacts], now: datetime
    ) -> list[int | DomainError]:
        """File a batch of reports in a few statements; per report a case id or the refusal.

        Candidates come from the filer's :class:`OpenCaseIndex` of open cases; squares it
        has not loaded are read with one query. Reports earlier in the batch are
        candidates for later ones, so two reports of one new problem in the same batch
        open one case. New cases are inserted with one multi-row INSERT ... RETURNING,
        merges and audits likewise.

        The index outlives the batch only on SQLite, where the database's filing token
        (:data:`FILING_TOKEN_TABLE`) says whether it still holds: triggers give the token a
        new random value whenever any connection inserts, deletes or changes a case's
        code, place, stage, last report or plate, and each batch gives it one more at its
        end, which the index keeps. A batch that finds another token (someone changed a
        case, or the transaction that filed the last batch rolled back) starts the index
        again. On PostgreSQL, where several workers file at once, the index lives for one
        batch.
        """
        if not batch:
            return []
        index = self._index
        if self._index_in_use:  # never two batches at once on one index: use a fresh one
            index = OpenCaseIndex()
        self._index_in_use = index is self._index
        try:
            return await self._file_many(conn, batch, now, index)
        except BaseException:
            index.clear()
            raise
        finally:
            if index is self._index:
                self._index_in_use = False

    async def _file_many(
        self, conn: AsyncConnection, batch: list[EventFacts], now: datetime, index: OpenCaseIndex
    ) -> list[int | DomainError]:
        if conn.dialect.name == "postgresql":
            await conn.execute(_LOCK_SQL, {"keys": lock_keys(batch, self.catalogue)})
        sqlite = conn.dialect.name == "sqlite"
        token = (await conn.exec_driver_sql(_TOKEN_READ)).scalar() if sqlite else None
        if token is None or token != index.token or len(index) > MAX_INDEXED_CASES:
            index.clear()
        reach: list[list[Square]] = []
        for facts in batch:
            if facts.code in self.catalogue:
                radius = self.catalogue.get(facts.code).merge_radius_m
                keys = place_keys_near(facts.lat, facts.lon, radius)
                reach.append([(facts.code, k) for k in keys])
            else:
                reach.append([])
        wanted = index.missing(square for squares in reach for square in squares)
        if wanted:
            index.fill(wanted, await self._read_squares(conn, wanted, batch))
        results: list[int | str | DomainError] = []
        new_rows: list[dict[str, Any]] = []
        pending: dict[str, int] = {}  # local id -> index in new_rows
        # Per case merged into: reports added, the latest report, the first plate read.
        merges: dict[int, tuple[int, datetime, str | None]] = {}
        cells = self.grid.locate_many([(f.lat, f.lon) for f in batch])
        for n, (facts, cell) in enumerate(zip(batch, cells, strict=True)):
            try:
                plan = plan_filing(
                    facts,
                    index.near(reach[n]),
                    self.catalogue,
                    self.grid,
                    self.calendar,
                    now,
                    cell=cell,
                )
            except DomainError as exc:
                results.append(exc)
                continue
            if plan.merge_into is None:
                local = f"new-{n}"
                pending[local] = len(new_rows)
                row = self._case_row(plan, facts, now)
                new_rows.append(row)
                index.put(
                    (facts.code, row["place_key"]),
                    OpenCase(
                        local,
                        facts.code,
                        facts.lat,
                        facts.lon,
                        plan.initial_stage,
                        facts.detected_at,
                        row["plate"],
                    ),
                )
                results.append(local)
                continue
            target = plan.merge_into
            plate = facts.plate[:16] if facts.plate else None
            index.touch(target, facts.detected_at, plate)
            if isinstance(target, str):
                row = new_rows[pending[target]]
                row["event_count"] += 1
                row["last_event_at"] = max(row["last_event_at"], facts.detected_at)
                row["plate"] = row["plate"] or plate
            else:
                count, last, first = merges.get(int(target), (0, facts.detected_at, None))
                merges[int(target)] = (count + 1, max(last, facts.detected_at), first or plate)
            results.append(target)
        ids: dict[str, int] = {}
        if new_rows:
            # Unsorted RETURNING is one multi-row statement; map rows back by report id.
            inserted = await insert_rows(conn, cases, new_rows, returning=("id", "first_report_id"))
            by_report = {report: int(case_id) for case_id, report in inserted}
            for local, row in zip(pending, new_rows, strict=True):
                ids[local] = by_report[row["first_report_id"]]
                index.rename(local, ids[local])
            await insert_rows(
                conn,
                audits,
                [
                    self._filing_audit(ids[local], batch[int(local[4:])], row["stage"], now)
                    for local, row in zip(pending, new_rows, strict=True)
                ],
            )
        if merges:
            await _merge(conn, merges, now)
        if token is not None:
            # This batch's own token: if its transaction rolls back, the database's goes
            # back to an earlier one and the next batch starts the index again.
            index.token = (await conn.exec_driver_sql(_TOKEN_NEXT)).scalar()
        return [ids[r] if isinstance(r, str) else r for r in results]

    def _window(self, batch: list[EventFacts]) -> tuple[datetime, datetime]:
        """The times within which a case's last report lets a report of ``batch`` merge."""
        widest = max(
            (
                timedelta(hours=self.catalogue.get(f.code).merge_window_h)
                for f in batch
                if f.code in self.catalogue
            ),
            default=timedelta(0),
        )
        return (
            min(f.detected_at for f in batch) - widest,
            max(f.detected_at for f in batch) + widest,
        )

    async def _read_squares(
        self,
        conn: AsyncConnection,
        squares: list[Square],
        batch: list[EventFacts],
    ) -> list[tuple[Square, OpenCase]]:
        """Open cases of ``squares`` (one query), each with its square.

        On SQLite every open case of the squares, for the index to keep. On PostgreSQL,
        whose index lives for one batch, only those whose last report falls within the
        merge windows of ``batch``.
        """
        pairs = sorted(squares)
        if conn.dialect.name == "postgresql":
            codes, keys = [c for c, _ in pairs], [k for _, k in pairs]
            window = self._window(batch)
            result = await conn.exec_driver_sql(_CANDIDATES_PG, (codes, keys, *window, _FINALS))
        else:
            # Straight to the driver, the squares as one JSON parameter: SQLAlchemy's
            # per-parameter handling of a thousand values costs more than the lookups.
            sql = _candidates_sqlite(conn.dialect.paramstyle)
            result = await conn.exec_driver_sql(sql, (json.dumps(pairs), *_FINALS))
        found: list[tuple[Square, OpenCase]] = []
        for row in result.all():
            case_id, code, lat, lon, stage, last, plate, key = tuple(row)
            at = utc_from_driver(last)  # NOT NULL column
            found.append(((code, key), OpenCase(int(case_id), code, lat, lon, stage, at, plate)))
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
            "place_key": place_key(facts.lat, facts.lon),
            "plate": facts.plate[:16] if facts.plate else None,
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


async def _merge(
    conn: AsyncConnection, merges: dict[int, tuple[int, datetime, str | None]], now: datetime
) -> None:
    """Add merged reports to their cases, one executemany for the batch.

    Per case: the reports added, the latest report (kept if the case's own is later),
    and the first plate read, which a case opened without a plate takes (one car).
    """
    if conn.dialect.name != "sqlite":
        last = sa.bindparam("b_last", type_=UTCDateTime)
        await conn.execute(
            cases.update()
            .where(cases.c.id == sa.bindparam("b_id"))
            .values(
                event_count=cases.c.event_count + sa.bindparam("b_count"),
                last_event_at=sa.case(
                    (cases.c.last_event_at < last, last), else_=cases.c.last_event_at
                ),
                updated_at=now,
                plate=sa.func.coalesce(cases.c.plate, sa.bindparam("b_plate")),
            ),
            [
                {"b_id": k, "b_count": c, "b_last": t, "b_plate": p}
                for k, (c, t, p) in merges.items()
            ],
        )
        return
    # Straight to the driver: SQLAlchemy's executemany builds two dictionaries a row,
    # which cost more than SQLite's own update (1.2 s of 15 filing 40,000 events). The
    # times bind as SQLAlchemy writes them: fixed-width UTC text, so max() picks the later.
    (stamp,) = bind_processors(conn.dialect, cases, ("last_event_at",))
    assert stamp is not None  # UTCDateTime always converts
    updated = stamp(now)
    await conn.exec_driver_sql(
        _merge_sqlite(conn.dialect.paramstyle),
        [(c, stamp(t), updated, p, k) for k, (c, t, p) in merges.items()],
    )


@functools.lru_cache(maxsize=8)
def _merge_sqlite(paramstyle: str) -> str:
    """The merge on SQLite; parameters: reports, last report, now, plate, case id."""
    count, last, now, plate, case_id = _placeholders(paramstyle, 5)
    return (
        f"UPDATE cases SET event_count = event_count + {count},"
        f" last_event_at = max(last_event_at, {last}), updated_at = {now},"
        f" plate = coalesce(plate, {plate}) WHERE id = {case_id}"
    )


def _placeholders(paramstyle: str, n: int) -> list[str]:
    """``n`` positional parameter markers in the driver's ``paramstyle``."""
    if paramstyle == "qmark":
        return ["?"] * n
    if paramstyle == "numeric":
        return [f":{k}" for k in range(1, n + 1)]
    raise StorageError(f"no positional parameters for paramstyle {paramstyle!r}")


#: Open cases in the (code, place_key) squares passed as two arrays, last event in
#: [$3, $4]. The LATERAL subquery behind an ``OFFSET 0`` fence keeps the plan an index
#: lookup per square: without it, the generic plan a prepared statement falls back to
#: after five runs may join the squares against every open case of the code.
_CANDIDATES_PG = """
SELECT c.id, c.code, c.lat, c.lon, c.stage, c.last_event_at, c.plate, c.place_key
FROM unnest($1::text[], $2::bigint[]) AS k(code, place_key)
CROSS JOIN LATERAL (
  SELECT id, code, lat, lon, stage, last_event_at, plate, place_key FROM cases
  WHERE code = k.code AND place_key = k.place_key
    AND last_event_at BETWEEN $3 AND $4 AND stage <> ALL($5::text[])
  OFFSET 0
) AS c
"""


@functools.lru_cache(maxsize=8)
def _candidates_sqlite(paramstyle: str) -> str:
    """The candidate query on SQLite: the squares as a JSON array of [code, key] pairs.

    ``CROSS JOIN`` makes SQLite walk the squares and look each up in the
    ``(code, place_key)`` index. Parameters: the JSON, then the final stages.
    """
    squares, *finals = _placeholders(paramstyle, 1 + len(_FINALS))
    return (
        "SELECT c.id, c.code, c.lat, c.lon, c.stage, c.last_event_at, c.plate, c.place_key"
        f" FROM json_each({squares}) AS k CROSS JOIN cases AS c"
        " ON c.code = json_extract(k.value, '$[0]') AND c.place_key = json_extract(k.value, '$[1]')"
        f" WHERE c.stage NOT IN ({', '.join(finals)})"
    )
