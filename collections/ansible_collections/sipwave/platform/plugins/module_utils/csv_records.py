# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a CSV file record by record with each physical line decoded on its own, so that a
broken UTF-8 sequence is reported on the line where it is (also inside a quoted field that
spans lines) and the other records are still read. Used by the export and consent readers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

QUOTE = ord('"')


@dataclass
class Record:
    """One CSV record: its first physical line, its decoded lines, the decoding failures."""

    line: int
    text_lines: list[str]
    undecodable: list[tuple[int, str]]
    unterminated: bool = False


def records(handle) -> Iterator[Record]:
    """CSV records from a binary file, each physical line decoded on its own.

    A record continues onto the next physical line while a quoted field is open. The quote
    character is one byte that never occurs inside a multi-byte UTF-8 sequence, so counting
    it in the raw bytes is right even on a line that does not decode.
    """
    record: Record | None = None
    open_quotes = False
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if record is None:
            record = Record(number, [], [])
        try:
            record.text_lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            record.undecodable.append((number, f"broken UTF-8 at byte {exc.start + 1}"))
            record.text_lines.append(raw.decode("utf-8", errors="replace"))
        if raw.count(QUOTE) % 2:
            open_quotes = not open_quotes
        if not open_quotes:
            yield record
            record = None
    if record is not None:
        record.unterminated = True
        yield record
