"""Printable A4 sheets of QR plates: segno makes each QR matrix, Pillow draws and saves.

segno and Pillow stop here: callers pass plate texts and links in and get a PDF (or the
page images) out. Each page is drawn in greyscale at ``dpi`` and stored as a 1-bit image
(CCITT G4 in the PDF: lossless, so the QR modules stay sharp for the sign maker, and a
page is a few dozen kilobytes). A thin line marks each plate's cut.

A plate shows the instruction in Chinese and English, the QR code of its link (error
correction level Q: a sign outdoors gets dirty), the point's id large, the street, the
name and the coordinates (so the fitter knows where it goes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from central_hub.errors import HubError

__all__ = [
    "DEFAULT_CJK_FONT",
    "INSTRUCTION_EN",
    "INSTRUCTION_ZH",
    "LAYOUTS",
    "PlateFace",
    "SheetError",
    "find_cjk_font",
    "page_size",
    "plate_boxes",
    "render_pages",
    "render_plate",
    "save_pdf",
]

#: Debian's fonts-wqy-microhei (scripts/system-deps.sh installs it); XH_CJK_FONT overrides.
DEFAULT_CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
CJK_FONT_PACKAGE = "fonts-wqy-microhei"
INSTRUCTION_ZH = "扫码上报城市管理问题"
INSTRUCTION_EN = "Scan to report a city problem here"
#: plates per page -> (columns, rows) on portrait A4
LAYOUTS: dict[int, tuple[int, int]] = {
    1: (1, 1),
    2: (1, 2),
    4: (2, 2),
    6: (2, 3),
    8: (2, 4),
    10: (2, 5),
    12: (3, 4),
}
A4_MM = (210.0, 297.0)
#: blank space inside each plate's cut line, in mm
_INSET_MM = 4.0


class SheetError(HubError):
    """A sheet that cannot be drawn: no CJK font, a layout that is not offered."""


@dataclass(frozen=True)
class PlateFace:
    """What one plate shows: its id, street, optional name, the link and where it stands."""

    point_id: str
    street: str
    url: str
    lat: float
    lon: float
    name: str | None = None


def find_cjk_font(explicit: Path | None = None) -> Path:
    """The font to draw Chinese with: ``explicit``, else $XH_CJK_FONT, else Debian's
    WenQuanYi Micro Hei; raises :class:`SheetError` naming the missing font."""
    env = os.environ.get("XH_CJK_FONT")
    path = explicit or (Path(env) if env else DEFAULT_CJK_FONT)
    if not path.is_file():
        hint = (
            f"install the Debian package {CJK_FONT_PACKAGE} (scripts/system-deps.sh does)"
            if path == DEFAULT_CJK_FONT
            else "name a TrueType/OpenType font with Chinese glyphs"
        )
        raise SheetError(f"no CJK font at {path}: {hint}, or set XH_CJK_FONT or --font")
    try:
        _font(str(path), 12)
    except OSError as exc:
        raise SheetError(f"{path}: not a font Pillow can read ({exc})") from exc
    return path


@lru_cache(maxsize=128)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Path, width: int, height: int) -> int:
    """The largest font size (px) at which ``text`` fits in width × height."""
    low, high = 4, max(5, height)
    while low < high:
        size = (low + high + 1) // 2
        left, top, right, bottom = draw.textbbox((0, 0), text, font=_font(str(font), size))
        if right - left <= width and bottom - top <= height:
            low = size
        else:
            high = size - 1
    return low


def _text(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: Path,
    box: tuple[int, int, int, int],
    *,
    center: bool = False,
    max_size: int | None = None,
) -> int:
    """Draw ``text`` as large as fits in box (x, y, w, h), vertically centred; its size."""
    x, y, width, height = box
    size = _fit(draw, text, font, width, height)
    if max_size is not None:
        size = min(size, max_size)
    face = _font(str(font), size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    dx = (width - (right - left)) // 2 if center else 0
    draw.text((x + dx - left, y + (height - (bottom - top)) // 2 - top), text, fill=0, font=face)
    return size


def _qr(url: str, side: int) -> Image.Image:
    """The QR code of ``url`` with its 4-module quiet zone, as large as fits in ``side`` px
    with whole pixels per module (a scaled module would blur)."""
    code = segno.make_qr(url, error="q")
    rows = [bytes(0 if dark else 255 for dark in row) for row in code.matrix_iter(border=4)]
    modules = len(rows)
    matrix = Image.frombytes("L", (modules, modules), b"".join(rows))
    scale = max(1, side // modules)
    return matrix.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)


def render_plate(face: PlateFace, width: int, height: int, font: Path) -> Image.Image:
    """One plate, ``width`` × ``height`` px greyscale, its cut line on the edge.

    A wide plate puts the QR code on the left and the texts on the right; a tall one
    stacks them. The instruction runs across the top either way.
    """
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    line = max(1, round(min(width, height) / 400))
    draw.rectangle((0, 0, width - 1, height - 1), outline=0, width=line)
    pad = round(min(width, height) * 0.05)
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    header_h = round(inner_h * 0.20)
    _text(draw, INSTRUCTION_ZH, font, (pad, pad, inner_w, round(header_h * 0.62)), center=True)
    _text(
        draw,
        INSTRUCTION_EN,
        font,
        (pad, pad + round(header_h * 0.64), inner_w, round(header_h * 0.36)),
        center=True,
    )
    top = pad + header_h + pad // 2
    body_h = height - pad - top
    coordinates = f"{face.lat:.6f}, {face.lon:.6f}"
    if inner_w >= 1.3 * body_h:
        qr = _qr(face.url, body_h)
        image.paste(qr, (pad, top + (body_h - qr.height) // 2))
        x = pad + qr.width + pad // 2
        text_w = width - pad - x
        rows = [(face.point_id, 0.34), (face.street, 0.20), (face.name or "", 0.14)]
        y = top + round(body_h * 0.04)
        for text, share in rows:
            if text:
                _text(draw, text, font, (x, y, text_w, round(body_h * share)))
            y += round(body_h * (share + 0.06))
        _text(draw, coordinates, font, (x, top + round(body_h * 0.88), text_w, round(body_h * 0.1)))
    else:
        label_h = round(body_h * 0.30)
        qr = _qr(face.url, min(inner_w, body_h - label_h))
        image.paste(qr, ((width - qr.width) // 2, top + (body_h - label_h - qr.height) // 2))
        y = top + body_h - label_h
        _text(draw, face.point_id, font, (pad, y, inner_w, round(label_h * 0.5)), center=True)
        # a name usually starts with its street: print the street once
        named = face.name and face.name.startswith(face.street)
        street = face.name if named else " ".join(filter(None, (face.street, face.name)))
        y += round(label_h * 0.54)
        _text(draw, street or "", font, (pad, y, inner_w, round(label_h * 0.26)), center=True)
        y += round(label_h * 0.3)
        _text(draw, coordinates, font, (pad, y, inner_w, round(label_h * 0.16)), center=True)
    return image


def page_size(dpi: int) -> tuple[int, int]:
    """An A4 page's width and height in pixels at ``dpi``."""
    width, height = (round(mm / 25.4 * dpi) for mm in A4_MM)
    return width, height


