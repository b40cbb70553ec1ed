"""Calls to the public network through the Python KEMI router against the same routing in
native kamailio.cfg: authenticated INVITE, E.164 check, the routing cache's lookups (served
number, caller number, temporary number, department), carrier choice with dispatcher, caller
ID written per carrier branch (uac From, P-Asserted-Identity), a call record by acc, and the
ACK and BYE through the dialog. SIPp calls (tests/sipp/call_auth.xml: INVITE, 407, INVITE
with credentials, 200, ACK, BYE) and a SIPp carrier answers (tests/sipp/answer.xml).

The same container and instances as `bench register` (bench/register.py): the role-deployed
KEMI instance and bench/kamailio-native.cfg.j2, with the same modules, parameters, database
and dispatcher list. A third instance is the floor (bench/kamailio-floor.cfg.j2): the same
calls, challenged alike and relayed straight to the carrier, with nothing decided or
recorded; the least any proxy spends on them. Only the ratios count, all measured in one
run. Run through `make bench`.
"""

import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import register as twins  # bench/ is on sys.path (run.py)
from benchlib import BenchError, logger, run_in_container
from sipwave_testlib import sipp

log = logger("")
CARRIER_ADDRESS = "127.0.30.31"
FLOOR_ADDRESS = "127.0.30.13"
FLOOR_UNIT = "kamailio-floor"
FLOOR_RUN_DIR = "/run/kamailio-floor"
FLOOR_CFG = "/etc/kamailio/bench-floor.cfg"
INSTANCES = ("kemi", "native", "floor")
CALLED = "+48615550100"  # no account here has it: the carrier of +48
ACCOUNTS = 500
ROUNDS = 3
CALLS = 5000
# A steady load well below what either instance takes (about 800 calls/s on 2 CPUs): the
# figure is the CPU each call costs. At 400 calls in flight and no rate limit both ran out of
# shared memory for transactions (kamailio_shm_memory_mb 128) and refused BYEs.
RATE = 600
# Calls in flight: each holds its dialog 200 ms before the BYE (call_auth.xml).
LIMIT = 200
TIMEOUT_S = 120
PROBE_WAIT_S = 30
GOAL_RATIO = 0.90


@dataclass
class Measurement:
    instance: str
    round: int
    calls: int
    failed: int
    elapsed_s: float
    per_second: float
    proxy_cpu_us_per_call: float
    proxy_core_percent: float
    call_records: int
    call_ends: int


def number_of(n: int) -> str:
    return f"48226{n:06d}"  # +48 22 6nn nn nn, Warsaw


def give_numbers(subscribers: list[dict]) -> None:
    """Each bench account gets one number (dbaliases), as a wave would write it."""
    values = ", ".join(
        f"('{number_of(n)}', '{s['domain']}', '{s['username']}', '{s['domain']}')"
        for n, s in enumerate(subscribers)
    )
    twins.in_container(
        "sqlite3", "/var/lib/kamailio/sipwave.sqlite",
        f"INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES {values}",
    )  # fmt: skip


def carrier_active(instance: twins.Instance) -> bool:
    listing = twins.in_container("kamcmd", "-s", instance.ctl_socket, "dispatcher.list")
    return f"sip:{CARRIER_ADDRESS}:5060" in listing and "FLAGS: AP" in listing


def wait_for_carrier(instances: list[twins.Instance]) -> None:
    deadline = time.monotonic() + PROBE_WAIT_S
    while time.monotonic() < deadline:
        if all(carrier_active(i) for i in instances):
            return
        time.sleep(0.5)
    raise BenchError(f"the carrier {CARRIER_ADDRESS} never became active on both instances")


def start_carrier(trace: bool = False) -> tuple:
    """SIPp as the carrier: answers OPTIONS probes (-aa; each counts as a call towards -m)
    and every call, until it is stopped."""
    return sipp.run(
        "answer.xml", f"{CARRIER_ADDRESS}:5060", CARRIER_ADDRESS, local_port=5060,
        background=True, calls=10_000_000, timeout_s=3600, trace_messages=trace,
        extra=["-aa", "-recv_timeout", "60000"],
    )  # fmt: skip


