"""REGISTER throughput of the Python KEMI router against the same logic in native kamailio.cfg.

One lab container runs two Kamailio instances side by side: the one deployed by the kamailio
role (routing in Python, app_python3s) and bench/kamailio-native.cfg.j2 (the same routes in
native cfg), with the same modules, parameters, worker counts and database. SIPp registers
with digest authentication against each in turn; the figure that matters is the ratio of the
two rates, measured in one run on one machine. Run through `make bench`.

On a machine with two or more CPUs the container is pinned to the last one and SIPp to the
others, so that the proxy, not the load generator, sets the pace.
"""

import json
import os
import re
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchlib import (
    ANSIBLE_PLAYBOOK,
    BENCH,
    PROJECT,
    RESULTS,
    BenchError,
    logger,
    run,
    run_in_container,
    start_lab_container,  # bench/ is on sys.path (run.py), not a package
)
from sipwave_testlib import sipp  # the test helpers live outside any package

sys.path.insert(0, str(PROJECT / "collections"))
from ansible_collections.sipwave.platform.plugins.filter.carriers import (
    carrier_sets as carrier_sets_of,
)

log = logger("")
CONTAINER = "sipwave-bench-proxy"
INVENTORY = BENCH / "inventory.yml"
NATIVE_CFG = "/etc/kamailio/bench-native.cfg"
NATIVE_UNIT = "kamailio-native"
NATIVE_RUN_DIR = "/run/kamailio-native"
NATIVE_ADDRESS = "127.0.30.12"
# The floor: bench/kemi_floor.py swapped in for the deployed router's entry point.
FLOOR_ROUTER = BENCH / "kemi_floor.py"
ROUTER_ENTRY = "/etc/kamailio/sipwave/current/router/sipwave_kemi.py"
ROUTER_ENTRY_SAVED = "/root/sipwave_kemi.py.deployed"
FLOOR_LOADED = "sipwave bench: KEMI floor router loaded"
SIPP_ADDRESS = "127.0.30.100"

ACCOUNTS = 2000
ROUNDS = 5
# A call rate no instance reaches, bounded by the registrations in flight: the proxy sets the
# pace. Measured on 2 CPUs: 100 in flight keep its core 98% busy; 50 leave it waiting for
# round trips, and 200 or more only lengthen SIPp's queues and make the rounds noisier.
SIPP_CALLS = 50000
SIPP_RATE = 20000
SIPP_LIMIT = 100
SIPP_TIMEOUT_S = 90
GOAL_RATIO = 0.90
# Below this share of its core the proxy was waiting for SIPp (a busy machine), not working.
PROXY_BOUND_PERCENT = 90


@dataclass(frozen=True)
class CpuPlan:
    proxy_cpu: int | None
    load_cpus: frozenset[int]

    @classmethod
    def for_this_host(cls) -> "CpuPlan":
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(proxy_cpu=None, load_cpus=frozenset(cpus))
        return cls(proxy_cpu=cpus[-1], load_cpus=frozenset(cpus[:-1]))


@dataclass(frozen=True)
class Instance:
    name: str
    address: str
    unit: str
    ctl_socket: str


@dataclass
class Measurement:
    instance: str
    round: int
    registrations: int
    failed: int
    elapsed_s: float
    per_second: float
    proxy_cpu_us_per_registration: float
    proxy_errors_logged: int
    proxy_core_percent: float
    sipp_cpu_percent: float


def in_container(*command: str) -> str:
    return run(["podman", "exec", CONTAINER, *command]).stdout


# -- the lab container ------------------------------------------------------------------------


def start_container(cpus: CpuPlan) -> None:
    pinning = [] if cpus.proxy_cpu is None else ["--cpuset-cpus", str(cpus.proxy_cpu)]
    start_lab_container(CONTAINER, pinning)


# -- the two Kamailio instances ---------------------------------------------------------------


def proxy_settings() -> dict:
    """The role's defaults overlaid with the bench inventory's group variables."""
    defaults = yaml.safe_load((PROJECT / "roles/kamailio/defaults/main.yml").read_text())
    inventory = yaml.safe_load(INVENTORY.read_text())
    return defaults | inventory["all"]["children"]["proxies"]["vars"]


def subscriber_rows(settings: dict) -> list[dict]:
    domains = settings["kamailio_domains"]
    return [
        {
            "username": f"bench{n:05d}",
            "domain": domains[n % len(domains)],
            "password": f"Bench-Pw-{n:05d}",
        }
        for n in range(ACCOUNTS)
    ]


