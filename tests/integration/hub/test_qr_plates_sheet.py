"""QR plates end to end: the plate secret on disk, the A4 PDF for the sample's 200 plates
read back from the file (page count, page size, every QR on a page decoded with OpenCV
and verified), and ``central-hub plates`` through a subprocess."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, PdfParser

from central_hub.adapters.plate_sheet import (
    PlateFace,
    SheetError,
    find_cjk_font,
    page_size,
    plate_boxes,
    render_pages,
    render_plate,
)
from central_hub.domain.errors import PlateRefused
from central_hub.domain.qr_plates import (
    PLATE_PATH_PREFIX,
    SAMPLE_POINTS_PATH,
    load_points,
    plate_url,
    verify_plate,
)
from central_hub.errors import HubError
from central_hub.services.qr_plates import (
    PLATE_SECRET_BYTES,
    load_or_create_plate_secret,
    write_sheet,
)

A4_POINTS = (595.3, 841.9)


def _pdf_pages(path: Path) -> list[tuple[list[float], np.ndarray]]:
    """Each page's MediaBox and its image, decoded from the PDF's CCITT G4 stream (wrapped
    in a one-strip TIFF so Pillow reads it: no PDF renderer is needed)."""
    parser = PdfParser.PdfParser(str(path), mode="rb")
    try:
        pages = []
        for ref in parser.pages:
            page = parser.read_indirect(ref)
            (image_ref,) = page[b"Resources"][b"XObject"].values()
            stream = parser.read_indirect(image_ref)
            info = stream.dictionary
            assert info[b"Filter"] == [PdfParser.PdfName(b"CCITTFaxDecode")]
            width, height, data = info[b"Width"], info[b"Height"], bytes(stream.buf)
            tags = [
                (256, 4, width),
                (257, 4, height),
                (258, 3, 1),  # 1 bit a pixel
                (259, 3, 4),  # CCITT group 4
                (262, 3, 1),  # 0 is black
                (273, 4, 8),  # the strip follows the header
                (278, 4, height),
                (279, 4, len(data)),
            ]
            ifd = struct.pack("<H", len(tags))
            ifd += b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
            tiff = b"II*\0" + struct.pack("<I", 8 + len(data)) + data + ifd + b"\0\0\0\0"
            image = np.asarray(Image.open(io.BytesIO(tiff)).convert("L"))
            pages.append(([float(v) for v in page[b"MediaBox"]], image))
        return pages
    finally:
        parser.close()


def _decode_plates(image: np.ndarray, per_page: int, dpi: int) -> list[str]:
    """The text of each plate's QR code on a page, in printing order ('' where none)."""
    texts = []
    for x, y, width, height in plate_boxes(per_page, dpi):
        plate = image[y : y + height, x : x + width]
        shrink = min(1.0, 1000 / max(width, height))  # as a phone sees it: not 2,000 px wide
        plate = cv2.resize(plate, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        # OpenCV's classic detector misses the finder patterns of about one valid code in
        # 200; its ArUco-based detector reads those (both are OpenCV's, as phones differ)
        text, _, _ = cv2.QRCodeDetector().detectAndDecode(plate)
        if not text:
            text, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(plate)
        texts.append(text)
    return texts


def _token(url: str, base: str) -> str:
    assert url.startswith(base + PLATE_PATH_PREFIX), url
    return url.removeprefix(base + PLATE_PATH_PREFIX)


# ------------------------------------------------------------------ the secret


def test_the_plate_secret_is_made_once_0600_and_then_kept(tmp_path: Path) -> None:
    path = tmp_path / "hub" / "plate_secret"
    secret = load_or_create_plate_secret(path)
    assert len(secret) == PLATE_SECRET_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_plate_secret(path) == secret
    assert path.read_bytes() == secret
    assert [p.name for p in path.parent.iterdir()] == ["plate_secret"]  # no partial left


def test_processes_starting_at_once_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "plate_secret"
    got: list[bytes] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        got.append(load_or_create_plate_secret(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8
    assert set(got) == {path.read_bytes()}


def test_a_damaged_secret_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "plate_secret"
    path.write_bytes(b"short")
    with pytest.raises(HubError, match=r"not a plate secret \(5 bytes, 32 expected\); restore"):
        load_or_create_plate_secret(path)
    assert path.read_bytes() == b"short"


def test_a_secret_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    with pytest.raises(HubError, match="cannot read the plate secret: Not a directory"):
        load_or_create_plate_secret(tmp_path / "file" / "plate_secret")
    dangling = tmp_path / "plate_secret"
    dangling.symlink_to(tmp_path / "gone" / "secret")
    with pytest.raises(HubError, match="cannot create the plate secret"):
        load_or_create_plate_secret(dangling)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "plate_secret"]


# ------------------------------------------------------------------ the sheet


def test_the_sample_prints_on_25_a4_pages_and_each_qr_verifies(tmp_path: Path) -> None:
    points = load_points(SAMPLE_POINTS_PATH)
    secret = os.urandom(32)
    base = "https://hub.example.cn:8443/city"
    out = tmp_path / "sheet.pdf"
    report = write_sheet(
        points, out, secret=secret, base_url=base, per_page=8, font=find_cjk_font(), dpi=300
    )
    assert (report.plates, report.pages) == (200, 25)
    pages = _pdf_pages(out)
    assert len(pages) == 25
    for media_box, image in pages:
        assert media_box[:2] == [0.0, 0.0]
        assert media_box[2:] == pytest.approx(A4_POINTS, abs=1.0)
        assert image.shape == (3508, 2480) == page_size(300)[::-1]  # A4 at 300 dpi
    known = {p.id for p in points}
    for number, first in ((0, 0), (24, 192)):
        urls = _decode_plates(pages[number][1], 8, 300)
        ids = [verify_plate(_token(url, base), secret, known) for url in urls]
        assert ids == [p.id for p in points[first : first + 8]], number
    assert [p.id for p in points[192:]] == [f"HJL-{n:03d}" for n in range(93, 101)]


def test_a_plate_drawn_tall_scans_too_and_a_wrong_secret_fails() -> None:
    point = load_points(SAMPLE_POINTS_PATH)[150]
    secret = b"s" * 32
    url = plate_url("http://127.0.0.1:8080", point.id, secret)
    face = PlateFace(point.id, point.street, url, point.lat, point.lon, point.name)
    for width, height in ((800, 850), (1200, 850)):  # 12 a page (tall), 8 a page (wide)
        image = np.asarray(render_plate(face, width, height, find_cjk_font()))
        text, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
        assert text == url
        token = _token(text, "http://127.0.0.1:8080")
        assert verify_plate(token, secret, {point.id}) == point.id
        with pytest.raises(PlateRefused, match="forged"):
            verify_plate(token, b"t" * 32, {point.id})


def test_only_the_offered_layouts_are_drawn() -> None:
    with pytest.raises(SheetError, match="7 plates a page: choose one of 1, 2, 4, 6, 8, 10, 12"):
        render_pages([], per_page=7, font=find_cjk_font())


def test_a_missing_font_is_named(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match=r"no CJK font at .*nofont\.ttc"):
        find_cjk_font(tmp_path / "nofont.ttc")


# ------------------------------------------------------------------ the CLI


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "central_hub.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _points_file(path: Path, features: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")
    return path


def test_cli_generates_a_sheet_whose_links_the_hub_s_secret_verifies(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    sample = json.loads(SAMPLE_POINTS_PATH.read_text(encoding="utf-8"))["features"]
    points = _points_file(tmp_path / "five.geojson", sample[98:103])
    out = tmp_path / "out" / "sheet.pdf"
    done = _cli(
        "--data-dir",
        str(data_dir),
        "plates",
        "generate",
        "--points",
        str(points),
        "--out",
        str(out),
        "--per-page",
        "4",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{out}: 5 plates on 2 A4 pages (first link http://127.0.0.1")
    pages = _pdf_pages(out)
    assert len(pages) == 2
    secret = (data_dir / "plate_secret").read_bytes()
    urls = _decode_plates(pages[0][1], 4, 600) + _decode_plates(pages[1][1], 4, 600)[:1]
    every = {f["properties"]["id"] for f in sample}
    ids = [verify_plate(_token(u, "http://127.0.0.1:8080"), secret, every) for u in urls]
    assert ids == ["XQJ-099", "XQJ-100", "HJL-001", "HJL-002", "HJL-003"]

    # a second run keeps the secret, so plates printed before still scan
    again = _cli(
        "--data-dir",
        str(data_dir),
        "plates",
        "generate",
        "--points",
        str(points),
        "--out",
        str(tmp_path / "again.pdf"),
        "--base-url",
        "https://hub.example.cn/",
    )
    assert again.returncode == 0, again.stderr
    assert (data_dir / "plate_secret").read_bytes() == secret
    assert "(first link https://hub.example.cn/r/XQJ-099." in again.stdout


def test_cli_check_passes_the_sample_and_lists_every_problem(tmp_path: Path) -> None:
    done = _cli("--data-dir", str(tmp_path / "hub"), "plates", "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{SAMPLE_POINTS_PATH}: valid; 200 plates on 2 streets\n"

    good = {"type": "Point", "coordinates": [121.2586, 28.6488]}
    broken = _points_file(
        tmp_path / "broken.geojson",
        [
            {"type": "Feature", "properties": {"id": "A 1", "street": "县前街"}, "geometry": good},
            {"type": "Feature", "properties": {"id": "B-1"}, "geometry": good},
            {"type": "Feature", "properties": {"id": "b-1", "street": "横街路"}, "geometry": good},
        ],
    )
    for verb in ("check", "generate"):
        extra = ["--out", str(tmp_path / "no.pdf")] if verb == "generate" else []
        done = _cli("plates", verb, "--points", str(broken), *extra)
        assert done.returncode == 1
        err = done.stderr.splitlines()
        assert err == [
            f"central-hub: {broken}: 3 problems",
            "  features[0]: properties.id: 'A 1' is not 1-32 letters, digits or hyphens",
            "  features[1] (B-1): properties.street: a non-empty string is needed",
            "  features[2] (b-1): properties.id: 'b-1' is used twice (also features[1] (B-1))",
        ], err
    assert not (tmp_path / "no.pdf").exists()

    far = _points_file(
        tmp_path / "far.geojson",
        [
            {
                "type": "Feature",
                "properties": {"id": "F-1", "street": "县前街"},
                "geometry": {"type": "Point", "coordinates": [120.0, 30.0]},
            }
        ],
    )
    done = _cli("plates", "check", "--points", str(far))
    assert done.returncode == 1
    assert done.stderr == (
        f"central-hub: {far}: F-1: lat 30.000000, lon 120.000000 lies in no street cell of the"
        " grid\n"
    )


def test_cli_names_a_missing_font_and_a_bad_base_url(tmp_path: Path) -> None:
    out = tmp_path / "sheet.pdf"
    done = _cli(
        "--data-dir",
        str(tmp_path / "hub"),
        "plates",
        "generate",
        "--out",
        str(out),
        env={"XH_CJK_FONT": str(tmp_path / "none.ttf")},
    )
    assert done.returncode == 1
    assert f"no CJK font at {tmp_path / 'none.ttf'}" in done.stderr
    done = _cli(
        "--data-dir",
        str(tmp_path / "hub"),
        "plates",
        "generate",
        "--out",
        str(out),
        "--base-url",
        "hub.example.cn",
    )
    assert done.returncode == 1
    assert "base URL 'hub.example.cn': an absolute http:// or https:// URL" in done.stderr
    assert not out.exists()
    assert not (tmp_path / "hub" / "plate_secret").exists()  # refused before anything was made
