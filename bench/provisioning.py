"""Phone provisioning (make bench BENCH=provisioning).

1. Render the files of 100,000 devices in one sipwave.platform.provisioning_configs call on
   the controller (the whole ansible-playbook run timed, export reading, token derivation and
   templates included; goal <= 60 s), then the same run again, which must change nothing.
2. A naive baseline in the same run: per device, load the template from disk, render it and
   write the file (no compiled-template reuse, no change check), on a subset; printed as the
   ratio of the per-device costs.
3. The config requests per second nginx serves: the provisioning role deployed into a lab
   container on 127.0.30.51 (label io.sipwave.lab=bench), ApacheBench (Debian apache2-utils)
   on loopback fetching one device's config at its token path, keep-alive and with a new TLS
   connection per request (as phones do), and a credential-free common file as the
   reference for what the token path costs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collections"))

import make_sample_export  # the tools directory is not a package
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import device_token
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (
    read_export,
)
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import (
    VENDOR_FILES,
    file_names,
)
from benchlib import (
    PROJECT,
    RESULTS,
    BenchError,
    logger,
    playbook,
    remove_lab_container,
    start_lab_container,
    write_results,
)

TEMPLATES = PROJECT / "roles/provisioning/templates/phones"
# The sample export gives a device to 5 accounts of 6: 120,000 accounts hold 100,000 devices.
DEVICES = int(os.environ.get("SIPWAVE_BENCH_PROV_DEVICES", "100000"))
NAIVE_DEVICES = int(os.environ.get("SIPWAVE_BENCH_PROV_NAIVE", "5000"))
AB_REQUESTS = int(os.environ.get("SIPWAVE_BENCH_PROV_REQUESTS", "20000"))
AB_CONCURRENCY = 8
SITE_SECRET = "bench-provisioning-site-secret"
PLAN = {"country_code": "48", "national_lengths": [9]}
SITE = {"provisioning_url": "https://127.0.30.51", "sip_server": "127.0.30.11", "sip_port": 5060,
        "sip_transport": "udp", "ntp_server": "", "resync_minutes": 1440}  # fmt: skip
CONTAINER = "sipwave-bench-prov"
PROV_ADDRESS = "127.0.30.51"
GOAL_RENDER_S = 60.0


log = logger("provisioning")


def states_of(export_path: Path) -> str:
    """Every account migrated: one in ten in phase 2, the others in phase 1 (the value
    account_states returns)."""
    export = read_export(str(export_path), plan_from_dict(PLAN))
    rows = []
    for index, login in enumerate(export.accounts):
        if index % 10 == 0:
            rows.append([login, "phase2", f"tnf{login}", "sip.sipwave.test"])
        else:
            rows.append([login, "phase1", login, "ip.tanifon.pl"])
    return json.dumps([["login", "state", "current_username", "current_domain"], rows])


def naive_render(export_path: Path, output: Path, limit: int) -> tuple[float, int]:
    """Per device: a new Jinja2 environment, the template read from disk, rendered, written."""
    import jinja2
    from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import (
        _one_line,
        _xml_escape,
    )

    export = read_export(str(export_path), plan_from_dict(PLAN))
    devices = [(a, d) for a in export.accounts.values() for d in a.devices][:limit]
    started = time.monotonic()
    for account, device in devices:
        token = device_token(SITE_SECRET, device.mac)
        directory = output / token
        directory.mkdir(parents=True, exist_ok=True)
        for template_name, file_name in file_names(device.vendor, device.mac):
            environment = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
            )  # fmt: skip
            environment.filters.update(xml=_xml_escape, oneline=_one_line)
            text = environment.get_template(template_name).render(
                mac=device.mac, mac_upper=device.mac.upper(), vendor=device.vendor,
                model=device.model, device_url=f"{SITE['provisioning_url']}/p/{token}/",
                site=SITE,
                line={"login": account.login, "username": account.login,
                      "auth_username": account.login, "domain": account.domain,
                      "display_name": account.display_name,
                      "password": account.password or None, "phase": 1},
            )  # fmt: skip
            (directory / file_name).write_text(text, encoding="utf-8")
    return time.monotonic() - started, len(devices)


# -- nginx ------------------------------------------------------------------------------------


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    completed = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if check and completed.returncode != 0:
        raise BenchError(f"podman {' '.join(args[:2])}: {completed.stderr.strip()[-500:]}")
    return completed


def start_container() -> None:
    remove_lab_container(CONTAINER)
    start_lab_container(CONTAINER)


def ab(url: str, keepalive: bool, ca_file: Path) -> dict:
    """ApacheBench against nginx on loopback; bounded by request count and a time limit."""
    del ca_file  # ab does not verify certificates; the URL is loopback only
    if not url.startswith(f"https://{PROV_ADDRESS}/"):
        raise BenchError("the load generator only targets the bench container on loopback")
    # -t before -n: a time limit alone makes ab send 50,000 requests
    command = ["ab", "-q", "-t", "60", "-n", str(AB_REQUESTS), "-c", str(AB_CONCURRENCY),
               "-s", "10", "-B", "127.0.30.100"]  # fmt: skip
    if keepalive:
        command.append("-k")
    completed = subprocess.run([*command, url], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BenchError(f"ab failed: {completed.stderr.strip()[-500:]}")
    text = completed.stdout

    def number(pattern: str) -> float:
        found = re.search(pattern, text)
        return float(found.group(1)) if found else 0.0

    return {
        "requests": int(number(r"Complete requests:\s+(\d+)")),
        "failed": int(number(r"Failed requests:\s+(\d+)")),
        "non_2xx": int(number(r"Non-2xx responses:\s+(\d+)")),
        "requests_per_second": number(r"Requests per second:\s+([\d.]+)"),
        "keepalive": keepalive,
    }


def nginx_benchmark(workdir: Path) -> dict:
    export = PROJECT / "inventories/lab/files/legacy_export.csv"
    states = states_of(export)
    log("starting the bench container and deploying the provisioning role")
    start_container()
    inventory = workdir / "inventory.yml"
    inventory.write_text(json.dumps({"provisioning": {"hosts": {CONTAINER: {
        "ansible_connection": "containers.podman.podman",
        "ansible_python_interpreter": "/usr/bin/python3"}}}}))  # fmt: skip
    elapsed, counts, _ = playbook(
        "provisioning_nginx.yml",
        {"bench_export": str(export), "bench_states": states, "bench_address": PROV_ADDRESS},
        workdir, inventory=str(inventory), local=False,
    )  # fmt: skip
    log(f"role deployed in {elapsed:.0f} s ({counts.get('changed', 0)} changes)")
    ca_file = workdir / "ca.crt"
    ca_file.write_text(
        podman("exec", CONTAINER, "cat", "/etc/sipwave-provisioning/tls/ca.crt").stdout
    )
    parsed = read_export(str(export), plan_from_dict(PLAN))
    account = next(
        a for a in parsed.accounts.values() if a.devices and a.devices[0].vendor == "yealink"
    )
    device = account.devices[0]
    token = device_token(SITE_SECRET, device.mac)
    config_url = f"https://{PROV_ADDRESS}/p/{token}/{device.mac}.cfg"
    common_url = f"https://{PROV_ADDRESS}/common/y000000000000.cfg"
    figures = {}
    for name, url, keepalive in (
        ("config_keepalive", config_url, True),
        ("common_keepalive", common_url, True),
        ("config_new_connection", config_url, False),
    ):
        log(f"ab: {name}")
        figures[name] = ab(url, keepalive, ca_file)
        if figures[name]["non_2xx"] or figures[name]["failed"]:
            raise BenchError(f"{name}: {figures[name]}")
    return figures


def benchmark(workdir: Path) -> dict:
    accounts = DEVICES * 6 // 5
    log(f"writing an export of {accounts} accounts ({DEVICES} devices)")
    export = workdir / "export.csv"
    export.write_bytes(make_sample_export.build(accounts, seed=31, waves=["bench"], bad_rows=False))
    states_file = workdir / "states.json"
    states_file.write_text(states_of(export))
    render_vars = {"bench_export": str(export), "bench_states_file": str(states_file),
                   "bench_output": str(workdir / "devices"), "bench_site": SITE}  # fmt: skip

    log(f"one module call: {DEVICES} devices")
    render_s, render_recap, _ = playbook("provisioning_render.yml", render_vars, workdir)
    files = sum(len(files) for _, _, files in os.walk(workdir / "devices"))
    if render_recap.get("changed") != 1:
        raise BenchError(f"the render run changed nothing: {render_recap}")
    log(f"no-change re-run: {DEVICES} devices")
    rerun_s, rerun_recap, _ = playbook("provisioning_render.yml", render_vars, workdir)
    if rerun_recap.get("changed") != 0:
        raise BenchError(f"the re-run changed something: {rerun_recap}")

    log(f"naive baseline: {NAIVE_DEVICES} devices, template loaded and written per device")
    naive_s, naive_devices = naive_render(export, workdir / "naive", NAIVE_DEVICES)
    bulk_per_device = render_s / DEVICES
    naive_per_device = naive_s / naive_devices
    ratio = naive_per_device / bulk_per_device
    shutil.rmtree(workdir / "devices", ignore_errors=True)
    shutil.rmtree(workdir / "naive", ignore_errors=True)

    nginx = nginx_benchmark(workdir)
    print()
    print(
        f"provisioning, one module call: {DEVICES} devices ({files} files) in {render_s:.1f} s "
        f"(goal <= {GOAL_RENDER_S:.0f} s), {bulk_per_device * 1e6:.0f} us per device"
    )
    print(f"provisioning, no-change re-run: {rerun_s:.1f} s, changed=0")
    print(f"provisioning, naive per-device render: {naive_devices} devices in {naive_s:.1f} s, "
          f"{naive_per_device * 1e6:.0f} us per device; one call is {ratio:.1f}x faster "
          "per device (whole playbook run against the naive loop's rendering alone)")  # fmt: skip
    for name, figure in nginx.items():
        print(f"nginx {name}: {figure['requests_per_second']:.0f} requests/s "
              f"({figure['requests']} requests, {AB_CONCURRENCY} concurrent)")  # fmt: skip
    token_cost = nginx["config_keepalive"]["requests_per_second"] / max(
        nginx["common_keepalive"]["requests_per_second"], 1.0
    )
    print(
        f"nginx: a device config at its token path is served at {token_cost:.2f}x the rate "
        "of a common file"
    )
    return {
        "benchmark": "phone provisioning: render in one call; nginx config requests/s",
        "render": {"devices": DEVICES, "files": files, "seconds": round(render_s, 2),
                   "goal_seconds": GOAL_RENDER_S, "goal_met": render_s <= GOAL_RENDER_S},
        "rerun": {"devices": DEVICES, "seconds": round(rerun_s, 2), "changed": 0},
        "naive": {"devices": naive_devices, "seconds": round(naive_s, 2)},
        "ratio_naive_per_device": round(ratio, 1),
        "nginx": nginx,
        "nginx_config_vs_common": round(token_cost, 2),
        "versions": {"vendors": sorted(VENDOR_FILES)},
        "host_load_average": os.getloadavg(),
    }  # fmt: skip


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="sipwave-bench-prov-") as workdir:
            results = benchmark(Path(workdir))
    except BenchError as error:
        print(f"bench provisioning failed: {error}", file=sys.stderr)
        return 1
    finally:
        if not os.environ.get("SIPWAVE_BENCH_KEEP"):
            remove_lab_container(CONTAINER)
    log(f"results written to {write_results('provisioning', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