def deploy_role(subscribers: list[dict], workdir: Path) -> None:
    extra_vars = workdir / "subscribers.json"
    extra_vars.write_text(json.dumps({"kamailio_subscribers": subscribers}))
    extra_vars.chmod(0o600)
    log_file = RESULTS / "deploy.log"
    with log_file.open("w") as output:
        deployed = subprocess.run(
            [
                ANSIBLE_PLAYBOOK, "-i", str(INVENTORY), "playbooks/kamailio.yml",
                "-e", f"@{extra_vars}",
            ],
            cwd=PROJECT,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )  # fmt: skip
    if deployed.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-40:])
        raise BenchError(f"deploying the kamailio role failed, see {log_file}:\n{tail}")


def extended_regex_literal(text: str) -> str:
    """``text`` as a POSIX extended regular expression matching it literally."""
    return re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", text)


def destination_host(uri: str) -> str:
    """The host of an IPv4 or named destination such as ``sip:127.0.20.21:5080;lr``."""
    return uri.split(":", 1)[1].split(";", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]


def bench_template(name: str) -> jinja2.Template:
    """A Kamailio configuration template of bench/."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(BENCH),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        autoescape=False,
    )
    return environment.get_template(name)


def render_native_cfg(settings: dict, native: Instance) -> str:
    # Longest prefix first, ties in the listed order: what Settings.route_for() does.
    prefix_routes = sorted(
        (
            {
                "prefix": str(r["prefix"]),
                "destination": r["destination"],
                "name": r.get("name", str(r["prefix"])),
            }
            for r in settings["kamailio_prefix_routes"]
        ),
        key=lambda r: len(r["prefix"]),
        reverse=True,
    )
    scanners = "|".join(
        extended_regex_literal(agent.lower()) for agent in settings["kamailio_scanner_user_agents"]
    )
    # Where a registered contact may not point (Router._contact_hosts_refused): the peers,
    # this instance itself, the served domains and the prefix routes' destinations.
    refused_hosts = sorted(
        {
            *settings["kamailio_trusted_peers"],
            *settings["kamailio_relaying_peers"],
            native.address,
            *(d.lower() for d in settings["kamailio_domains"]),
            *(destination_host(r["destination"]) for r in prefix_routes),
            "localhost",
        }
    )
    contact_hosts = "|".join(extended_regex_literal(host) for host in refused_hosts)
    template = bench_template("kamailio-native.cfg.j2")
    # The role's set ids (dispatcher.list); the twin has no sites, so only the sets of every
    # site, of which the router takes the longest prefix that the called number starts with.
    carrier_sets = sorted(
        (
            (entry["prefix"], entry["setid"])
            for entry in carrier_sets_of(settings["kamailio_carriers"])
            if not entry["site"]
        ),
        key=lambda entry: len(entry[0]),
        reverse=True,
    )
    return template.render(
        settings,
        native_carrier_sets=carrier_sets,
        native_dispatcher_list=f"{settings['kamailio_release_root']}/current/dispatcher.list",
        native_listen_address=native.address,
        native_ctl_socket=native.ctl_socket,
        native_prefix_routes=prefix_routes,
        scanner_user_agents_regex=scanners.replace("\\", "\\\\").replace('"', '\\"'),
        refused_contact_hosts_regex=contact_hosts.replace("\\", "\\\\"),
    )


def start_native(config: str, native: Instance, workdir: Path, settings: dict) -> None:
    start_unit(config, native, NATIVE_CFG, NATIVE_RUN_DIR, workdir, settings)


def start_unit(
    config: str, instance: Instance, cfg_path: str, run_dir: str, workdir: Path, settings: dict
) -> None:
    """Validate ``config`` and run it in the container as the instance's systemd unit."""
    local = workdir / Path(cfg_path).name
    local.write_text(config)
    run(["podman", "cp", str(local), f"{CONTAINER}:{cfg_path}"])
    in_container("chmod", "0644", cfg_path)
    in_container("kamailio", "-c", "-f", cfg_path)
    pid_file = f"{run_dir}/kamailio.pid"
    # The packaged kamailio.service, as a transient unit: same user, limits and accounting.
    in_container(
        "systemd-run", f"--unit={instance.unit}", "--property=Type=forking",
        "--property=User=kamailio", "--property=Group=kamailio",
        f"--property=RuntimeDirectory={Path(run_dir).name}",
        "--property=RuntimeDirectoryMode=0770", f"--property=PIDFile={pid_file}",
        "--property=AmbientCapabilities=CAP_CHOWN",
        "/usr/sbin/kamailio", "-P", pid_file, "-f", cfg_path,
        "-m", str(settings["kamailio_shm_memory_mb"]),
        "-M", str(settings["kamailio_pkg_memory_mb"]),
        "-x", settings["kamailio_memory_manager"], "-X", settings["kamailio_memory_manager"],
    )  # fmt: skip


