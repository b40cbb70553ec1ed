"""Check-sync of a large wave: 10,000 registered phones of which 1,000 never answer.

The proxy is the kamailio role deployed into the lab container (as `bench register` does),
with 10,000 accounts. SIPp registers every account (digest authentication): 9,000 with a
contact on a SIPp UAS that answers each NOTIFY 200, 1,000 with a contact on a loopback
port where nothing listens (phones gone). `sipwave.platform.check_sync` then tells them all
to re-sync, through a playbook against the container, twice:

- baseline: only the 9,000 phones that answer (what sending and collecting cost);
- the wave: all 10,000, with the default deadline of 40 s.

The goals: the wave's task ends within the deadline plus 10 s, and all 9,000 answered.
Before this module sent every NOTIFY at once, it waited up to 35 s for each phone gone:
1,000 of them would have held the task for about ten hours.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchlib import (
    ANSIBLE_PLAYBOOK,
    BENCH,
    PROJECT,
    BenchError,
    logger,
    run,
    run_in_container,
    start_lab_container,  # bench/ is on sys.path (run.py), not a package
)
from register import CONTAINER, INVENTORY, deploy_role
from sipwave_testlib import sipp  # the test helpers live outside any package

log = logger("check_sync")
PHONES = int(os.environ.get("SIPWAVE_BENCH_CHECK_SYNC_PHONES", "10000"))
GONE_SHARE = 10  # one phone in ten never answers
DEADLINE_S = 40
MARGIN_S = 10
PROXY = "127.0.30.11:5060"
SIPP_ADDRESS = "127.0.30.100"
UAS_ADDRESS = "127.0.30.41"
UAS_PORT = 5099
GONE_CONTACT = "127.0.30.42:5099"  # nothing listens here
DOMAIN = "ip.tanifon.pl"


def accounts() -> list[dict]:
    return [
        {"username": f"cs{n:05d}", "domain": DOMAIN, "password": f"Bench-Cs-{n:05d}"}
        for n in range(PHONES)
    ]


def gone(n: int) -> bool:
    return n % GONE_SHARE == GONE_SHARE - 1


def register_all(subscribers: list[dict]) -> None:
    rows = [
        [s["username"], DOMAIN, sipp.credentials(s["username"], s["password"]),
         GONE_CONTACT if gone(n) else f"{UAS_ADDRESS}:{UAS_PORT}"]
        for n, s in enumerate(subscribers)
    ]  # fmt: skip
    result = sipp.run(
        "register.xml", PROXY, SIPP_ADDRESS, rows=rows, calls=len(rows), rate=2000, limit=100,
        timeout_s=120, trace_messages=False,
    )  # fmt: skip
    if result.successful != len(rows):
        raise BenchError(
            f"{result.successful} of {len(rows)} phones registered:\n{result.output[-2000:]}"
        )


def check_sync(devices: list[dict], workdir: Path, label: str) -> dict:
    """One check_sync task against the container; its result and the task's wall time."""
    vars_file = workdir / f"{label}.json"
    result_file = f"/root/check-sync-{label}.json"  # in the container
    vars_file.write_text(json.dumps({
        "bench_devices": devices, "bench_deadline": DEADLINE_S,
        "bench_result_file": result_file,
    }))  # fmt: skip
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))
    started = time.monotonic()
    run(
        [ANSIBLE_PLAYBOOK, "-i", str(INVENTORY), str(BENCH / "check_sync.yml"),
         "-e", f"@{vars_file}"],
        cwd=PROJECT, env=env,
    )  # fmt: skip
    playbook_s = time.monotonic() - started
    result = json.loads(run(["podman", "exec", CONTAINER, "cat", result_file]).stdout)
    return {"label": label, "playbook_s": round(playbook_s, 1), "task_s": result["elapsed"],
            "counts": result["counts"]}  # fmt: skip


def benchmark(workdir: Path) -> dict:
    start_lab_container(CONTAINER)
    subscribers = accounts()
    log(f"deploying the proxy with {len(subscribers)} accounts")
    deploy_role(subscribers, workdir)
    uas, uas_dir = sipp.run(
        "notify_uas.xml", PROXY, UAS_ADDRESS, local_port=UAS_PORT, background=True,
        calls=2 * PHONES, timeout_s=600, trace_messages=False,
    )  # fmt: skip
    try:
        log(f"registering {len(subscribers)} phones ({len(subscribers) // GONE_SHARE} gone)")
        register_all(subscribers)
        devices = [
            {"mac": f"0015650{n:05x}", "vendor": "yealink",
             "identities": [f"{s['username']}@{DOMAIN}"]}
            for n, s in enumerate(subscribers)
        ]  # fmt: skip
        live = [d for n, d in enumerate(devices) if not gone(n)]
        log(f"baseline: check-sync of the {len(live)} phones that answer")
        baseline = check_sync(live, workdir, "baseline")
        log(f"the wave: check-sync of all {len(devices)} phones, deadline {DEADLINE_S} s")
        wave = check_sync(devices, workdir, "wave")
    finally:
        uas.kill()
        sipp.wait(uas, uas_dir, timeout_s=10)
    return report(baseline, wave, len(live))


def report(baseline: dict, wave: dict, live: int) -> dict:
    limit = DEADLINE_S + MARGIN_S
    answered = wave["counts"]["answered"]
    time_ratio = wave["task_s"] / limit
    answered_ratio = answered / live
    for run_ in (baseline, wave):
        c = run_["counts"]
        print(f"{run_['label']:<9} devices {c['devices']:>6}  answered {c['answered']:>6}  "
              f"timed out {c['timed_out']:>5}  errors {c['error']:>3}  "
              f"task {run_['task_s']:>6.1f} s  playbook {run_['playbook_s']:>6.1f} s")  # fmt: skip
    print(
        f"elapsed vs deadline+{MARGIN_S} s: {wave['task_s']:.1f} / {limit} s = "
        f"{time_ratio:.2f}x (goal <= 1.00x)"
    )
    print(f"answered: {answered} / {live} = {answered_ratio:.2f}x (goal 1.00x)")
    print(
        f"the wave took {wave['task_s'] / max(baseline['task_s'], 0.1):.1f}x the baseline "
        f"(all {live} answering: {baseline['task_s']:.1f} s); the rest is the deadline"
    )
    met = time_ratio <= 1.0 and answered == live and wave["counts"]["error"] == 0
    print(f"verdict: goal {'met' if met else 'NOT met'}")
    return {
        "phones": PHONES, "gone": PHONES - live, "deadline_s": DEADLINE_S,
        "baseline": baseline, "wave": wave,
        "elapsed_ratio": round(time_ratio, 3), "answered_ratio": round(answered_ratio, 4),
        "summary": {"wave": {"failed": 0 if met else 1}},
    }  # fmt: skip


def main() -> int:
    return run_in_container("check_sync", CONTAINER, benchmark, "goals")


if __name__ == "__main__":
    sys.exit(main())
