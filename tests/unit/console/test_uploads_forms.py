"""Photo checks and re-encoding; the queue's, the period's and the speak panel's input."""

from __future__ import annotations

import io
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from central_hub.console.device_routes import DEFAULT_CLIPS, SpeakRequest, clips_of
from central_hub.console.errors import UploadRefused
from central_hub.console.metrics_routes import parse_period
from central_hub.console.uploads import normalise_photo
from central_hub.services.devices import DeviceView

LIMIT = 200_000


def image(fmt: str, size: tuple[int, int] = (80, 60), exif: bool = False) -> bytes:
    out = io.BytesIO()
    img = Image.new("RGB", size, (10, 120, 200))
    if exif:
        data = Image.Exif()
        data[0x010F] = "PhoneMaker"  # Make
        img.save(out, format=fmt, exif=data.tobytes())
    else:
        img.save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_images_become_jpeg(fmt: str) -> None:
    out = normalise_photo(image(fmt), limit=LIMIT)
    assert out.startswith(b"\xff\xd8")
    with Image.open(io.BytesIO(out)) as img:
        assert img.format == "JPEG"
        assert img.size == (80, 60)


def test_metadata_is_dropped_and_big_photos_shrink() -> None:
    out = normalise_photo(image("JPEG", (1000, 500), exif=True), limit=LIMIT, max_side=400)
    with Image.open(io.BytesIO(out)) as img:
        assert img.size == (400, 200)
        assert not img.getexif()


@pytest.mark.parametrize(
    ("data", "status", "key"),
    [
        (b"%PDF-1.4 not an image", 415, "upload.not_image"),
        (b"\xff\xd8\xff\xe0 truncated jpeg", 415, "upload.not_image"),
        (b"", 422, "upload.empty"),
        (b"\xff" * (LIMIT + 1), 413, "upload.too_big"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(data: bytes, status: int, key: str) -> None:
    with pytest.raises(UploadRefused) as info:
        normalise_photo(data, limit=LIMIT)
    assert info.value.status == status
    assert info.value.key == key


def test_gif_is_an_image_but_not_accepted() -> None:
    with pytest.raises(UploadRefused, match="GIF"):
        normalise_photo(image("GIF"), limit=LIMIT)


def test_period_defaults_bounds_and_errors() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    p = parse_period("", "", date(2026, 11, 26), zone)
    assert (p.first, p.last) == (date(2026, 11, 20), date(2026, 11, 26))
    assert p.start.isoformat() == "2026-11-20T00:00:00+08:00"
    assert p.end.isoformat() == "2026-11-27T00:00:00+08:00"
    with pytest.raises(ValueError, match="before it starts"):
        parse_period("2026-11-10", "2026-11-01", date(2026, 11, 26), zone)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_period("yesterday", "", date(2026, 11, 26), zone)
    with pytest.raises(ValueError, match="at most 366"):
        parse_period("2024-01-01", "2026-01-01", date(2026, 11, 26), zone)


def test_speak_request_takes_exactly_one_of_clip_and_text() -> None:
    assert SpeakRequest(clip="chime").command() == ("speaker.play", {"clip": "chime"})
    assert SpeakRequest(text=" 请勿占道经营 ").command() == (
        "speaker.say",
        {"text": "请勿占道经营"},
    )
    for bad in ({}, {"clip": "chime", "text": "hi"}, {"text": "   "}):
        with pytest.raises(ValueError, match="exactly one"):
            SpeakRequest.model_validate(bad)
    with pytest.raises(ValueError, match="200"):
        SpeakRequest(text="x" * 201)


def _device(config: dict[str, object] | None) -> DeviceView:
    return DeviceView.model_validate(
        {
            "device_id": "pole-1",
            "kind": "pole",
            "state": "online",
            "health": "ok",
            "status_ts": None,
            "seen_at": None,
            "boot_id": None,
            "fw": None,
            "model": None,
            "config_version": None,
            "telemetry": None,
            "telemetry_at": None,
            "desired_version": 1 if config else 0,
            "desired_config": config,
            "reported_version": None,
            "reported_state": None,
            "reported_errors": None,
            "config_in_sync": False,
        }
    )


def test_clips_come_from_the_desired_config_or_defaults() -> None:
    assert clips_of(_device(None)) == list(DEFAULT_CLIPS)
    config = {"speaker": {"clips": {"chime": "a.wav"}, "phrases": {"no-parking": "此处禁止停车"}}}
    assert clips_of(_device(config)) == ["chime", "no-parking"]
