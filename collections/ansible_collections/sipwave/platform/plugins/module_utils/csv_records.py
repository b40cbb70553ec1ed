# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a CSV file record by record with each physical line decoded on its own, so that a
broken UTF-8 sequence is reported on the line where it is (also inside a quoted field that
spans lines) and the other records are still read. Used by the export and consent readers.

The dialect is the export's: comma separated; a field that begins with ``"`` is quoted and
ends at the next ``"`` that is not doubled (it may span lines); a ``"`` anywhere else is an
ordinary character; line ends ``\\n`` or ``\\r\\n``. Record boundaries and fields come from
the same parser: a stray quote inside an unquoted field (``Anna "Ania Nowak``) is text and
never joins the following lines to its row, and a carriage return inside a field is kept as
a character for the row's checks instead of stopping the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

QUOTE = '"'
SEPARATOR = ","
# A quoted field from its opening quote: its text (doubled quotes inside), the closing quote
# when this text holds it, and what follows the closing quote up to the next separator
# (kept as text, as Python's csv module does).
_QUOTED = re.compile(r'"((?:[^"]|"")*)("?)([^,]*)', re.DOTALL)


@dataclass
class Record:
    """One CSV record: its first physical line, its decoded lines, the decoding failures, and
    its fields (empty for an unterminated record)."""

    line: int
    text_lines: list[str]
    undecodable: list[tuple[int, str]]
    unterminated: bool = False
    fields: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The record's text without its final line end."""
        return _without_line_end("".join(self.text_lines))


def _without_line_end(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text


def split_fields(text: str) -> tuple[list[str], bool]:
    """The fields of ``text`` (one record without its final line end) and whether a quoted
    field is still open at its end (then the record goes on on the next line)."""
    if QUOTE not in text:
        return text.split(SEPARATOR), False
    fields: list[str] = []
    position, end = 0, len(text)
    while True:
        if text.startswith(QUOTE, position):
            quoted = _QUOTED.match(text, position)
            inside, closing, after = quoted.groups()
            if not closing:
                return fields, True
            fields.append(inside.replace('""', QUOTE) + after)
            position = quoted.end()
        else:
            stop = text.find(SEPARATOR, position)
            stop = end if stop < 0 else stop
            fields.append(text[position:stop])
            position = stop
        if position >= end:
            return fields, False
        position += 1  # the separator
        if position == end:
            fields.append("")
            return fields, False


def _ends_inside_quotes(line: str) -> bool:
    """Whether a record that entered ``line`` inside a quoted field is still inside one at its
    end. One pass over the line, with the rules of split_fields: a doubled quote is text, a
    single one closes the field, what follows up to the separator is text, and a quote opens
    a field only at its start. The record is split into fields once, when it is complete, so
    an unclosed quote costs one pass over the rest of the file, not one per line."""
    position, inside = 0, True
    while True:
        if inside:
            while True:
                found = line.find(QUOTE, position)
                if found < 0:
                    return True
                if line.startswith(QUOTE, found + 1):
                    position = found + 2  # a doubled quote, inside the field
                    continue
                position, inside = found + 1, False
                break
        stop = line.find(SEPARATOR, position)
        if stop < 0:
            return False
        position = stop + 1
        if line.startswith(QUOTE, position):
            position, inside = position + 1, True


def records(handle) -> Iterator[Record]:
    """CSV records from a binary file, each physical line decoded on its own.

    A record continues onto the next physical line while one of its quoted fields is open.
    The quote character is one byte that never occurs inside a multi-byte UTF-8 sequence, so a
    line that does not decode is split into fields as correctly as one that does.
    """
    record: Record | None = None
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
            broken = None
        except UnicodeDecodeError as exc:
            broken = (number, f"broken UTF-8 at byte {exc.start + 1}")
            text = raw.decode("utf-8", errors="replace")
        if record is None and broken is None and QUOTE not in text:
            # The usual row: one line, no quote, nothing to carry over.
            yield Record(number, [text], [], False, _without_line_end(text).split(SEPARATOR))
            continue
        if record is None:
            record = Record(number, [], [])
        if broken is not None:
            record.undecodable.append(broken)
        record.text_lines.append(text)
        if len(record.text_lines) == 1:
            fields, still_open = split_fields(_without_line_end(text))
        elif _ends_inside_quotes(text):
            continue
        else:
            fields, still_open = split_fields(_without_line_end("".join(record.text_lines)))
        if not still_open:
            record.fields = fields
            yield record
            record = None
    if record is not None:
        record.unterminated = True
        yield record