def wait_until_answering(instance: Instance) -> None:
    for _ in range(20):
        answered = subprocess.run(
            ["podman", "exec", CONTAINER, "kamcmd", "-s", instance.ctl_socket, "core.uptime"],
            capture_output=True,
            check=False,
        )
        if answered.returncode == 0:
            return
        time.sleep(0.5)
    journal = in_container("journalctl", "-u", instance.unit, "--no-pager", "-n", "30")
    raise BenchError(f"{instance.name} does not answer on {instance.ctl_socket}:\n{journal}")


def worker_counts_match(kemi: Instance, native: Instance) -> None:
    """Both instances must run the same number of processes (workers, timers, ...)."""
    counts = {
        i.name: in_container("kamcmd", "-s", i.ctl_socket, "core.psx").count("IDX:")
        for i in (kemi, native)
    }
    if len(set(counts.values())) != 1:
        raise BenchError(f"the instances run different numbers of processes: {counts}")


# Requests whose answers show the routing decisions; both instances must give the same ones.
# (method, request URI, From, To, To-tag, Max-Forwards), {domain} is a served domain.
PROBES = {
    "keepalive OPTIONS": ("OPTIONS", "sip:{proxy}", "probe@{domain}", "sip:{proxy}", "", 70),
    "REGISTER without credentials": (
        "REGISTER", "sip:{domain}", "bench00000@{domain}", "sip:bench00000@{domain}", "", 70,
    ),
    "REGISTER for a foreign domain": (
        "REGISTER", "sip:elsewhere.test", "a@elsewhere.test", "sip:a@elsewhere.test", "", 70,
    ),
    "Max-Forwards exhausted": (
        "OPTIONS", "sip:bench00001@{domain}", "probe@{domain}", "sip:bench00001@{domain}", "", 0,
    ),
    "INVITE without credentials": (
        "INVITE", "sip:bench00001@{domain}", "bench00000@{domain}", "sip:bench00001@{domain}",
        "", 70,
    ),
    "INVITE from a foreign domain": (
        "INVITE", "sip:bench00001@{domain}", "a@elsewhere.test", "sip:bench00001@{domain}", "", 70,
    ),
    "method that is not a token": (
        "REGISTER|<null>|x", "sip:{domain}", "bench00000@{domain}", "sip:bench00001@{domain}",
        "", 70,
    ),
    "BYE outside any dialog": (
        "BYE", "sip:bench00001@{domain}", "bench00000@{domain}", "sip:bench00001@{domain}",
        "gone", 70,
    ),
}  # fmt: skip


def probe(proxy: str, domain: str, request: tuple) -> str:
    """Send one request from the SIPp address and return the status line of the answer."""
    method, ruri, sender, recipient, to_tag, max_forwards = request
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SIPP_ADDRESS, 0))
        sock.settimeout(2)
        port = sock.getsockname()[1]
        fields = {"proxy": proxy, "domain": domain}
        lines = [
            f"{method} {ruri.format(**fields)} SIP/2.0",
            f"Via: SIP/2.0/UDP {SIPP_ADDRESS}:{port};branch=z9hG4bK{secrets.token_hex(8)}",
            f"Max-Forwards: {max_forwards}",
            f"From: <sip:{sender.format(**fields)}>;tag={secrets.token_hex(4)}",
            f"To: <{recipient.format(**fields)}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {secrets.token_hex(8)}@{SIPP_ADDRESS}",
            f"CSeq: 1 {method}",
            f"Contact: <sip:probe@{SIPP_ADDRESS}:{port}>",
            "User-Agent: sipwave-bench",
            "Content-Length: 0",
        ]
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), (proxy, 5060))
        try:
            answer = sock.recv(65535)
        except TimeoutError:
            return "(no answer)"
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