def render_floor_cfg(settings: dict, floor: twins.Instance) -> str:
    return twins.bench_template("kamailio-floor.cfg.j2").render(
        settings,
        floor_listen_address=floor.address,
        floor_ctl_socket=floor.ctl_socket,
        floor_carrier_address=CARRIER_ADDRESS,
    )


def floor_relays_a_call(floor: twins.Instance, rows: list[list[str]]) -> None:
    """One call through the floor must reach the carrier and be answered, like the others."""
    carrier, workdir = start_carrier(trace=True)
    try:
        call = sipp.run("call_auth.xml", f"{floor.address}:5060", twins.SIPP_ADDRESS,
                        rows=rows[:1])  # fmt: skip
    finally:
        carrier.terminate()
        answered = sipp.wait(carrier, workdir, timeout_s=10)
    if call.successful != 1 or "INVITE sip:" not in answered.messages:
        raise BenchError(f"a call through the floor failed:\n{call.output[-2000:]}")
    log(f"  {floor.name}: the carrier answered the relayed call")


def records() -> int:
    """Call records of answered outbound calls so far (acc; both instances share the table)."""
    count = twins.in_container(
        "sqlite3", "/var/lib/kamailio/sipwave.sqlite",
        "SELECT COUNT(*) FROM acc WHERE direction = 'outbound' AND sip_code = '200'",
    )  # fmt: skip
    return int(count.strip())


def call_ends() -> int:
    """Rows of ended calls so far (sipwave_call_end, one per BYE)."""
    count = twins.in_container(
        "sqlite3", "/var/lib/kamailio/sipwave.sqlite", "SELECT COUNT(*) FROM sipwave_call_end"
    )
    return int(count.strip())


def same_call(instances: list[twins.Instance], rows: list[list[str]]) -> None:
    """One call through each instance: the carrier must see the same request user, From
    and P-Asserted-Identity (the proxy's address aside), and each writes one call record."""
    seen = {}
    for instance in instances:
        carrier, workdir = start_carrier(trace=True)
        try:
            wait_for_carrier([instance])
            before = records()
            call = sipp.run("call_auth.xml", f"{instance.address}:5060", twins.SIPP_ADDRESS,
                            rows=rows[:1])  # fmt: skip
        finally:
            carrier.terminate()
            answered = sipp.wait(carrier, workdir, timeout_s=10)
        if call.successful != 1:
            raise BenchError(f"a call through {instance.name} failed:\n{call.output[-2000:]}")
        invite = answered.messages.split("INVITE sip:", 1)[-1].replace(instance.address, "<proxy>")
        lines = [line.strip() for line in invite.splitlines()]
        seen[instance.name] = (
            lines[0].split("@", 1)[0] if lines else "",
            next((line.split(";tag", 1)[0] for line in lines if line.startswith("From:")), ""),
            next((line for line in lines if line.startswith("P-Asserted-Identity:")), ""),
            records() - before,
        )
        log(f"  {instance.name}: carrier saw {seen[instance.name]}")
    if len(set(seen.values())) != 1:
        raise BenchError(f"the instances route calls differently: {seen}")


def calls_round(instance: twins.Instance, rows: list[list[str]], round_: int) -> Measurement:
    proxy_before = twins.cpu_usage_ns(instance)
    records_before, ends_before = records(), call_ends()
    result = sipp.run(
        "call_auth.xml", f"{instance.address}:5060", twins.SIPP_ADDRESS, rows=rows,
        calls=CALLS, rate=RATE, limit=LIMIT, timeout_s=TIMEOUT_S, trace_messages=False,
    )  # fmt: skip
    proxy_used_us = (twins.cpu_usage_ns(instance) - proxy_before) / 1000
    if result.successful + result.failed != CALLS:
        raise BenchError(
            f"SIPp against {instance.name} ended with {result.returncode} after "
            f"{result.successful} + {result.failed} of {CALLS} calls:\n{result.output[-3000:]}"
        )
    return Measurement(
        instance=instance.name,
        round=round_,
        calls=result.successful,
        failed=result.failed,
        elapsed_s=round(result.elapsed_s, 3),
        per_second=round(result.calls_per_second, 1),
        proxy_cpu_us_per_call=round(proxy_used_us / max(result.successful, 1), 1),
        proxy_core_percent=round(proxy_used_us / 1e4 / result.elapsed_s, 1),
        call_records=records() - records_before,
        call_ends=call_ends() - ends_before,
    )


