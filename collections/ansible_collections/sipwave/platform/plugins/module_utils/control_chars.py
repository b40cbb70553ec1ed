# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Control characters in free text (names, departments, device models, ...).

Such a character never belongs in an export field, and at an output it ends a line of a
line-based format (an AGI command, a phone's ``key = value`` file, an e-mail header) or is
invalid there (XML 1.0). Input is refused where it is read (``first``); every output also
replaces what might still come through (``printable``), so no single check is relied on.
Shared as a plain file by the PBX's AGI script.
"""

from __future__ import annotations

import re

# C0 controls (line feed, carriage return, tab, NUL...), DEL, C1 controls (NEL U+0085...),
# and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def first(text: str) -> str | None:
    """The first control character of ``text`` as ``U+XXXX``, or None when there is none."""
    found = _CONTROL.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def printable(value: object) -> str:
    """``value`` as text with each control character replaced by a space (None: empty)."""
    return _CONTROL.sub(" ", "" if value is None else str(value))