def same_routing_decisions(kemi: Instance, native: Instance, domain: str) -> None:
    """The native twin must answer like the KEMI router before its speed means anything."""
    differences = []
    for name, request in PROBES.items():
        answers = {i.name: probe(i.address, domain, request) for i in (kemi, native)}
        log(f"  {name}: {answers['kemi']}")
        if answers["kemi"] != answers["native"]:
            differences.append(f"{name}: KEMI {answers['kemi']!r}, native {answers['native']!r}")
    if differences:
        raise BenchError("the native cfg routes differently:\n" + "\n".join(differences))


def cpu_usage_ns(instance: Instance) -> int:
    value = in_container("systemctl", "show", instance.unit, "-p", "CPUUsageNSec", "--value")
    return int(value.strip())


# -- the KEMI floor -----------------------------------------------------------------------------


def reload_router(kemi: Instance) -> None:
    in_container("kamcmd", "-s", kemi.ctl_socket, "app_python3s.reload")


def use_floor_router(kemi: Instance, floor: bool) -> None:
    """Swap the KEMI instance's entry point between the deployed router and the floor.

    Only in the throwaway bench container: the release directory is changed in place, and
    each worker re-imports the entry point at its next request after the reload.
    """
    if floor:
        in_container("cp", "-p", ROUTER_ENTRY, ROUTER_ENTRY_SAVED)
        run(["podman", "cp", str(FLOOR_ROUTER), f"{CONTAINER}:{ROUTER_ENTRY}"])
        in_container("chmod", "0644", ROUTER_ENTRY)
    else:
        in_container("cp", "-p", ROUTER_ENTRY_SAVED, ROUTER_ENTRY)
    reload_router(kemi)


def floor_router_ran(kemi: Instance, since: float) -> bool:
    journal = in_container(
        "journalctl", "-u", kemi.unit, "-o", "cat", "--no-pager", f"--since=@{since:.0f}"
    )
    return FLOOR_LOADED in journal


# -- measuring ----------------------------------------------------------------------------------


def sipp_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def errors_logged_since(instance: Instance, since: float) -> list[str]:
    return in_container(
        "journalctl",
        "-u",
        instance.unit,
        "-p",
        "err",
        "-o",
        "cat",
        "--no-pager",
        f"--since=@{since:.0f}",
    ).splitlines()


def register(instance: Instance, rows: list[list[str]], calls: int, round_: int) -> Measurement:
    since = time.time()
    proxy_before = cpu_usage_ns(instance)
    sipp_before = sipp_cpu_s()
    result = sipp.run(
        "register.xml",
        f"{instance.address}:5060",
        SIPP_ADDRESS,
        rows=rows,
        calls=calls,
        rate=SIPP_RATE,
        limit=SIPP_LIMIT,
        timeout_s=SIPP_TIMEOUT_S,
        trace_messages=False,
    )
    sipp_used = sipp_cpu_s() - sipp_before
    proxy_used_us = (cpu_usage_ns(instance) - proxy_before) / 1000
    if result.returncode not in (0, 1) or result.successful + result.failed != calls:
        raise BenchError(
            f"SIPp against {instance.name} ended with {result.returncode} after "
            f"{result.successful} + {result.failed} of {calls} calls:\n{result.output[-3000:]}"
        )
    errors = errors_logged_since(instance, since)
    if result.failed:
        details = RESULTS / f"failed-{instance.name}-round{round_}.log"
        details.write_text(
            result.output[-20000:] + "\n\nKamailio errors:\n" + "\n".join(errors[-200:]) + "\n"
        )
        log(f"{result.failed} registrations failed against {instance.name}, see {details}")
    return Measurement(
        instance=instance.name,
        round=round_,
        registrations=result.successful,
        failed=result.failed,
        elapsed_s=round(result.elapsed_s, 3),
        per_second=round(result.calls_per_second, 1),
        proxy_cpu_us_per_registration=round(proxy_used_us / max(result.successful, 1), 1),
        proxy_errors_logged=len(errors),
        proxy_core_percent=round(proxy_used_us / 1e4 / result.elapsed_s, 1),
        sipp_cpu_percent=round(100 * sipp_used / result.elapsed_s, 1),
    )


TABLE_HEADER = ("router", "round", "regs", "failed", "secs", "regs/s", "cpu us/reg",
                "proxy core", "errors", "sipp cpu")  # fmt: skip
