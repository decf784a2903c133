"""NMEA parsing, route replay and the GPS tracker's batching."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent import protocol
from edge_agent.gps.nmea import NmeaError, checksum, parse_sentence
from edge_agent.gps.sources import GpsSourceError, nmea_fixes, route_fixes
from edge_agent.gps.tracker import GpsTracker
from edge_agent.link.outbox import Outbox, Priority


def _sentence(body: str) -> str:
    return f"${body}*{checksum(body)}"


GGA = _sentence("GPGGA,123519,3016.4472,N,12009.3126,E,1,08,0.9,545.4,M,46.9,M,,")
RMC = _sentence("GPRMC,123519,A,3016.4472,N,12009.3126,E,022.4,084.4,261126,003.1,W")


def test_gga_and_rmc_give_positions() -> None:
    gga = parse_sentence(GGA)
    assert gga is not None
    assert gga.lat == pytest.approx(30 + 16.4472 / 60)
    assert gga.lon == pytest.approx(120 + 9.3126 / 60)
    assert gga.hdop == 0.9
    rmc = parse_sentence(RMC)
    assert rmc is not None
    assert rmc.speed_kmh == pytest.approx(22.4 * 1.852)
    assert rmc.heading_deg == pytest.approx(84.4)
    assert rmc.timestamp(datetime(2000, 1, 1).date()) == datetime(
        2026, 11, 26, 12, 35, 19, tzinfo=UTC
    )


def test_southern_western_void_and_other_sentences() -> None:
    south = parse_sentence(_sentence("GNGGA,000000,3351.0000,S,15112.0000,W,1,05,1.2,10,M,0,M,,"))
    assert south is not None
    assert south.lat < 0
    assert south.lon < 0
    assert parse_sentence(_sentence("GPRMC,123519,V,,,,,,,261126,,")) is None
    assert parse_sentence(_sentence("GPGGA,123519,,,,,0,00,,,M,,M,,")) is None
    assert parse_sentence(_sentence("GPGSV,3,1,11,03,03,111,00")) is None


def test_corrupt_sentences_raise_with_reason() -> None:
    with pytest.raises(NmeaError, match="checksum"):
        parse_sentence(GGA[:-2] + "00")
    with pytest.raises(NmeaError, match="not an NMEA"):
        parse_sentence("hello")
    with pytest.raises(NmeaError, match="coordinate"):
        parse_sentence(_sentence("GPGGA,123519,30xx.4472,N,12009.3126,E,1,08,0.9,5,M,4,M,,"))


async def test_nmea_fixes_skip_garbage() -> None:
    async def lines():  # type: ignore[no-untyped-def]
        for line in ("garbage", GGA[:-2] + "00", "", GGA, RMC):
            yield line

    now = datetime(2026, 11, 26, tzinfo=UTC)
    fixes = [f async for f in nmea_fixes(lines(), lambda: now)]
    assert len(fixes) == 2


async def test_route_file_csv_and_errors(tmp_path: Path) -> None:
    route = tmp_path / "route.csv"
    route.write_text("# a short drive\n30.27,120.15\n30.28,120.16,25\n")
    now = datetime(2026, 11, 26, tzinfo=UTC)
    fixes = [f async for f in route_fixes(route, 0.001, lambda: now, loop=False)]
    assert [(f.lat, f.lon, f.speed_kmh) for f in fixes] == [
        (30.27, 120.15, None),
        (30.28, 120.16, 25),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("30.27,120.15\nnorth,east\n")
    with pytest.raises(GpsSourceError, match=r"bad\.csv:2"):
        [f async for f in route_fixes(bad, 0.001, lambda: now, loop=False)]


async def test_tracker_batches_into_track_messages_and_locates(tmp_path: Path) -> None:
    now = [datetime(2026, 11, 26, 8, 0, tzinfo=UTC)]
    box = await Outbox.open(tmp_path / "o.db")
    tracker = GpsTracker("truck-07", box, clock=lambda: now[0], batch=3, interval_s=60)
    assert tracker.location() is None
    for i in range(7):
        await tracker.add(protocol.GpsFix(ts=now[0], lat=30.0 + i / 1000, lon=120.0))
    assert tracker.batches_sent == 2
    loc = tracker.location()
    assert loc is not None
    assert loc.source == "gps"
    assert loc.lat == pytest.approx(30.006)
    rows = await box.next_batch(10)
    assert all(r.priority == Priority.TRACK for r in rows)
    track = protocol.decode(protocol.Track, json.loads(rows[0].payload))
    assert len(track.points) == 3
    now[0] += timedelta(seconds=61)
    assert tracker.location() is None, "a stale fix must not locate events"
    await tracker.add(protocol.GpsFix(ts=now[0], lat=30.1, lon=120.0))
    assert tracker.batches_sent == 3, "the interval flushes a partial batch"
    await box.close()


async def test_gga_near_midnight_keeps_the_right_day() -> None:
    async def lines():  # type: ignore[no-untyped-def]
        yield _sentence("GPGGA,235959,3016.4472,N,12009.3126,E,1,08,0.9,545.4,M,46.9,M,,")

    just_after = datetime(2026, 11, 27, 0, 0, 2, tzinfo=UTC)
    (fix,) = [f async for f in nmea_fixes(lines(), lambda: just_after)]
    assert fix.ts == datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC)


async def test_serial_lines_from_a_pipe(tmp_path: Path) -> None:
    import asyncio
    import os

    from edge_agent.gps.sources import serial_lines

    fifo = tmp_path / "tty"
    os.mkfifo(fifo)
    writer_fd: list[int] = []

    def feed() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        writer_fd.append(fd)
        os.write(fd, (GGA + "\r\n" + RMC + "\r\n").encode())

    lines = serial_lines(str(fifo), 9600)
    first = asyncio.ensure_future(lines.__anext__())
    await asyncio.sleep(0.05)
    await asyncio.to_thread(feed)
    got = [await asyncio.wait_for(first, 5), await asyncio.wait_for(lines.__anext__(), 5)]
    assert got == [GGA, RMC]
    await lines.aclose()
    os.close(writer_fd[0])


async def test_gpsd_reports_become_fixes() -> None:
    import asyncio

    from edge_agent.gps.sources import gpsd_fixes

    watched: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        watched.append(await reader.readline())
        for report in (
            {"class": "VERSION"},
            {"class": "TPV", "mode": 1},
            {
                "class": "TPV",
                "mode": 3,
                "time": "2026-11-26T08:00:00Z",
                "lat": 30.1,
                "lon": 120.2,
                "speed": 10.0,
                "track": 370.0,
            },
        ):
            writer.write(json.dumps(report).encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fixes = gpsd_fixes("127.0.0.1", port)
    fix = await asyncio.wait_for(fixes.__anext__(), 5)
    assert (fix.lat, fix.lon) == (30.1, 120.2)
    assert fix.speed_kmh == pytest.approx(36.0)
    assert fix.heading_deg == pytest.approx(10.0)
    with pytest.raises(GpsSourceError, match="closed the connection"):
        await asyncio.wait_for(fixes.__anext__(), 5)
    assert watched[0].startswith(b"?WATCH=")
    server.close()
    await server.wait_closed()
