#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: provisioning_configs
short_description: Render every phone's provisioning files in one call, writing only changes
version_added: 0.3.0
description:
  - Renders the files each device's phone requests (per vendor, see the collection README)
    from Jinja2 templates into C(<output_dir>/<token>/<file>), where the token is derived
    from the device's MAC and the site secret. Only files whose content or mode differs are
    written, each atomically (temporary file and rename); files and token directories of
    devices no longer listed are removed.
  - The action plugin of the same name runs on the controller first. It reads the legacy
    export, takes each account's migration state (phase 1 or phase 2 credentials), derives
    the tokens, loads the templates (a site override directory first, then the role's) and
    hands the devices to the module in a private temporary file.
  - With O(pending_file), the devices whose existing files change are recorded there as
    owed a re-sync (check-sync NOTIFY) before any of their files is overwritten; the
    result's C(resync) lists every owed device, also those an earlier, interrupted run
    recorded. M(sipwave.platform.resync_pending) removes them once they were told.
  - The result holds counts, MACs and file names; never a password or a token.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Renders everything and compares, writes and removes nothing.
  diff_mode:
    support: full
    details: One line per created, updated or removed file (MAC and file name, no content).
  platform:
    platforms: posix
requirements:
  - python3-jinja2 on the target host.
options:
  export:
    description: Controller path of the legacy export (read by the action plugin).
    type: path
    required: true
  number_plan:
    description: The export's number plan (as for M(sipwave.platform.wave)).
    type: dict
    required: true
  site_secret:
    description:
      - Secret the device tokens and the generated phase-2 passwords derive from (controller
        only; the same C(sipwave_site_secret) the waves use).
    type: str
    required: true
  states:
    description:
      - The accounts' migration states, as returned by M(sipwave.platform.account_states)
        (its C(states) value). Devices of accounts in C(phase1), C(consent_pending) and
        C(phase2) are provisioned; other accounts' devices are removed.
    type: raw
    required: true
  template_dirs:
    description:
      - Controller directories holding C(<vendor>/<file>.j2) templates, the first one that has
        a template of a name wins (put the site's override directory before the role's).
    type: list
    elements: path
    required: true
  site:
    description:
      - Site values for the templates (C(site.*)), for example C(provisioning_url),
        C(sip_server), C(sip_port), C(sip_transport), C(ntp_server), C(timezone).
    type: dict
    default: {}
  staff:
    description:
      - The staff members' accounts, as returned by M(sipwave.platform.account_states) (its
        C(staff) value). Their phones are rendered with their own identity and the password
        derived for them from O(site_secret) (playbooks/user_add.yml).
    type: raw
  login_prefix:
    description:
      - Prefix of the phase-2 logins (with O(new_domain)). Each device owed a re-sync is
        then also looked for under its phase-2 identity, which its phone still registers
        as after a rollback from phase 2 until it fetches its files.
    type: str
  new_domain:
    description: Domain of the phase-2 identities (with O(login_prefix)).
    type: str
  output_dir:
    description: Directory on the target holding one directory per device token.
    type: path
    required: true
  owner:
    description: Owner of the written files and directories.
    type: str
  group:
    description: Group of the written files and directories (the web server's group).
    type: str
  file_mode:
    description: Mode of the written files.
    type: str
    default: "0640"
  dir_mode:
    description: Mode of the token directories.
    type: str
    default: "0750"
  pending_file:
    description:
      - File on the target recording the devices still owed a re-sync (created when needed,
        mode 0600, replaced atomically). Without it only this run's updated devices are
        returned in C(resync).
    type: path
  devices_file:
    description: Internal, set by the action plugin (the devices with their credentials).
    type: path
  templates:
    description: Internal, set by the action plugin (template name to source).
    type: dict
"""

EXAMPLES = r"""
- name: Render the phones' configs
  sipwave.platform.provisioning_configs:
    export: "{{ sipwave_legacy_export }}"
    number_plan: "{{ sipwave_number_plan }}"
    site_secret: "{{ sipwave_site_secret }}"
    states: "{{ account_states.states }}"
    template_dirs:
      - "{{ inventory_dir }}/provisioning-templates"
      - "{{ role_path }}/templates/phones"
    site:
      provisioning_url: https://prov.example.test
      sip_server: sip.example.test
    output_dir: /srv/sipwave-provisioning/devices
    group: www-data
"""

RETURN = r"""
counts:
  description: Devices, files, and files created, updated, removed and unchanged.
  type: dict
  returned: always
updated_macs:
  description: MACs of devices whose existing files changed (the phones to re-sync).
  type: list
  elements: str
  returned: always
resync:
  description:
    - Per device owed a re-sync (its files changed in this run or in an earlier one whose
      phones were not told yet), its MAC, vendor and the SIP identities it may be
      registered as, for M(sipwave.platform.check_sync).
  type: list
  elements: dict
  returned: always
overridden_templates:
  description: Template names taken from a site override directory (set by the action plugin).
  type: list
  elements: str
  returned: always
problems:
  description: Devices left out, each with the export's file, line and reason (action plugin).
  type: list
  elements: str
  returned: always
"""

import grp  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import (  # noqa: E402
    DeviceConfig,
    Line,
    Ownership,
    ProvisioningError,
    Renderer,
)
from ansible_collections.sipwave.platform.plugins.module_utils.resync_pending import (  # noqa: E402
    OwedResync,
    PendingError,
    load_pending,
    save_pending,
    with_owed,
)

MAX_DIFF_LINES = 2000


def _ownership(module: AnsibleModule) -> Ownership:
    params = module.params
    try:
        uid = pwd.getpwnam(params["owner"]).pw_uid if params["owner"] else -1
        gid = grp.getgrnam(params["group"]).gr_gid if params["group"] else -1
        return Ownership(uid, gid, int(params["file_mode"], 8), int(params["dir_mode"], 8))
    except KeyError as exc:
        module.fail_json(msg=f"unknown owner or group: {exc}")
    except ValueError:
        module.fail_json(msg="file_mode and dir_mode are octal strings such as '0640'")
    raise AssertionError("unreachable")


def load_devices(path: str) -> tuple[list[DeviceConfig], dict[str, OwedResync]]:
    """The devices, and what each would owe when its files change (MAC, vendor, identities)."""
    try:
        with open(path, encoding="utf-8") as handle:
            rows = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ProvisioningError(f"cannot read the devices file: {exc.__class__.__name__}") from exc
    devices = [
        DeviceConfig(
            row["mac"],
            row["vendor"],
            row["model"],
            row["token"],
            Line(*row["line"]),
        )
        for row in rows
    ]
    owed = {
        row["mac"]: OwedResync(row["mac"], row["vendor"], tuple(row.get("identities") or ()))
        for row in rows
    }
    return devices, owed


class OwedRecorder:
    """Keeps the pending file: the devices about to be updated are added to it (written
    before their files) and the owed set is what the run returns in ``resync``."""

    def __init__(self, path: str | None, owed_by_mac: dict[str, OwedResync]) -> None:
        self.path = path
        self.owed_by_mac = owed_by_mac
        self.pending = load_pending(path) if path else {}

    def add(self, macs: list[str]) -> None:
        self.pending = with_owed(self.pending, (self.owed_by_mac[mac] for mac in macs))
        if self.path:
            try:
                save_pending(self.path, self.pending)
            except OSError as exc:
                raise PendingError(f"{self.path}: cannot write: {exc.strerror}") from exc

    def owed(self) -> list[dict]:
        return [self.pending[mac].as_dict() for mac in sorted(self.pending)]


def _diff(result) -> dict:
    after = [f"{mac} {name}: created\n" for mac, name in result.created]
    after += [f"{mac} {name}: updated\n" for mac, name in result.updated]
    after += [f"{name}: removed\n" for name in result.removed]
    if len(after) > MAX_DIFF_LINES:
        after = [*after[:MAX_DIFF_LINES], f"... and {len(after) - MAX_DIFF_LINES} more\n"]
    return {"before": "", "after": "".join(after)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "devices_file": {"type": "path"},
            "pending_file": {"type": "path"},
            "templates": {"type": "dict"},
            "site": {"type": "dict", "default": {}},
            "output_dir": {"type": "path", "required": True},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "file_mode": {"type": "str", "default": "0640"},
            "dir_mode": {"type": "str", "default": "0750"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not params["devices_file"] or params["templates"] is None:
        module.fail_json(
            msg="devices_file and templates are set by the action plugin: run the "
            "module as a task (sipwave.platform.provisioning_configs)"
        )
    owner = _ownership(module)
    try:
        devices, owed_by_mac = load_devices(params["devices_file"])
        recorder = OwedRecorder(params["pending_file"], owed_by_mac)
        renderer = Renderer(params["templates"], params["site"], params["output_dir"], owner)
        result = renderer.run(devices, module.check_mode, recorder.add)
        if module.check_mode:
            recorder.pending = with_owed(
                recorder.pending, (owed_by_mac[mac] for mac in result.updated_macs)
            )
    except (ProvisioningError, PendingError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"{params['output_dir']}: {exc.strerror}")
    output = {
        "changed": result.changed,
        "counts": result.counts(),
        "updated_macs": result.updated_macs,
        "resync": recorder.owed(),
    }
    if module._diff:
        output["diff"] = _diff(result)
    if os.path.isdir(params["output_dir"]):
        output["output_dir"] = params["output_dir"]
    module.exit_json(**output)


if __name__ == "__main__":
    main()