TABLE_ROW = "{:<7} {:>5} {:>7} {:>6} {:>6} {:>7} {:>11} {:>10} {:>6} {:>8}"


def report(measurements: list[Measurement], instances: list[Instance], cpus: CpuPlan) -> dict:
    print()
    print(TABLE_ROW.format(*TABLE_HEADER))
    waited = False
    native_waited = False
    for m in measurements:
        mark = ""
        if cpus.proxy_cpu is not None and m.proxy_core_percent < PROXY_BOUND_PERCENT:
            mark, waited = " *", True
            native_waited = native_waited or m.instance == "native"
        print(
            TABLE_ROW.format(
                m.instance,
                m.round,
                m.registrations,
                m.failed,
                f"{m.elapsed_s:.2f}",
                f"{m.per_second:.0f}",
                f"{m.proxy_cpu_us_per_registration:.0f}",
                f"{m.proxy_core_percent:.0f}%{mark}",
                m.proxy_errors_logged,
                f"{m.sipp_cpu_percent:.0f}%",
            )
        )
    if waited:
        print(
            f"* the proxy used less than {PROXY_BOUND_PERCENT}% of its core: it waited for "
            "SIPp (other work on the machine, or the most one SIPp process sends here)"
        )
    if cpus.proxy_cpu is None:
        print("one CPU only: SIPp and the proxy share it, the rates are not the proxy's alone")
    summary = {}
    for instance in instances:
        own = [m for m in measurements if m.instance == instance.name]
        summary[instance.name] = {
            "median_per_second": statistics.median(m.per_second for m in own),
            "median_cpu_us_per_registration": statistics.median(
                m.proxy_cpu_us_per_registration for m in own
            ),
            "failed": sum(m.failed for m in own),
        }
    kemi, native = summary["kemi"], summary["native"]
    ratio = kemi["median_per_second"] / native["median_per_second"]
    cpu_ratio = native["median_cpu_us_per_registration"] / kemi["median_cpu_us_per_registration"]
    print()
    for name, values in summary.items():
        print(
            f"{name:<8} median {values['median_per_second']:.0f} registrations/s, "
            f"{values['median_cpu_us_per_registration']:.0f} us proxy CPU per registration, "
            f"{values['failed']} failed"
        )
    print(f"CPU cost ratio native/KEMI: {cpu_ratio:.2f}x")
    floor = summary.get("floor")
    if floor is not None:
        floor_cpu = floor["median_cpu_us_per_registration"]
        bridge_us = floor_cpu - native["median_cpu_us_per_registration"]
        router_us = kemi["median_cpu_us_per_registration"] - floor_cpu
        print(
            f"KEMI floor (the router's KSR calls, no Python logic): CPU cost ratio "
            f"native/floor {native['median_cpu_us_per_registration'] / floor_cpu:.2f}x; "
            f"per registration the app_python3s bridge adds {bridge_us:.0f} us, the router's "
            f"own Python {router_us:.0f} us"
        )
    print(
        f"REGISTER with digest auth: python KEMI {kemi['median_per_second']:.0f}/s, "
        f"native cfg {native['median_per_second']:.0f}/s, ratio {ratio:.2f}x "
        f"(goal >= {GOAL_RATIO:.2f}x)"
    )
    # Below its core's capacity the native instance's rate is SIPp's, not its own: the rates
    # then compare the load generator with itself, and the CPU each registration costs is
    # what predicts the two instances' rates at saturation.
    judged = min(ratio, cpu_ratio) if native_waited else ratio
    if native_waited:
        print(
            "the native instance was not saturated: its rate is SIPp's, so the verdict uses "
            f"the lower of the two ratios, {judged:.2f}x"
        )
    print(f"verdict: {'goal met' if judged >= GOAL_RATIO else 'goal NOT met'} ({judged:.2f}x)")
    return {
        "benchmark": "REGISTER with digest auth",
        "ratio": round(ratio, 3),
        "cpu_cost_ratio": round(cpu_ratio, 3),
        "floor_cpu_cost_ratio": (
            round(
                native["median_cpu_us_per_registration"] / floor["median_cpu_us_per_registration"],
                3,
            )
            if floor is not None
            else None
        ),
        "goal_ratio": GOAL_RATIO,
        "native_saturated": not native_waited,
        "judged_ratio": round(judged, 3),
        "goal_met": judged >= GOAL_RATIO,
        "summary": summary,
        "measurements": [asdict(m) for m in measurements],
    }


