#!/usr/bin/env python3
"""Write a legacy export (docs/export-format.md) for the lab, the tests and the benchmark.

The content depends only on the arguments (a seeded generator): the same call always writes
the same file. With --bad-rows every kind of bad row the reader reports is mixed in, each at
a known place, so tests can expect them by line.

    tools/make_sample_export.py --accounts 500 --bad-rows --out export.csv
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import random
import sys

COLUMNS = ("login", "password", "ha1", "domain", "display_name", "email", "numbers",
           "dialin_numbers", "department", "balance", "devices", "wave")  # fmt: skip
DOMAIN = "ip.tanifon.pl"
VENDORS = ("yealink", "polycom", "Poly", "grandstream", "snom", "cisco", "fanvil", "gigaset")
DEPARTMENTS = ("sales", "support", "accounting", "logistics", "management")
FIRST = ("Anna", "Piotr", "Maria", "Jan", "Ewa", "Tomasz", "Zofia", "Paweł", "Łucja", "Kasia")
LAST = ("Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Zieliński")
# One bad row per kind, in this order, after the good rows (the reader's reason keys).
BAD_KINDS = ("columns", "utf8", "utf8_in_quoted_newline", "duplicate_login", "number",
             "dialin", "mac", "vendor", "credentials", "ha1", "balance", "duplicate_number",
             "login", "device")  # fmt: skip


def login_of(index: int) -> str:
    return f"48{220000000 + index:09d}"[:11]


def password_of(rng: random.Random) -> str:
    return "pw-" + "".join(rng.choices("abcdefghkmnpqrstuvwxyz23456789", k=12))


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def mac_of(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def good_row(index: int, rng: random.Random, waves: list[str]) -> dict:
    login = f"{481200000 + index}"
    password = password_of(rng)
    ha1_only = index % 7 == 6
    notation = index % 4
    national = f"{220000000 + index:09d}"
    number = (f"+48{national}", f"0048{national}", f"48{national}", national)[notation]
    numbers = [number]
    if index % 5 == 0:
        numbers.append(f"+48 58 {index:07d}")
    dialin = [f"+48{600000000 + index}"] if index % 3 == 0 else []
    if index % 9 == 0:
        dialin.append(f"0048{700000000 + index}")
    devices = (
        [] if index % 6 == 5 else [f"{VENDORS[index % len(VENDORS)]}:T{index % 50}:{mac_of(rng)}"]
    )
    name = f"{FIRST[index % len(FIRST)]} {LAST[index % len(LAST)]}"
    return {
        "login": login,
        "password": "" if ha1_only else password,
        "ha1": md5(f"{login}:{DOMAIN}:{password}") if ha1_only or index % 10 == 3 else "",
        "domain": DOMAIN,
        "display_name": name,
        "email": f"customer{index}@example.test",
        "numbers": ";".join(numbers),
        "dialin_numbers": ";".join(dialin),
        "department": DEPARTMENTS[index % len(DEPARTMENTS)],
        "balance": f"{rng.randrange(0, 20000) / 100:.2f}",
        "devices": ";".join(devices),
        "wave": waves[index % len(waves)] if waves else "",
    }


def bad_row(kind: str, index: int, rng: random.Random, waves: list[str], first: dict) -> dict:
    row = good_row(index, rng, waves)
    if kind == "duplicate_login":
        row["login"], row["ha1"] = first["login"], ""
    elif kind == "number":
        row["numbers"] = "+48 22 12x 45 67"
    elif kind == "dialin":
        row["dialin_numbers"] = "12345"
    elif kind == "mac":
        row["devices"] = "yealink:T46:00:15:65:zz:00:01"
    elif kind == "vendor":
        row["devices"] = f"avaya:9611:{mac_of(rng)}"
    elif kind == "credentials":
        row["password"], row["ha1"] = "", ""
    elif kind == "ha1":
        row["password"], row["ha1"] = "", "not-a-hash"
    elif kind == "balance":
        row["balance"] = "12,50 PLN"
    elif kind == "duplicate_number":
        row["numbers"] = first["numbers"].split(";")[0]
    elif kind == "login":
        row["login"] = "bad login@x"
    elif kind == "device":
        row["devices"] = "yealink-without-mac"
    elif kind == "utf8_in_quoted_newline":
        row["display_name"] = "Firma\nSp. z o.o."
    return row


def render(rows: list[dict]) -> list[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8").splitlines(keepends=True)


def build(accounts: int, seed: int, waves: list[str], bad_rows: bool) -> bytes:
    rng = random.Random(seed)
    rows = [good_row(index, rng, waves) for index in range(accounts)]
    kinds = {}
    if bad_rows:
        for offset, kind in enumerate(BAD_KINDS):
            kinds[len(rows)] = kind
            rows.append(bad_row(kind, accounts + offset, rng, waves, rows[offset + 1]))
    # Byte-level damage that csv cannot write: a missing column and broken UTF-8.
    text = b"".join(render(rows))
    if bad_rows:
        records = _split_records(text)
        for position, kind in kinds.items():
            index = position + 1  # the header is record 0
            if kind == "columns":
                records[index] = records[index].rsplit(b",", 1)[0] + b"\n"
            elif kind == "utf8":
                records[index] = records[index].replace(b"@example.test", b"@ex\xe9mple.test")
            elif kind == "utf8_in_quoted_newline":
                records[index] = records[index].replace(b"Sp. z o.o.", b"Sp. z o.\xff.")
        text = b"".join(records)
    return text


def _split_records(text: bytes) -> list[bytes]:
    records, current, open_quotes = [], b"", False
    for line in text.splitlines(keepends=True):
        current += line
        if line.count(b'"') % 2:
            open_quotes = not open_quotes
        if not open_quotes:
            records.append(current)
            current = b""
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--waves", default="wave1,wave2", help="comma-separated wave names")
    parser.add_argument("--bad-rows", action="store_true")
    parser.add_argument("--out", default="-")
    options = parser.parse_args()
    waves = [w for w in options.waves.split(",") if w]
    data = build(options.accounts, options.seed, waves, options.bad_rows)
    if options.out == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(options.out, "wb") as handle:
            handle.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