def plate_boxes(per_page: int, dpi: int) -> list[tuple[int, int, int, int]]:
    """Where the plates of a page go, (x, y, width, height) in pixels, in printing order
    (left to right, then down)."""
    if per_page not in LAYOUTS:
        raise SheetError(f"{per_page} plates a page: choose one of {', '.join(map(str, LAYOUTS))}")
    columns, rows = LAYOUTS[per_page]
    page_w, page_h = page_size(dpi)
    inset = round(_INSET_MM / 25.4 * dpi)
    cell_w, cell_h = (page_w - 2 * inset) // columns, (page_h - 2 * inset) // rows
    return [
        (inset + (k % columns) * cell_w, inset + (k // columns) * cell_h, cell_w, cell_h)
        for k in range(per_page)
    ]


def render_pages(
    faces: Sequence[PlateFace], *, per_page: int, font: Path, dpi: int = 600
) -> list[Image.Image]:
    """The A4 pages (1-bit images at ``dpi``), ``per_page`` plates each (see LAYOUTS)."""
    boxes = plate_boxes(per_page, dpi)
    pages: list[Image.Image] = []
    for first in range(0, len(faces), per_page):
        page = Image.new("L", page_size(dpi), 255)
        for face, (x, y, width, height) in zip(
            faces[first : first + per_page], boxes, strict=False
        ):
            page.paste(render_plate(face, width, height, font), (x, y))
        # a fixed threshold, no dithering: text edges stay clean and QR modules exact
        pages.append(page.point(lambda v: 255 if v >= 128 else 0).convert("1"))
    return pages


def save_pdf(pages: Sequence[Image.Image], out: Path, *, dpi: int = 600) -> None:
    """Write the pages as one PDF, A4 each (a half-written file never stands at ``out``)."""
    if not pages:
        raise SheetError("no plates to print")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        pages[0].save(
            partial,
            "PDF",
            save_all=True,
            append_images=list(pages[1:]),
            resolution=float(dpi),
            title="xiuhua QR plates",
        )
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise SheetError(f"{out}: cannot write the sheet: {exc}") from exc