def versions() -> dict:
    sipp_banner = subprocess.run(["sipp", "-v"], capture_output=True, text=True, check=False)
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "kamailio": in_container("kamailio", "-v").splitlines()[0].removeprefix("version:").strip(),
        "sipp": next(
            (line.strip() for line in sipp_banner.stdout.splitlines() if "SIPp v" in line), "?"
        ),
        "sipwave": commit.stdout.strip() or "?",
    }


def benchmark(workdir: Path) -> dict:
    settings = proxy_settings()
    cpus = CpuPlan.for_this_host()
    kemi = Instance(
        name="kemi",
        address=settings["kamailio_listen_address"],
        unit="kamailio",
        ctl_socket="unix:/run/kamailio/kamailio_ctl",
    )
    native = Instance(
        name="native",
        address=NATIVE_ADDRESS,
        unit=NATIVE_UNIT,
        ctl_socket=f"unix:{NATIVE_RUN_DIR}/kamailio_ctl",
    )
    # The KEMI instance again, with bench/kemi_floor.py as its router (see use_floor_router).
    floor = Instance(name="floor", address=kemi.address, unit=kemi.unit, ctl_socket=kemi.ctl_socket)
    for address in (kemi.address, native.address, SIPP_ADDRESS):
        sipp.require_loopback(address)

    log(f"starting {CONTAINER}")
    start_container(cpus)
    subscribers = subscriber_rows(settings)
    log(f"deploying the kamailio role (Python KEMI on {kemi.address}) with {ACCOUNTS} accounts")
    deploy_role(subscribers, workdir)
    log(f"starting the native-cfg instance on {native.address}")
    start_native(render_native_cfg(settings, native), native, workdir, settings)
    for instance in (kemi, native):
        wait_until_answering(instance)
    worker_counts_match(kemi, native)
    log("checking that both instances answer alike")
    same_routing_decisions(kemi, native, settings["kamailio_domains"][0])

    # SIPp (and everything else run from here) stays off the proxy's core.
    os.sched_setaffinity(0, cpus.load_cpus)
    contact = f"{SIPP_ADDRESS}:5060"
    rows = [
        [s["username"], s["domain"], sipp.credentials(s["username"], s["password"]), contact]
        for s in subscribers
    ]
    # Every account registered once on each instance: the measured rounds then refresh
    # existing contacts, and the Python workers have imported and run every route.
    log("warm-up: one registration per account on each instance")
    for instance in (kemi, native):
        warmup = register(instance, rows, ACCOUNTS, 0)
        if warmup.failed:
            raise BenchError(f"warm-up against {instance.name}: {warmup.failed} failed")

    measurements = []
    for round_ in range(1, ROUNDS + 1):
        for instance in (kemi, native, floor):
            log(f"round {round_}: {SIPP_CALLS} registrations against {instance.name}")
            if instance is floor:
                swapped_at = time.time()
                use_floor_router(kemi, floor=True)
            try:
                measurements.append(register(instance, rows, SIPP_CALLS, round_))
            finally:
                if instance is floor:
                    use_floor_router(kemi, floor=False)
            if instance is floor and not floor_router_ran(kemi, swapped_at - 1):
                raise BenchError("the floor router was not loaded by the KEMI instance")

    results = report(measurements, [kemi, native, floor], cpus)
    results["sipp"] = {
        "scenario": "tests/sipp/register.xml",
        "calls": SIPP_CALLS,
        "rate": SIPP_RATE,
        "limit": SIPP_LIMIT,
        "accounts": ACCOUNTS,
        "transport": "udp",
        "local_ip": SIPP_ADDRESS,
    }
    results["proxy"] = {
        "children": settings["kamailio_children"],
        "usrloc_db_mode": settings["kamailio_usrloc_db_mode"],
        "kemi": f"{kemi.address}:5060",
        "native": f"{native.address}:5060",
        "pinned_cpu": cpus.proxy_cpu,
        "sipp_cpus": sorted(cpus.load_cpus),
    }
    results["host_load_average"] = os.getloadavg()
    results["versions"] = versions()
    return results


def main() -> int:
    for stale in RESULTS.glob("failed-*.log"):
        stale.unlink()
    return run_in_container("register", CONTAINER, benchmark, "registrations")


if __name__ == "__main__":
    sys.exit(main())
