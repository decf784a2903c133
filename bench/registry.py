"""Service-object registry benchmark: importing the bureau's 25,935 objects, and name search.

Figures, all measured in this one process run:

* ``import_s``: a CSV of 25,935 generated objects (20 industries, 131 subcategories, the
  five kinds, ~1% bad rows of varied kinds) imported through
  :meth:`central_hub.services.service_objects.ServiceObjects.import_file` into a fresh,
  migrated SQLite database: reading, checking every row, placing it on the grid, storing
  objects, contacts and audit rows (goal <= 20 s);
* ``bad_rows_generated`` / ``bad_rows_reported``: the rows made bad on purpose, and the
  rows the import reported (the two must be equal, and the same rows: ``bad_rows_match``);
* ``reimport_s``: the same file again (every object found unchanged, nothing duplicated:
  ``objects_after_reimport``);
* ``xlsx_import_s``: the same rows as XLSX into another fresh database;
* ``search_ms_p50`` / ``search_ms`` (p95): 200 name searches for a random 2-3 character
  fragment of a stored name, 50 results each, through the service (goal p95 <= 200 ms);
* ``baseline_s``: the raw baseline, one ``sqlite3`` ``executemany`` of the same clean rows
  into an equivalent table (same unique index) with no checks; ``ratio`` =
  import_s / baseline_s.

With ``--pg`` the searches are timed on PostgreSQL as well (``pg_search_ms``, after the
same CSV import there: ``pg_import_s``).

Usage: ``.venv/bin/python bench/registry.py [--objects 25935] [--bad-share 0.01]
[--pg [DSN]]``; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from central_hub.db.engine import create_engine
from central_hub.db.migrate import migrate
from central_hub.domain.grid import Grid
from central_hub.domain.industries import Taxonomy
from central_hub.domain.service_objects import OBJECT_COLUMNS
from central_hub.services.service_objects import ObjectQuery, ServiceObjects
from edge_agent.protocol import utc_now

_KINDS = (
    ("street_shop", 0.62),
    ("company", 0.24),
    ("community", 0.06),
    ("village", 0.05),
    ("facility", 0.03),
)
_WORDS = "金银鑫华盛兴隆福顺祥瑞和康泰安宏达丰源永昌荣旺鸿嘉美佳新东南西北中阳光明"
_STREETS = ("县前街", "横街路", "劳动路", "北院大道", "东门路", "西街", "南城路", "青年路")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_BAD_KINDS = (
    "missing_name",
    "unknown_subcategory",
    "other_industry",
    "bad_phone",
    "outside",
    "no_legal_rep",
    "bad_kind",
    "bad_lat",
)


def _points(grid: Grid, n: int, rng: random.Random) -> list[tuple[float, float]]:
    """``n`` random points inside the district's street cells."""
    min_lat, min_lon, max_lat, max_lon = grid.bounds()
    found: list[tuple[float, float]] = []
    while len(found) < n:
        tries = [(rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)) for _ in range(n)]
        found += [p for p, c in zip(tries, grid.locate_many(tries), strict=True) if c]
    return found[:n]


def generate(
    n: int, bad_share: float, taxonomy: Taxonomy, grid: Grid, seed: int = 14
) -> tuple[list[dict[str, str]], set[int]]:
    """``n`` rows by column and the row numbers (header = row 1) made bad on purpose."""
    rng = random.Random(seed)
    subs = [s for i in taxonomy for s in i.subcategories]
    points = _points(grid, n, rng)
    kinds = rng.choices([k for k, _ in _KINDS], weights=[w for _, w in _KINDS], k=n)
    rows: list[dict[str, str]] = []
    for i in range(n):
        sub = subs[i % len(subs)]  # every subcategory, evenly
        kind = kinds[i]
        word = "".join(rng.choice(_WORDS) for _ in range(2))
        name = f"{word}{sub.name_zh}{i:05d}"
        lat, lon = points[i]
        business = kind in ("street_shop", "company")
        person = rng.choice(_SURNAMES) + rng.choice(_WORDS)
        rows.append(
            {
                "kind": kind,
                "name": name,
                "address": f"{rng.choice(_STREETS)}{rng.randint(1, 999)}号",
                "industry": sub.industry if business or i % 3 == 0 else "",
                "subcategory": sub.code if business or i % 3 == 0 else "",
                "legal_representative": person if business else "",
                "lat": f"{lat:.6f}",
                "lon": f"{lon:.6f}",
                "contact_name": person,
                "contact_role": "负责人",
                "contact_phone": f"1{rng.choice('3456789')}{rng.randint(0, 10**9 - 1):09d}",
                "contact_email": "",
                "notes": "",
            }
        )
    bad_count = round(n * bad_share)
    bad_at = sorted(rng.sample(range(n), bad_count))
    industries = [i.code for i in taxonomy]
    for k, index in enumerate(bad_at):
        row = rows[index]
        how = _BAD_KINDS[k % len(_BAD_KINDS)]
        if how == "missing_name":
            row["name"] = ""
        elif how == "unknown_subcategory":
            row["subcategory"] = "9999"
        elif how == "other_industry":
            row["kind"] = "street_shop"
            row["legal_representative"] = row["legal_representative"] or "王五"
            given = taxonomy.subcategory(row["subcategory"]) if row["subcategory"] else None
            own = given.industry if given else industries[0]
            row["industry"] = next(c for c in industries if c != own)
            row["subcategory"] = row["subcategory"] or subs[0].code
        elif how == "bad_phone":
            row["contact_phone"] = "12345"
        elif how == "outside":
            row["lat"], row["lon"] = "31.230400", "121.473700"  # Shanghai, not the district
        elif how == "no_legal_rep":
            row["kind"] = "company"
            row["industry"] = row["industry"] or subs[0].industry
            row["subcategory"] = row["subcategory"] or subs[0].code
            row["legal_representative"] = ""
        elif how == "bad_kind":
            row["kind"] = "shopfront"
        else:
            row["lat"] = "north"
    return rows, {index + 2 for index in bad_at}


