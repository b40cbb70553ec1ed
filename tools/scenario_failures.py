#!/usr/bin/env python3
"""Print the failing tests of a Molecule scenario's log, one per line.

Molecule prints pytest's output inside its own frame ("  │ " before each line, long lines
folded with two more spaces), so pytest's "short test summary info" is cut into pieces; this
joins them again. Used by tools/run_scenario.sh and `make molecule`, whose last lines are what
a CI page shows.
"""

import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
FRAME = re.compile(r"^\s*│ ?")
# Molecule folds at about 76 characters; a line this long was cut, not ended.
FOLDED_WIDTH = 70
# What pytest says of the failure after the test id, shortened.
REASON_CHARS = 160


def failures(text: str) -> list[str]:
    lines = [FRAME.sub("", ANSI.sub("", line)) for line in text.splitlines()]
    joined: list[str] = []
    previous = ""
    for line in lines:
        if line.startswith("  ") and joined:
            # A fold inside a word leaves a full-width line; a fold at a space, a short one.
            joined[-1] += ("" if len(previous) >= FOLDED_WIDTH else " ") + line.strip()
        else:
            joined.append(line)
        previous = line
    found = []
    for line in joined:
        match = re.match(r"^(FAILED|ERROR)\s+(\S+)(.*)", line.strip())
        if match and "::" in match[2]:
            found.append(f"{match[1]} {match[2]}{match[3][:REASON_CHARS]}")
    return found


def main() -> int:
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for failure in failures(handle.read()):
                print(failure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
