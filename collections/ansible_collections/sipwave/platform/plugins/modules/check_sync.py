#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: check_sync
short_description: Tell registered phones to fetch their configuration again (SIP NOTIFY)
version_added: 0.3.0
description:
  - For each device, looks up the contacts its SIP identities have registered on this
    Kamailio proxy (C(ul.lookup) over the control socket, all in one C(kamcmd) run) and has
    Kamailio send each contact a NOTIFY with an C(Event) header of C(check-sync) (or the
    vendor's own event) through its transaction layer, to the received address and socket
    of the registration when the phone is behind NAT. The phone then re-fetches its
    provisioning files.
  - Every NOTIFY of a run is started at once (C(tm.t_uac_attrs) without waiting, at most
    O(concurrency) control-socket calls in flight); the router's reply route keeps each
    final answer in the proxy's C(checksync) htable, which the module reads until every
    contact answered or O(deadline) seconds after the task started. A contact that has not
    answered by then is reported C(timed_out); its transaction ends at the deadline too.
  - Per device the outcome is C(answered), C(timed_out), C(no_contact) (nothing is
    registered, so the phone fetches the new files at its next scheduled check or boot) or
    C(error) (a lookup or a NOTIFY could not be started). Only an error leaves the device unsettled,
    so M(sipwave.platform.resync_pending) keeps it owed for the next run.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Looks the contacts up and reports what would be notified; sends nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - kamcmd (Debian package kamailio) and a running Kamailio with the ctl, tm, usrloc and
    htable modules, the C(checksync) htable and the sipwave router (kamailio role).
options:
  devices:
    description:
      - Devices to notify, each with C(mac), C(vendor) and C(identities) (C(user@domain)
        names it may be registered as), as returned in
        M(sipwave.platform.provisioning_configs)'s C(resync).
    type: list
    elements: dict
    required: true
  events:
    description: Event header per vendor; C(default) for the others.
    type: dict
    default: {default: check-sync}
  from_uri:
    description: From URI of the NOTIFY requests.
    type: str
    required: true
  ctl_socket:
    description: Kamailio's binrpc control socket.
    type: str
    default: unix:/run/kamailio/kamailio_ctl
  usrloc_table:
    description: The usrloc domain (table) the registrar saves to.
    type: str
    default: location
  deadline:
    description:
      - Seconds from the start of the task after which phones that have not answered are
        reported C(timed_out) and the task ends.
    type: int
    default: 40
  concurrency:
    description: Control-socket calls that start NOTIFYs at the same time.
    type: int
    default: 8
"""

EXAMPLES = r"""
- name: Tell the re-provisioned phones to re-sync
  sipwave.platform.check_sync:
    devices: "{{ provisioning_result.resync }}"
    from_uri: sip:provisioning@sip.example.test
    deadline: 40
"""

RETURN = r"""
counts:
  description:
    - Devices per outcome (C(answered), C(timed_out), C(no_contact), C(error)), and NOTIFYs
      sent (C(contacts)), answered with 2xx (C(notified)) or another final status
      (C(refused)), timed out (C(timed_out_contacts)) and not started (C(failed)).
  type: dict
  returned: always
devices:
  description:
    - Per device its MAC, C(outcome), C(settled) (the outcome is final) and, per contact,
      the contact, its C(outcome) and the answer's status.
  type: list
  elements: dict
  returned: always
elapsed:
  description: Seconds the task took.
  type: float
  returned: always
"""

import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.check_sync import (  # noqa: E402
    ANSWERED,
    ERROR,
    EVENT,
    HTABLE_CHECK_SYNC,
    TIMED_OUT,
    DeviceReport,
    Notified,
    answered_status,
    batch_script,
    counts,
    lookup_answer,
    new_call_id,
    notify_headers,
    split_batch,
    valid_identity,
)

POLL_SECONDS = 0.5
MIN_TRANSACTION_MS = 1000


class Proxy:
    """Kamailio's control socket through kamcmd."""

    def __init__(self, module: AnsibleModule, deadline_at: float) -> None:
        self.module = module
        self.socket = module.params["ctl_socket"]
        self.deadline_at = deadline_at

    def _run(self, args: list[str], script: str | None = None) -> subprocess.CompletedProcess:
        command = ["kamcmd", "-s", self.socket, *args]
        timeout = max(5.0, self.deadline_at - time.monotonic() + 10)
        try:
            return subprocess.run(
                command, input=script, capture_output=True, text=True, timeout=timeout,
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(command, 124, "", "timed out")
        except OSError as exc:
            self.module.fail_json(msg=f"cannot run kamcmd: {exc.strerror}")
        raise AssertionError("unreachable")

    def batch(self, commands: list[str], what: str) -> list[str]:
        """One kamcmd process answers every command (one RPC a line) in order."""
        if not commands:
            return []
        run = self._run([], batch_script(commands))
        if run.returncode != 0 and not run.stdout:
            self.module.fail_json(msg=f"{what} failed: {(run.stderr or 'no answer')[:200]}")
        return split_batch(run.stdout, len(commands))

    def start_notify(self, contact: dict, headers: str) -> str:
        """Start one NOTIFY through tm, its transaction ending at the deadline; '' when
        started, else the reason."""
        remaining_ms = int((self.deadline_at - time.monotonic()) * 1000)
        run = self._run([
            "tm.t_uac_attrs", f"s:fr_timeout={max(MIN_TRANSACTION_MS, remaining_ms)}",
            "s:NOTIFY", "s:" + contact["address"],
            # usrloc keeps the source of a registration behind NAT as a URI (sip:address:port)
            "s:" + (contact["received"] or "."), "s:" + (contact["socket"] or "."),
            "s:" + headers,
            "s:",  # no body (kamcmd sends a filler text when the argument is left out)
        ])  # fmt: skip
        answer = (run.stdout + run.stderr).strip()
        if run.returncode != 0 or answer.startswith("error"):
            return answer[:120] or f"kamcmd exited {run.returncode}"
        return ""


def look_up(proxy: Proxy, devices: list[dict], table: str) -> list[tuple[DeviceReport, list]]:
    """Each device's report and its (identity, contact) pairs, contacts counted once."""
    identities = sorted({
        str(identity) for device in devices for identity in device.get("identities") or []
        if valid_identity(str(identity))
    })  # fmt: skip
    answers = proxy.batch([f"ul.lookup {table} {i}" for i in identities], "ul.lookup")
    contacts_of = {i: lookup_answer(a) for i, a in zip(identities, answers, strict=True)}
    if answers and all(found is None for found in contacts_of.values()):
        proxy.module.fail_json(msg=f"ul.lookup failed: {answers[0][:200]}")
    planned = []
    for device in devices:
        report = DeviceReport(str(device.get("mac")), str(device.get("vendor") or ""))
        targets, seen = [], set()
        for identity in map(str, device.get("identities") or []):
            found = contacts_of.get(identity)
            if found is None:
                report.lookup_failed = True
                continue
            for contact in found:
                if contact["address"] not in seen:
                    seen.add(contact["address"])
                    targets.append((identity, contact))
        planned.append((report, targets))
    return planned


def send_all(proxy: Proxy, planned: list, events: dict, from_uri: str) -> list[Notified]:
    """Start every NOTIFY, at most ``concurrency`` control-socket calls at a time."""
    jobs = []
    for report, targets in planned:
        event = event_of(events, report.vendor)
        for identity, contact in targets:
            notified = Notified(contact["address"], event, new_call_id())
            report.contacts.append(notified)
            jobs.append((notified, contact, notify_headers(from_uri, identity, event,
                                                           notified.call_id)))  # fmt: skip

    def start(job) -> None:
        notified, contact, headers = job
        failure = proxy.start_notify(contact, headers)
        notified.outcome, notified.status = (ERROR, "error: " + failure) if failure else (
            TIMED_OUT, "")  # fmt: skip

    with ThreadPoolExecutor(max_workers=max(1, proxy.module.params["concurrency"])) as pool:
        list(pool.map(start, jobs))
    return [job[0] for job in jobs]


def event_of(events: dict, vendor: str) -> str:
    return str(events.get(vendor, events.get("default", "check-sync")))


def collect(proxy: Proxy, sent: list[Notified]) -> None:
    """Read the answers from the proxy's htable until all are in or the deadline passed."""
    waiting = [n for n in sent if n.outcome == TIMED_OUT]
    while waiting:
        answers = proxy.batch(
            [f"htable.get {HTABLE_CHECK_SYNC} {n.call_id}" for n in waiting], "htable.get"
        )
        for notified, answer in zip(waiting, answers, strict=True):
            status = answered_status(answer)
            if status is not None:
                notified.outcome, notified.status = ANSWERED, str(status)
        waiting = [n for n in waiting if n.outcome == TIMED_OUT]
        if not waiting or time.monotonic() >= proxy.deadline_at:
            break
        time.sleep(min(POLL_SECONDS, max(0.0, proxy.deadline_at - time.monotonic())))
    for notified in waiting:
        notified.status = "408"  # as tm reports a phone that never answered


def main() -> None:
    started = time.monotonic()
    module = AnsibleModule(
        argument_spec={
            "devices": {"type": "list", "elements": "dict", "required": True},
            "events": {"type": "dict", "default": {"default": "check-sync"}},
            "from_uri": {"type": "str", "required": True},
            "ctl_socket": {"type": "str", "default": "unix:/run/kamailio/kamailio_ctl"},
            "usrloc_table": {"type": "str", "default": "location"},
            "deadline": {"type": "int", "default": 40},
            "concurrency": {"type": "int", "default": 8},
        },
        supports_check_mode=True,
    )
    params = module.params
    bad_events = sorted(str(e) for e in params["events"].values() if not EVENT.fullmatch(str(e)))
    if bad_events:
        module.fail_json(msg=f"events: not an event package name: {', '.join(bad_events)}")
    devices = params["devices"]
    proxy = Proxy(module, started + params["deadline"])
    planned = look_up(proxy, devices, params["usrloc_table"])
    if module.check_mode:
        for report, targets in planned:
            event = event_of(params["events"], report.vendor)
            report.contacts = [Notified(c["address"], event, status="not sent (check mode)")
                               for _identity, c in targets]  # fmt: skip
    else:
        collect(proxy, send_all(proxy, planned, params["events"], params["from_uri"]))
    reports = [report for report, _targets in planned]
    module.exit_json(
        changed=any(report.contacts for report in reports),
        counts=counts(reports),
        devices=[report.as_dict() for report in reports],
        elapsed=round(time.monotonic() - started, 2),
    )


if __name__ == "__main__":
    main()
