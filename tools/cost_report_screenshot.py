#!/usr/bin/env python3
"""Render the cost report page of a sample month and take its screenshot for the docs
(docs/images/cost-report.png) with headless Chromium. The page is a local file; Chromium is
pointed at a closed loopback proxy, so nothing leaves the machine.

    .venv/bin/python tools/cost_report_screenshot.py
"""

import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "collections"))

from ansible_collections.sipwave.platform.plugins.module_utils.cost_page import (  # noqa: E402
    page,
)

SAMPLE = [  # site, department, calls, answered, billed minutes, cost, unrated, open
    ("gdansk", "logistics", 212, 190, "803.00", "96.36", 0, 1),
    ("warsaw", "sales", 530, 488, "2410.00", "312.45", 2, 0),
    ("warsaw", "support", 941, 902, "3126.00", "187.56", 0, 3),
    ("wroclaw", "finance", 88, 80, "240.00", "21.60", 1, 0),
]
COLUMNS = ("site", "department", "calls", "answered", "billed_minutes", "cost", "unrated", "open")


def main() -> None:
    rows = [dict(zip(COLUMNS, row, strict=True)) | {"currency": "PLN"} for row in SAMPLE]
    totals = {"calls": sum(r["calls"] for r in rows), "unrated": 3, "open": 4, "unreadable": 0}
    target = PROJECT / "docs/images/cost-report.png"
    with tempfile.TemporaryDirectory() as work:
        html = Path(work) / "costs.html"
        html.write_text(page(rows, "2026-12", "PLN", totals), encoding="utf-8")
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
             f"--user-data-dir={work}/profile", "--window-size=900,900",
             f"--screenshot={target}", html.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    print(target)


if __name__ == "__main__":
    main()