def to_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(OBJECT_COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def to_xlsx(rows: list[dict[str, str]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(list(OBJECT_COLUMNS))
    for row in rows:
        sheet.append([row[c] for c in OBJECT_COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def baseline(path: Path, rows: list[dict[str, str]], bad: set[int]) -> float:
    """Seconds for one sqlite3 executemany of the clean rows into an equivalent table."""
    clean = [r for n, r in enumerate(rows, start=2) if n not in bad]
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    columns = ", ".join(f"{c} TEXT" for c in OBJECT_COLUMNS)
    db.execute(f"CREATE TABLE objects (id INTEGER PRIMARY KEY, {columns}, UNIQUE (name, address))")
    marks = ", ".join("?" for _ in OBJECT_COLUMNS)
    started = time.perf_counter()
    with db:
        db.executemany(
            f"INSERT INTO objects ({', '.join(OBJECT_COLUMNS)}) VALUES ({marks})",
            [tuple(r[c] for c in OBJECT_COLUMNS) for r in clean],
        )
    took = time.perf_counter() - started
    db.close()
    return took


async def run_import(
    url: str, data: bytes, name: str, taxonomy: Taxonomy, grid: Grid, searches: list[str]
) -> dict[str, Any]:
    engine = create_engine(url)
    await migrate(engine)
    registry = ServiceObjects(engine, taxonomy, grid, utc_now)
    started = time.perf_counter()
    report = await registry.import_file(data, name, "bench")
    took = time.perf_counter() - started
    out: dict[str, Any] = {"import_s": took, "report": report, "registry": registry}
    if searches:
        times = []
        for fragment in searches:
            t0 = time.perf_counter()
            await registry.search(ObjectQuery(text=fragment, limit=50))
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out["p50"] = statistics.median(times)
        out["p95"] = times[int(len(times) * 0.95) - 1]
    out["engine"] = engine
    return out


async def pg_url(admin_dsn: str) -> tuple[str, str]:
    import asyncpg

    name = f"xh_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin_dsn.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}", name


async def pg_drop(admin_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    taxonomy, grid = Taxonomy.load(), Grid.load_sample()
    rows, bad = generate(args.objects, args.bad_share, taxonomy, grid)
    data = to_csv(rows)
    rng = random.Random(7)
    searches = []
    for _ in range(200):
        name = rng.choice([r["name"] for r in rows[:2000] if r["name"]])
        size = rng.choice((2, 3))
        start = rng.randrange(0, max(1, len(name) - size))
        searches.append(name[start : start + size])
    first = await run_import(
        f"sqlite+aiosqlite:///{work / 'hub.db'}", data, "objects.csv", taxonomy, grid, searches
    )
    report = first["report"]
    reported = {p.row for p in report.problems}
    started = time.perf_counter()
    again = await first["registry"].import_file(data, "objects.csv", "bench")
    reimport_s = time.perf_counter() - started
    objects_after = await first["registry"].count(ObjectQuery())
    await first["engine"].dispose()
    xlsx = await asyncio.to_thread(to_xlsx, rows)
    second = await run_import(
        f"sqlite+aiosqlite:///{work / 'xlsx.db'}", xlsx, "objects.xlsx", taxonomy, grid, []
    )
    await second["engine"].dispose()
    base = baseline(work / "raw.db", rows, bad)
    figures: dict[str, Any] = {
        "bench": "registry",
        "objects": args.objects,
        "import_s": round(first["import_s"], 2),
        "created": report.created,
        "bad_rows_generated": len(bad),
        "bad_rows_reported": report.bad_rows,
        "bad_rows_match": reported == bad,
        "reimport_s": round(reimport_s, 2),
        "reimport_unchanged": again.unchanged,
        "objects_after_reimport": objects_after,
        "xlsx_import_s": round(second["import_s"], 2),
        "xlsx_bad_rows_reported": second["report"].bad_rows,
        "search_ms_p50": round(first["p50"], 2),
        "search_ms": round(first["p95"], 2),
        "baseline_s": round(base, 3),
        "ratio": round(first["import_s"] / base, 1),
    }
    if args.pg:
        url, name = await pg_url(args.pg)
        try:
            pg = await run_import(url, data, "objects.csv", taxonomy, grid, searches)
            await pg["engine"].dispose()
        finally:
            await pg_drop(args.pg, name)
        figures["pg_import_s"] = round(pg["import_s"], 2)
        figures["pg_search_ms_p50"] = round(pg["p50"], 2)
        figures["pg_search_ms"] = round(pg["p95"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--objects", type=int, default=25_935)
    parser.add_argument("--bad-share", type=float, default=0.01)
    parser.add_argument(
        "--pg",
        nargs="?",
        const=os.environ.get("XH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        default=None,
        help="also on PostgreSQL (a libpq URL of a role that may create databases)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        figures = asyncio.run(bench(args, Path(tmp)))
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