def report(measurements: list[Measurement]) -> dict:
    row = "{:<7} {:>5} {:>6} {:>6} {:>6} {:>7} {:>12} {:>10} {:>8} {:>5}"
    print()
    print(row.format("router", "round", "calls", "failed", "secs", "calls/s", "cpu us/call",
                     "proxy core", "records", "ends"))  # fmt: skip
    for m in measurements:
        print(row.format(m.instance, m.round, m.calls, m.failed, f"{m.elapsed_s:.2f}",
                         f"{m.per_second:.0f}", f"{m.proxy_cpu_us_per_call:.0f}",
                         f"{m.proxy_core_percent:.0f}%", m.call_records, m.call_ends))  # fmt: skip
    summary = {}
    for name in INSTANCES:
        own = [m for m in measurements if m.instance == name]
        summary[name] = {
            "median_per_second": statistics.median(m.per_second for m in own),
            "median_cpu_us_per_call": statistics.median(m.proxy_cpu_us_per_call for m in own),
            "failed": sum(m.failed for m in own),
            "call_records": sum(m.call_records for m in own),
            "call_ends": sum(m.call_ends for m in own),
            "calls": sum(m.calls for m in own),
        }
    kemi, native, floor = summary["kemi"], summary["native"], summary["floor"]
    cpu_ratio = native["median_cpu_us_per_call"] / kemi["median_cpu_us_per_call"]
    ratio = kemi["median_per_second"] / native["median_per_second"]
    floor_cpu = floor["median_cpu_us_per_call"]
    # What each instance spends above the floor: the routing itself (checks, lookups,
    # carrier choice, caller ID, call records), without the SIP handling every proxy pays.
    routing_us = {
        name: summary[name]["median_cpu_us_per_call"] - floor_cpu for name in ("kemi", "native")
    }
    print()
    for name, values in summary.items():
        print(f"{name:<8} median {values['median_per_second']:.0f} calls/s, "
              f"{values['median_cpu_us_per_call']:.0f} us proxy CPU per call, "
              f"{values['failed']} failed, {values['call_records']} call records and "
              f"{values['call_ends']} call ends for {values['calls']} calls")  # fmt: skip
    print(f"CPU cost ratio native/KEMI per call: {cpu_ratio:.2f}x; throughput ratio {ratio:.2f}x "
          f"(SIPp sets the pace when neither proxy fills its core)")  # fmt: skip
    print(f"floor (challenge and relay only, same run): {floor_cpu:.0f} us per call; CPU cost "
          f"ratio floor/KEMI {floor_cpu / kemi['median_cpu_us_per_call']:.2f}x, floor/native "
          f"{floor_cpu / native['median_cpu_us_per_call']:.2f}x")  # fmt: skip
    print(f"routing above the floor: KEMI {routing_us['kemi']:.0f} us, native "
          f"{routing_us['native']:.0f} us per call; native/KEMI "
          f"{routing_us['native'] / routing_us['kemi']:.2f}x")  # fmt: skip
    print(f"verdict: {'goal met' if cpu_ratio >= GOAL_RATIO else 'goal NOT met'} "
          f"({cpu_ratio:.2f}x, goal >= {GOAL_RATIO:.2f}x)")  # fmt: skip
    return {
        "benchmark": "authenticated call to a carrier",
        "cpu_cost_ratio": round(cpu_ratio, 3),
        "ratio": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "goal_met": cpu_ratio >= GOAL_RATIO,
        "floor_cpu_cost_ratio_kemi": round(floor_cpu / kemi["median_cpu_us_per_call"], 3),
        "floor_cpu_cost_ratio_native": round(floor_cpu / native["median_cpu_us_per_call"], 3),
        "routing_us_above_floor": {name: round(us, 1) for name, us in routing_us.items()},
        "summary": summary,
        "measurements": [asdict(m) for m in measurements],
    }


