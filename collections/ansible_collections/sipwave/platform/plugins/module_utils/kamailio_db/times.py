# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the proxy database's time stamps, as each writer stores them: the engine's text
(2026-12-04T10:00:00Z), PostgreSQL's timestamps (UTC), and Kamailio's SQLite driver, which
keeps TIMESTAMP columns as Julian day numbers."""

from __future__ import annotations

import calendar
import re
import time
from typing import Any

JULIAN_DAY_OF_EPOCH = 2440587.5


def epoch_of(stamp: Any) -> float | None:
    """Epoch seconds of a stored time; None when there is none or it cannot be read."""
    if stamp is None:
        return None
    if isinstance(stamp, (int, float)) or re.fullmatch(r"[0-9]+(\.[0-9]+)?", str(stamp)):
        return (float(stamp) - JULIAN_DAY_OF_EPOCH) * 86400
    text = str(stamp).replace("T", " ").rstrip("Z").split(".")[0].split("+")[0]
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")))
    except ValueError:
        return None
