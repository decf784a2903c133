"""Where GPS fixes come from: an NMEA serial port, gpsd, or a route file (simulation).

Each source is an async iterator of :class:`edge_agent.protocol.GpsFix`. Blocking reads
(the serial port, the route file) run in threads; gpsd is read over asyncio streams.
Corrupt sentences are logged and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from edge_agent.config import GpsSection
from edge_agent.gps.nmea import NmeaError, NmeaFix, parse_sentence
from edge_agent.protocol import GpsFix, utc_now

log = logging.getLogger(__name__)

__all__ = [
    "GpsSourceError",
    "gpsd_fixes",
    "nmea_fixes",
    "open_fixes",
    "route_fixes",
    "serial_lines",
]


class GpsSourceError(Exception):
    """A GPS source that cannot be opened or read."""


def _to_fix(parsed: NmeaFix, now: datetime) -> GpsFix | None:
    ts = parsed.timestamp(now.astimezone(UTC).date()) if parsed.utc_time is not None else now
    if parsed.utc_date is None:
        # GGA carries no date: a fix from just before midnight UTC read just after it
        # belongs to yesterday (and the other way round).
        if ts - now > timedelta(hours=12):
            ts -= timedelta(days=1)
        elif now - ts > timedelta(hours=12):
            ts += timedelta(days=1)
    try:
        return GpsFix(
            ts=ts,
            lat=parsed.lat,
            lon=parsed.lon,
            speed_kmh=parsed.speed_kmh,
            heading_deg=parsed.heading_deg,
            hdop=parsed.hdop,
        )
    except ValidationError as exc:
        log.warning("gps: fix out of range, skipped: %s", exc.errors()[0]["msg"])
        return None


async def nmea_fixes(
    lines: AsyncIterator[str], clock: Callable[[], datetime], *, use_clock: bool = False
) -> AsyncIterator[GpsFix]:
    """Fixes from NMEA ``lines``; with ``use_clock`` each fix is stamped with ``clock()``."""
    async for line in lines:
        if not line.strip():
            continue
        try:
            parsed = parse_sentence(line)
        except NmeaError as exc:
            log.debug("gps: skipped sentence: %s", exc)
            continue
        if parsed is None:
            continue
        now = clock()
        if use_clock:
            parsed = NmeaFix(
                parsed.lat,
                parsed.lon,
                None,
                speed_kmh=parsed.speed_kmh,
                heading_deg=parsed.heading_deg,
                hdop=parsed.hdop,
            )
        fix = _to_fix(parsed, now)
        if fix is not None:
            yield fix


#: How long one blocking read of the serial port waits, so shutdown never hangs on it.
SERIAL_POLL_S = 0.5


def _open_serial(port: str, baud: int) -> int:
    import termios

    fd = os.open(port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
        speed = getattr(termios, f"B{baud}", None)
        if speed is None:
            raise GpsSourceError(f"unsupported baud rate {baud}")
        attrs[4] = attrs[5] = speed
        attrs[3] &= ~(termios.ICANON | termios.ECHO)  # raw-ish: no line editing, no echo
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        log.debug("gps: %s is not a terminal; reading it as a plain file", port)
    return fd


def _read_some(fd: int) -> bytes:
    """Up to 512 bytes, or b"" when nothing came within :data:`SERIAL_POLL_S`."""
    ready, _, _ = select.select([fd], [], [], SERIAL_POLL_S)
    if not ready:
        return b""
    try:
        data = os.read(fd, 512)
    except BlockingIOError:
        return b""
    if not data:
        time.sleep(SERIAL_POLL_S)  # end of file (no writer): wait rather than spin
    return data


async def serial_lines(port: str, baud: int) -> AsyncIterator[str]:
    """Lines read from a serial device (``/dev/ttyUSB0``) at ``baud``."""
    try:
        fd = await asyncio.to_thread(_open_serial, port, baud)
    except OSError as exc:
        raise GpsSourceError(f"cannot open GPS serial port {port}: {exc}") from exc
    buffer = b""
    try:
        while True:
            chunk = await asyncio.to_thread(_read_some, fd)
            if not chunk:
                continue
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                yield raw.decode("ascii", errors="replace").strip()
    finally:
        os.close(fd)


async def gpsd_fixes(host: str, port: int) -> AsyncIterator[GpsFix]:
    """Fixes from gpsd's JSON protocol (``TPV`` reports with mode 2 or 3)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise GpsSourceError(f"cannot reach gpsd at {host}:{port}: {exc}") from exc
    try:
        writer.write(b'?WATCH={"enable":true,"json":true}\n')
        await writer.drain()
        while line := await reader.readline():
            try:
                report = json.loads(line)
            except json.JSONDecodeError:
                continue
            if report.get("class") != "TPV" or report.get("mode", 0) < 2:
                continue
            try:
                yield GpsFix(
                    ts=report.get("time") or utc_now(),
                    lat=report["lat"],
                    lon=report["lon"],
                    speed_kmh=report["speed"] * 3.6 if "speed" in report else None,
                    heading_deg=(report["track"] % 360) if "track" in report else None,
                )
            except (KeyError, ValidationError, TypeError) as exc:
                log.debug("gps: skipped gpsd report: %s", exc)
        raise GpsSourceError(f"gpsd at {host}:{port} closed the connection")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def route_fixes(
    path: Path, interval_s: float, clock: Callable[[], datetime], *, loop: bool = True
) -> AsyncIterator[GpsFix]:
    """Replay a route file, one point every ``interval_s``, stamped with ``clock()``.

    The file holds NMEA sentences, or ``lat,lon[,speed_kmh]`` lines (``#`` comments).
    """
    try:
        lines = (await asyncio.to_thread(path.read_text, "utf-8")).splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GpsSourceError(f"cannot read GPS route file {path}: {exc}") from exc
    points: list[tuple[float, float, float | None]] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            if text.startswith("$"):
                parsed = parse_sentence(text)
                if parsed is not None:
                    points.append((parsed.lat, parsed.lon, parsed.speed_kmh))
                continue
            parts = [p.strip() for p in text.split(",")]
            points.append(
                (float(parts[0]), float(parts[1]), float(parts[2]) if len(parts) > 2 else None)
            )
        except (NmeaError, ValueError, IndexError) as exc:
            raise GpsSourceError(f"{path}:{number}: not a route point ({exc})") from exc
    if not points:
        raise GpsSourceError(f"{path}: the route has no points")
    while True:
        for lat, lon, speed in points:
            try:
                yield GpsFix(ts=clock(), lat=lat, lon=lon, speed_kmh=speed)
            except ValidationError as exc:
                raise GpsSourceError(f"{path}: point {lat},{lon} out of range") from exc
            await asyncio.sleep(interval_s)
        if not loop:
            return


def open_fixes(section: GpsSection, clock: Callable[[], datetime]) -> AsyncIterator[GpsFix]:
    """The fixes of the source a config's ``gps`` section names (not ``none``)."""
    if section.source == "nmea-serial":
        if section.serial_port is None:
            raise GpsSourceError("gps.serial_port is not set")
        return nmea_fixes(serial_lines(section.serial_port, section.baud), clock)
    if section.source == "gpsd":
        return gpsd_fixes(section.gpsd_host, section.gpsd_port)
    if section.source == "route" and section.route_file is not None:
        return route_fixes(section.route_file, section.route_interval_s, clock)
    raise GpsSourceError(f"gps.source {section.source!r} has no fixes to open")