def benchmark(workdir: Path) -> dict:
    settings = twins.proxy_settings()
    cpus = twins.CpuPlan.for_this_host()
    kemi = twins.Instance("kemi", settings["kamailio_listen_address"], "kamailio",
                          "unix:/run/kamailio/kamailio_ctl")  # fmt: skip
    native = twins.Instance("native", twins.NATIVE_ADDRESS, twins.NATIVE_UNIT,
                            f"unix:{twins.NATIVE_RUN_DIR}/kamailio_ctl")  # fmt: skip
    floor = twins.Instance("floor", FLOOR_ADDRESS, FLOOR_UNIT, f"unix:{FLOOR_RUN_DIR}/kamailio_ctl")
    for address in (kemi.address, native.address, floor.address, twins.SIPP_ADDRESS,
                    CARRIER_ADDRESS):  # fmt: skip
        sipp.require_loopback(address)
    log(f"starting {twins.CONTAINER}")
    twins.start_container(cpus)
    subscribers = twins.subscriber_rows(settings)[:ACCOUNTS]
    log(f"deploying the kamailio role (Python KEMI on {kemi.address}) with {ACCOUNTS} accounts")
    twins.deploy_role(subscribers, workdir)
    give_numbers(subscribers)
    twins.in_container("kamcmd", "-s", kemi.ctl_socket, "htable.reload", "routing")
    log(f"starting the native-cfg instance on {native.address}")
    twins.start_native(twins.render_native_cfg(settings, native), native, workdir, settings)
    log(f"starting the floor instance on {floor.address}")
    twins.start_unit(render_floor_cfg(settings, floor), floor, FLOOR_CFG, FLOOR_RUN_DIR, workdir,
                     settings)  # fmt: skip
    for instance in (kemi, native, floor):
        twins.wait_until_answering(instance)
    twins.worker_counts_match(kemi, native)
    rows = [
        [s["username"], s["domain"], sipp.credentials(s["username"], s["password"]), CALLED,
         s["domain"]]
        for s in subscribers
    ]  # fmt: skip
    os.sched_setaffinity(0, cpus.load_cpus)
    log("checking that both instances route a call alike")
    same_call([kemi, native], rows)
    floor_relays_a_call(floor, rows)
    carrier = start_carrier()
    measurements = []
    try:
        wait_for_carrier([kemi, native])
        for round_ in range(0, ROUNDS + 1):  # round 0 warms both up and is not counted
            for instance in (kemi, native, floor):
                log(f"round {round_}: {CALLS} calls through {instance.name}")
                measurement = calls_round(instance, rows, round_)
                if round_:
                    measurements.append(measurement)
    finally:
        carrier[0].terminate()
        sipp.wait(*carrier, timeout_s=10)
    results = report(measurements)
    results["sipp"] = {
        "scenario": "tests/sipp/call_auth.xml", "carrier": "tests/sipp/answer.xml -aa",
        "calls": CALLS, "rate": RATE, "limit": LIMIT, "accounts": ACCOUNTS, "called": CALLED,
    }  # fmt: skip
    results["proxy"] = {"pinned_cpu": cpus.proxy_cpu, "sipp_cpus": sorted(cpus.load_cpus)}
    results["host_load_average"] = os.getloadavg()
    results["versions"] = twins.versions()
    return results


def main() -> int:
    return run_in_container("call_routing", twins.CONTAINER, benchmark, "calls")


if __name__ == "__main__":
    sys.exit(main())
