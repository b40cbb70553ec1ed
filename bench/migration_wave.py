"""A migration wave in one module call against a per-account task loop (make bench).

Everything runs on the controller against local SQLite files created from the kamailio
role's schema: the module is the same, only the way it is called differs.

1. 100,000 accounts applied in one wave by one call of sipwave.platform.wave (goal <= 10 s),
   the whole ansible-playbook run timed, export reading and hashing included;
2. the same wave again, which must change nothing (goal <= 5 s);
3. 1,000 accounts through a real ansible-playbook task loop calling the same module once
   per account; the ratio of the per-account costs (loop / bulk) should be >= 100.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import make_sample_export  # the tools directory is not a package
from benchlib import PROJECT, RESULTS, BenchError, logger, playbook, write_results

sys.path.insert(0, str(PROJECT / "collections"))
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import schema
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (
    Database,
)

BULK_ACCOUNTS = int(os.environ.get("SIPWAVE_BENCH_WAVE_ACCOUNTS", "100000"))
LOOP_ACCOUNTS = int(os.environ.get("SIPWAVE_BENCH_WAVE_LOOP", "1000"))
GOAL_BULK_S = 10.0
GOAL_RERUN_S = 5.0
GOAL_RATIO = 100.0


log = logger("wave")


def new_database(path: Path) -> Path:
    """A proxy database as the kamailio role creates it (kamailio_db.schema)."""
    with sqlite3.connect(path) as connection:
        schema.ensure(Database("sqlite", connection, sqlite3.Error), connection.cursor())
    return path


def write_export(path: Path, accounts: int) -> Path:
    path.write_bytes(make_sample_export.build(accounts, seed=30, waves=["bench"], bad_rows=False))
    return path


def count_rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def benchmark(workdir: Path) -> dict:
    bulk_db = new_database(workdir / "bulk.sqlite")
    loop_db = new_database(workdir / "loop.sqlite")
    log(f"writing exports: {BULK_ACCOUNTS} and {LOOP_ACCOUNTS} accounts")
    bulk_export = write_export(workdir / "bulk.csv", BULK_ACCOUNTS)
    loop_export = write_export(workdir / "loop.csv", LOOP_ACCOUNTS)
    bulk_vars = {"bench_export": str(bulk_export), "bench_database": str(bulk_db)}

    log(f"one module call: {BULK_ACCOUNTS} accounts")
    bulk_s, bulk_recap, _ = playbook("wave_bulk.yml", bulk_vars, workdir)
    subscribers = count_rows(bulk_db, "subscriber")
    if bulk_recap.get("changed") != 1 or subscribers != BULK_ACCOUNTS:
        raise BenchError(f"bulk run: recap {bulk_recap}, {subscribers} subscribers")
    audit_rows = count_rows(bulk_db, "sipwave_audit")
    log(f"no-change re-run: {BULK_ACCOUNTS} accounts")
    rerun_s, rerun_recap, _ = playbook("wave_bulk.yml", bulk_vars, workdir)
    if rerun_recap.get("changed") != 0 or count_rows(bulk_db, "sipwave_audit") != audit_rows:
        raise BenchError(f"the re-run changed something: recap {rerun_recap}")

    log(f"task loop: {LOOP_ACCOUNTS} accounts, one module call each")
    logins = [f"{481200000 + index}" for index in range(LOOP_ACCOUNTS)]
    loop_vars = {"bench_export": str(loop_export), "bench_database": str(loop_db),
                 "bench_logins": logins}  # fmt: skip
    loop_s, loop_recap, _ = playbook("wave_loop.yml", loop_vars, workdir)
    if count_rows(loop_db, "subscriber") != LOOP_ACCOUNTS:
        raise BenchError(f"the loop did not migrate every account: recap {loop_recap}")

    bulk_per_account = bulk_s / BULK_ACCOUNTS
    loop_per_account = loop_s / LOOP_ACCOUNTS
    ratio = loop_per_account / bulk_per_account
    print()
    print(
        f"wave, one module call: {BULK_ACCOUNTS} accounts in {bulk_s:.1f} s "
        f"(goal <= {GOAL_BULK_S:.0f} s), {bulk_per_account * 1e6:.0f} us per account"
    )
    print(f"wave, no-change re-run: {rerun_s:.1f} s (goal <= {GOAL_RERUN_S:.0f} s), changed=0")
    print(
        f"wave, task loop: {LOOP_ACCOUNTS} accounts in {loop_s:.1f} s, "
        f"{loop_per_account * 1e3:.0f} ms per account "
        f"(100,000 accounts would take {loop_per_account * 100000 / 3600:.1f} h)"
    )
    print(f"wave: one call is {ratio:.0f}x faster per account than the loop "
          f"(goal >= {GOAL_RATIO:.0f}x)")  # fmt: skip
    return {
        "benchmark": "migration wave: one module call vs a per-account task loop",
        "bulk": {"accounts": BULK_ACCOUNTS, "seconds": round(bulk_s, 2),
                 "goal_seconds": GOAL_BULK_S, "goal_met": bulk_s <= GOAL_BULK_S},
        "rerun": {"accounts": BULK_ACCOUNTS, "seconds": round(rerun_s, 2), "changed": 0,
                  "goal_seconds": GOAL_RERUN_S, "goal_met": rerun_s <= GOAL_RERUN_S},
        "loop": {"accounts": LOOP_ACCOUNTS, "seconds": round(loop_s, 2)},
        "ratio": round(ratio, 1),
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio >= GOAL_RATIO,
        "host_load_average": os.getloadavg(),
    }  # fmt: skip


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="sipwave-bench-wave-") as workdir:
            results = benchmark(Path(workdir))
    except BenchError as error:
        print(f"bench wave failed: {error}", file=sys.stderr)
        return 1
    log(f"results written to {write_results('wave', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
