"""Failures between the steps of a provisioning run: a reload nginx did not take, and a run
that wrote the phones' files but stopped before telling them to re-sync.

Runs after test_provisioning.py (file order); every test here leaves the provisioning host
as converge made it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import (
    LEGACY_DOMAIN,
    PROJECT,
    PROV_CONTAINER,
    PROXY,
    PROXY_CONTAINER,
    Client,
    in_container,
    one_per_vendor,
)
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook
from test_provisioning import fetch, recap_changed

PHONE_ADDRESS = "127.0.22.202"  # provisioning_ban_ignore: never banned
MIB = 1024 * 1024
BUSY_PORT = 8088
METRICS_PORT = 8080  # provisioning_metrics_port of the scenario
PENDING_FILE = "/srv/sipwave-provisioning/resync-pending.json"
CTL_SOCKET = "/run/kamailio/kamailio_ctl"
UAS_ADDRESS = "127.0.22.111"
UAS_PORT = 5099
GIGASET = next(p for p in one_per_vendor() if p.vendor == "gigaset")
SITE_TEMPLATES = "molecule/provisioning/site-templates"


def shared_zone_sizes() -> list[int]:
    """Sizes of the shared memory mappings (nginx's zones) of a serving nginx worker."""
    # a serving worker ("nginx: worker process"; not one "... is shutting down")
    script = (
        "for p in $(ps -C nginx -o pid=,args= | awk '/worker process *$/ {print $1}'); do"
        " cat /proc/$p/maps; break; done"
    )
    maps = in_container(PROV_CONTAINER, "sh", "-c", script).stdout
    sizes = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "rw-s" and fields[5] == "/dev/zero":
            start, end = (int(value, 16) for value in fields[0].split("-"))
            sizes.append(end - start)
    assert sizes, maps
    return sizes


def listening_ports() -> set[int]:
    """nginx's ports for the phones: not its metrics listener (test_nginx_metrics.py), nor the
    nginx exporter's port."""
    listening = in_container(PROV_CONTAINER, "ss", "-Hltnp").stdout
    ports = {
        int(line.split()[3].rsplit(":", 1)[1])
        for line in listening.splitlines()
        if '"nginx"' in line
    }
    return ports - {METRICS_PORT}


@pytest.fixture(scope="module")
def phone_client(tls_context):
    client = Client(PHONE_ADDRESS, tls_context)
    yield client
    client.close()


# -- nginx: a new zone size is in effect; a reload the master refused is not a success ---------


@pytest.fixture(scope="module")
def bigger_zone():
    run = run_playbook("provisioning.yml", {"provisioning_rate_zone_size": "12m"}, verbosity=1)
    return run, shared_zone_sizes()


def test_a_changed_zone_size_is_in_effect_in_the_running_workers(bigger_zone):
    run, sizes = bigger_zone
    assert run.returncode == 0, run.stdout[-3000:]
    assert 12 * MIB in sizes, sizes
    assert 10 * MIB not in sizes, sizes


def test_the_reload_was_checked_and_reported_as_taken(bigger_zone):
    run, _ = bigger_zone
    assert re.search(r'action"?: "?reloaded', run.stdout), run.stdout[-3000:]


@pytest.fixture(scope="module")
def refused_reload(bigger_zone, phone_client):
    """The plain-HTTP port moved to one another process holds: nginx -t passes, the reload
    command succeeds, and the master refuses the configuration (it cannot bind)."""
    holder = subprocess.Popen(
        ["podman", "exec", PROV_CONTAINER, "sh", "-c",
         f"echo $$; exec python3 -m http.server --bind 127.0.22.51 {BUSY_PORT} 2>/dev/null"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    holder_pid = holder.stdout.readline().strip()
    assert holder_pid.isdigit(), holder_pid
    try:
        moved = {"provisioning_rate_zone_size": "12m", "provisioning_http_port": BUSY_PORT}
        run = run_playbook("provisioning.yml", moved)
        status, _ = fetch(phone_client, GIGASET, GIGASET.files[0])
        serving = (status, listening_ports(), shared_zone_sizes())
    finally:
        in_container(PROV_CONTAINER, "kill", holder_pid)
        holder.wait(timeout=30)
    rerun = run_playbook("provisioning.yml", moved)
    return run, serving, rerun, listening_ports()


def test_a_reload_the_master_refused_fails_the_play_naming_the_reason(refused_reload):
    run, _, _, _ = refused_reload
    assert run.returncode != 0
    assert "nginx refused the new configuration on reload" in run.stdout, run.stdout[-3000:]
    assert f"127.0.22.51:{BUSY_PORT} failed (98: Address already in use)" in run.stdout


def test_the_previous_configuration_keeps_serving_after_the_refusal(refused_reload):
    _, (status, ports, sizes), _, _ = refused_reload
    assert status == 200
    assert ports == {80, 443}
    assert 12 * MIB in sizes


def test_the_next_run_loads_the_configuration_nginx_refused(refused_reload):
    _, _, rerun, ports = refused_reload
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert ports == {BUSY_PORT, 443}
    client = Client(PHONE_ADDRESS, None, port=BUSY_PORT)
    status, _ = client.get("/common/y000000000000.cfg")
    client.close()
    assert status == 200


# -- a run stopped after writing the files, before its NOTIFYs ----------------------------------


def pending() -> str:
    return in_container(PROV_CONTAINER, "sh", "-c", f"cat {PENDING_FILE} 2>/dev/null").stdout


@pytest.fixture(scope="module")
def changed_template(tmp_path_factory):
    """The site's override directory with the Gigaset template changed: every Gigaset
    phone's file changes, nothing else."""
    directory = tmp_path_factory.mktemp("site-templates")
    shutil.copytree(PROJECT / SITE_TEMPLATES, directory, dirs_exist_ok=True)
    template = directory / "phones" / "gigaset" / "mac.xml.j2"
    template.write_text(template.read_text().replace("sipwave-site-override", "sipwave-site-v2"))
    return {"provisioning_template_overrides_dir": str(directory)}


@pytest.fixture(scope="module")
def interrupted(refused_reload, changed_template, phone_client):
    """The Gigaset phone registers (a SIPp UAS as its contact); the run that changes its
    file fails at the NOTIFY step: the proxy's control socket is out of reach (moved away
    for the run, as if Kamailio were being restarted). The run is also the one that brings
    nginx's port and zone size back to the defaults after the refused reload (one run fewer
    than a run of its own)."""
    uas, workdir = sipp.run(
        "notify_uas.xml", PROXY, UAS_ADDRESS, local_port=UAS_PORT, background=True,
        timeout_s=400,
    )  # fmt: skip
    row = [GIGASET.login, LEGACY_DOMAIN, sipp.credentials(GIGASET.login, GIGASET.password),
           f"{UAS_ADDRESS}:{UAS_PORT}"]  # fmt: skip
    registered = sipp.run("register.xml", PROXY, "127.0.22.112", rows=[row])
    assert registered.successful == 1, registered.output
    moved = in_container(PROXY_CONTAINER, "mv", CTL_SOCKET, CTL_SOCKET + ".away")
    assert moved.returncode == 0, moved.stderr
    try:
        run = run_playbook("provisioning.yml", changed_template)
    finally:
        in_container(PROXY_CONTAINER, "mv", CTL_SOCKET + ".away", CTL_SOCKET)
    nginx_state = (listening_ports(), shared_zone_sizes())
    messages = workdir / "messages.log"
    heard = messages.read_text() if messages.exists() else ""
    _, served = fetch(phone_client, GIGASET, GIGASET.files[0])
    return run, heard, served, pending(), nginx_state, (uas, workdir)


@pytest.fixture(scope="module")
def rerun(interrupted, changed_template):
    uas, workdir = interrupted[-1]
    run = run_playbook("provisioning.yml", changed_template)
    return run, sipp.wait(uas, workdir, timeout_s=60)


def test_the_defaults_come_back(interrupted):
    _, _, _, _, (ports, sizes), _ = interrupted
    assert ports == {80, 443}
    assert 10 * MIB in sizes and 12 * MIB not in sizes, sizes


def test_the_interrupted_run_fails_after_writing_the_new_file(interrupted):
    run, heard, served, _, _, _ = interrupted
    assert run.returncode != 0
    assert "ul.lookup" in run.stdout, run.stdout[-3000:]
    assert "sipwave-site-v2" in served
    assert "NOTIFY" not in heard


def test_the_provisioning_host_keeps_the_phone_owed_a_notify(interrupted):
    _, _, _, owed, _, _ = interrupted
    assert GIGASET.mac in owed
    assert f"{GIGASET.login}@{LEGACY_DOMAIN}" in owed


def test_the_rerun_tells_the_phone_it_still_owed(rerun):
    run, uas = rerun
    assert run.returncode == 0, run.stdout[-3000:]
    assert uas.successful == 1, uas.output + uas.messages
    assert "Event: check-sync" in uas.messages
    assert pending() == ""  # every owed phone was settled


def test_a_third_run_sends_nothing_and_changes_nothing(rerun, changed_template):
    run = run_playbook("provisioning.yml", changed_template)
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap_changed(run.stdout, PROV_CONTAINER) == 0
    assert recap_changed(run.stdout, PROXY_CONTAINER) == 0
    notify_task = run.stdout.split("TASK [Send check-sync", 1)[1].split("TASK [", 1)[0]
    assert "skipping:" in notify_task and "changed:" not in notify_task, notify_task


def test_the_site_template_comes_back(rerun, phone_client):
    # the UAS has gone: its registration would only hold the next NOTIFY for a time-out
    aor = f"{GIGASET.login}@{LEGACY_DOMAIN}"
    in_container(PROXY_CONTAINER, "kamcmd", "ul.rm", "location", aor)
    run = run_playbook("provisioning.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    _, served = fetch(phone_client, GIGASET, GIGASET.files[0])
    assert "sipwave-site-v2" not in served
    assert "sipwave-site-override" in served
    assert pending() == ""
