#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: check_sync
short_description: Tell registered phones to fetch their configuration again (SIP NOTIFY)
version_added: 0.3.0
description:
  - For each device, looks up the contacts its SIP identities have registered on this
    Kamailio proxy (C(ul.lookup) over the control socket) and has Kamailio send each
    contact a NOTIFY with an C(Event) header of C(check-sync) (or the vendor's own event)
    through its transaction layer (C(tm.t_uac_wait_block)), to the received address and
    socket of the registration when the phone is behind NAT. The phone then re-fetches its
    provisioning files.
  - Devices without a registered contact are counted and left alone; they fetch the new
    files at their next scheduled check or boot.
  - Each device is reported C(settled) when the outcome is final (every contact answered
    with a SIP status, or none was registered). A failed control-socket call leaves it
    unsettled, so M(sipwave.platform.resync_pending) keeps it owed for the next run.
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
  - kamcmd (Debian package kamailio) and a running Kamailio with the ctl, tm and usrloc
    modules.
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
  timeout:
    description: Seconds to wait for one phone's answer.
    type: int
    default: 35
"""

EXAMPLES = r"""
- name: Tell the re-provisioned phones to re-sync
  sipwave.platform.check_sync:
    devices: "{{ provisioning_result.resync }}"
    from_uri: sip:provisioning@sip.example.test
"""

RETURN = r"""
counts:
  description: Devices, registered contacts found, NOTIFYs answered with 2xx, and failed.
  type: dict
  returned: always
devices:
  description:
    - Per device its MAC, C(settled) (the outcome is final) and, per contact, the contact
      and the answer's status.
  type: list
  elements: dict
  returned: always
"""

import re  # noqa: E402
import secrets  # noqa: E402
import subprocess  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.resync_pending import (  # noqa: E402
    all_answered,
)

_FIELD = re.compile(r"^\s*(Address|Received|Socket):\s*(.*?)\s*$")
_STATUS = re.compile(r"^\s*code:\s*([1-6][0-9][0-9])\s*$", re.M)
NOT_SET = "[not set]"


def parse_contacts(output: str) -> list[dict]:
    """Contacts (address, received, socket) from kamcmd's ``ul.lookup`` output."""
    contacts: list[dict] = []
    for text in output.splitlines():
        found = _FIELD.match(text)
        if not found:
            continue
        name, value = found.groups()
        if name == "Address":
            contacts.append({"address": value, "received": None, "socket": None})
        elif contacts and value and value != NOT_SET:
            contacts[-1][name.lower()] = value
    return contacts


def _kamcmd(module: AnsibleModule, *args: str) -> subprocess.CompletedProcess:
    command = ["kamcmd", "-s", module.params["ctl_socket"], *args]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=module.params["timeout"],
            check=False,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 124, "", "timed out")
    except OSError as exc:
        module.fail_json(msg=f"cannot run kamcmd: {exc.strerror}")
    raise AssertionError("unreachable")


def lookup(module: AnsibleModule, identity: str) -> list[dict]:
    run = _kamcmd(module, "ul.lookup", module.params["usrloc_table"], "s:" + identity)
    # kamcmd exits 0 also when the RPC failed; the answer then starts with "error:".
    answer = (run.stdout + run.stderr).strip()
    if run.returncode != 0 or answer.startswith("error:"):
        if "not found" in answer:
            return []  # not registered
        module.fail_json(msg=f"ul.lookup {identity} failed: {answer[:200]}")
    return parse_contacts(run.stdout)


def _headers(from_uri: str, identity: str, event: str) -> str:
    return (
        f"From: <{from_uri}>;tag={secrets.token_hex(6)}\r\n"
        f"To: <sip:{identity}>\r\n"
        f"Event: {event}\r\n"
        "Subscription-State: terminated\r\n"
        "Max-Forwards: 70\r\n"
    )


def notify(module: AnsibleModule, contact: dict, identity: str, event: str) -> str:
    """Send one NOTIFY through Kamailio's transaction layer; the answer's status code."""
    # usrloc keeps the source of a registration behind NAT as a URI (sip:address:port)
    next_hop = contact["received"] or "."
    run = _kamcmd(
        module,
        "tm.t_uac_wait_block",
        "s:NOTIFY",
        "s:" + contact["address"],
        "s:" + next_hop,
        "s:" + (contact["socket"] or "."),
        "s:" + _headers(module.params["from_uri"], identity, event),
        "s:",  # no body (kamcmd sends a filler text when the argument is left out)
    )
    status = _STATUS.search(run.stdout)
    if run.returncode != 0 or status is None:
        return "error: " + (run.stderr or run.stdout).strip()[:120]
    return status.group(1)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "devices": {"type": "list", "elements": "dict", "required": True},
            "events": {"type": "dict", "default": {"default": "check-sync"}},
            "from_uri": {"type": "str", "required": True},
            "ctl_socket": {"type": "str", "default": "unix:/run/kamailio/kamailio_ctl"},
            "usrloc_table": {"type": "str", "default": "location"},
            "timeout": {"type": "int", "default": 35},
        },
        supports_check_mode=True,
    )
    events = module.params["events"]
    counts = {"devices": 0, "contacts": 0, "notified": 0, "failed": 0, "unregistered": 0}
    report = []
    for device in module.params["devices"]:
        counts["devices"] += 1
        event = events.get(str(device.get("vendor")), events.get("default", "check-sync"))
        seen: set[str] = set()
        answers = []
        for identity in device.get("identities") or []:
            for contact in lookup(module, str(identity)):
                if contact["address"] in seen:
                    continue
                seen.add(contact["address"])
                counts["contacts"] += 1
                status = "not sent (check mode)"
                if not module.check_mode:
                    status = notify(module, contact, str(identity), event)
                    counts["notified" if status.startswith("2") else "failed"] += 1
                answers.append({"contact": contact["address"], "event": event, "status": status})
        if not seen:
            counts["unregistered"] += 1
        settled = not module.check_mode and all_answered(a["status"] for a in answers)
        report.append({"mac": device.get("mac"), "settled": settled, "contacts": answers})
    module.exit_json(changed=counts["contacts"] > 0, counts=counts, devices=report)


if __name__ == "__main__":
    main()
