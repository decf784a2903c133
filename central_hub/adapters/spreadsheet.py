"""Reading a city's import files: CSV (UTF-8 or GB18030, as Chinese Excel saves it) and
XLSX (openpyxl, which stops here: rows leave as plain Python values).

A file becomes its header (the first non-empty row) and its rows, each with the row number
a person sees in the spreadsheet (the header's row is 1 when it is the first line), so
problems can name the row to fix.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from central_hub.errors import InvalidInputError

__all__ = ["MAX_IMPORT_BYTES", "Sheet", "read_sheet"]

#: The largest import file taken (a 26,000-row registry is about 4 MB as CSV).
MAX_IMPORT_BYTES = 64 * 1024 * 1024
#: An XLSX file is a zip; these are its first bytes.
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Sheet:
    """A file's header row (its row number ``header_row``) and its data rows as
    ``(row number, cells)``; cells are text (CSV) or numbers, dates and text (XLSX)."""

    header: tuple[object, ...]
    header_row: int
    rows: tuple[tuple[int, tuple[object, ...]], ...]


def read_sheet(data: bytes, name: str) -> Sheet:
    """The rows of an import file: XLSX when it is a zip (or named ``.xlsx``), else CSV.

    Raises :class:`InvalidInputError` naming the file when it is too large, empty, not
    decodable text, a broken XLSX, or has no header row. Blocking: run it in a thread.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInputError(
            f"{name}: {len(data)} bytes, over the import limit of {MAX_IMPORT_BYTES}"
        )
    if data.startswith(_ZIP_MAGIC) or name.lower().endswith(".xlsx"):
        rows = _xlsx_rows(data, name)
    else:
        rows = _csv_rows(data, name)
    for row_number, cells in rows:
        if any(_filled(c) for c in cells):
            return Sheet(tuple(cells), row_number, tuple(rows))  # the rows after it
    raise InvalidInputError(f"{name}: no header row (the file is empty)")


def _filled(cell: object) -> bool:
    return cell is not None and (not isinstance(cell, str) or bool(cell.strip()))


def _decode(data: bytes, name: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{name}: not text in UTF-8 or GB18030 (byte {exc.start}); save it as CSV UTF-8 or XLSX"
        ) from None


def _csv_rows(data: bytes, name: str) -> Iterator[tuple[int, tuple[object, ...]]]:
    text = _decode(data, name)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for number, cells in enumerate(reader, start=1):
            yield number, tuple(cells)
    except csv.Error as exc:
        raise InvalidInputError(f"{name}: row {reader.line_num}: not valid CSV: {exc}") from exc


def _xlsx_rows(data: bytes, name: str) -> Iterator[tuple[int, tuple[object, ...]]]:
    from openpyxl import load_workbook  # only imports need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises a dozen kinds for a broken file: all say so
        raise InvalidInputError(f"{name}: not a readable XLSX workbook: {exc}") from exc
    try:
        sheet = book.worksheets[0]
        for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, tuple(cells)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as exc:
        raise InvalidInputError(f"{name}: a broken XLSX sheet: {exc}") from exc
    finally:
        book.close()
