#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: nginx_reload
short_description: Reload nginx and make sure the new configuration is in effect
version_added: 0.4.0
description:
  - Tests the configuration on disk (C(nginx -t)), reloads the service, then waits until
    the master runs new worker processes, the sign that it took the configuration.
    C(systemctl reload) succeeds also when the master refuses the new configuration (for
    example a shared memory zone such as a C(limit_req_zone) whose size changed); nginx
    then logs an C([emerg]) line and keeps serving the old configuration.
  - A reload that was not taken either restarts the service (O(on_refused=restart)),
    which loads the configuration from scratch and is checked the same way, or fails
    (O(on_refused=fail)). A refusal a restart cannot cure (a listening address that
    cannot be bound) always fails, leaving the previous configuration serving. The error
    log's lines about it are in the result.
  - With O(when_older_than), it reloads only when the serving workers started before the
    newest of those files changed, so a run after one whose reload failed or was lost
    (killed before its handlers ran) still loads the configuration on disk.
  - A service that is not running is started instead of reloaded.
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Tests the configuration and reports that it would reload; signals nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - nginx and systemd on the target host.
options:
  service:
    description: The systemd unit of nginx.
    type: str
    default: nginx
  nginx_binary:
    description: The nginx executable, for the configuration test.
    type: path
    default: /usr/sbin/nginx
  pid_file:
    description: The master's pid file (the C(pid) directive).
    type: path
    default: /run/nginx.pid
  error_log:
    description: The main error log (the C(error_log) directive of the main context).
    type: path
    default: /var/log/nginx/error.log
  on_refused:
    description: What to do when the master did not take the reloaded configuration.
    type: str
    choices: [restart, fail]
    default: restart
  timeout:
    description: Seconds to wait for the new worker processes.
    type: int
    default: 15
  when_older_than:
    description:
      - Files of the configuration (nginx.conf, certificates). When given, nginx is
        reloaded only if its serving workers started before the newest of them changed.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Reload nginx, restart it when the master refuses the new configuration
  sipwave.platform.nginx_reload:
    on_refused: restart

- name: Make sure nginx runs the configuration on disk
  sipwave.platform.nginx_reload:
    when_older_than: [/etc/nginx/nginx.conf]
"""

RETURN = r"""
action:
  description: C(reloaded), C(restarted) (after a refused reload), C(started),
    C(current) (nothing to load, with O(when_older_than)), or C(would reload) in check mode.
  type: str
  returned: always
refused:
  description: The error log's failure lines written by a reload the master refused.
  type: list
  elements: str
  returned: always
master:
  description: The pid of the master serving the configuration afterwards.
  type: int
  returned: success
"""

import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.nginx_state import (  # noqa: E402
    Generation,
    failures_since,
    log_size,
    restart_would_fail,
)

POLL_SECONDS = 0.2


def _run(module: AnsibleModule, *command: str) -> None:
    run = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if run.returncode != 0:
        output = (run.stderr or run.stdout).strip()[-600:]
        module.fail_json(msg=f"{' '.join(command)} failed (exit {run.returncode}): {output}")


def _wait_for_new_generation(
    module: AnsibleModule, before: Generation, offset: int
) -> Generation | None:
    """The generation that replaced ``before``, or None when none did within the timeout.
    A refused reload logs at once, so its failure lines (after ``offset``) end the wait."""
    params = module.params
    deadline = time.monotonic() + params["timeout"]
    while True:
        now = Generation.read(params["pid_file"])
        if before.replaced_by(now):
            return now
        if time.monotonic() >= deadline:
            return None
        if before.master and failures_since(params["error_log"], offset):
            # give an accepted reload's workers a moment, then trust the log
            time.sleep(1)
            now = Generation.read(params["pid_file"])
            return now if before.replaced_by(now) else None
        time.sleep(POLL_SECONDS)


def _apply(module: AnsibleModule, verb: str) -> tuple[Generation | None, list[str]]:
    """``systemctl <verb>`` and what came of it: the new generation (or None) and the error
    log's failure lines written meanwhile."""
    params = module.params
    before = Generation.read(params["pid_file"])
    offset = log_size(params["error_log"])
    _run(module, "systemctl", verb, params["service"])
    after = _wait_for_new_generation(module, before, offset)
    return after, failures_since(params["error_log"], offset)


def _serves_newest(current: Generation, paths: list[str]) -> bool:
    """True when paths are given and the serving workers started after each changed."""
    if not paths:
        return False
    try:
        newest = max(os.stat(path).st_mtime for path in paths)
    except OSError:
        return False  # a file missing: let nginx -t say what is wrong
    return current.loaded_since(newest)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "service": {"type": "str", "default": "nginx"},
            "nginx_binary": {"type": "path", "default": "/usr/sbin/nginx"},
            "pid_file": {"type": "path", "default": "/run/nginx.pid"},
            "error_log": {"type": "path", "default": "/var/log/nginx/error.log"},
            "on_refused": {"type": "str", "choices": ["restart", "fail"], "default": "restart"},
            "timeout": {"type": "int", "default": 15},
            "when_older_than": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    params = module.params
    current = Generation.read(params["pid_file"])
    if current.master is not None and _serves_newest(current, params["when_older_than"]):
        module.exit_json(changed=False, action="current", refused=[], master=current.master)
    _run(module, params["nginx_binary"], "-t", "-q")
    if module.check_mode:
        module.exit_json(changed=True, action="would reload", refused=[])
    if current.master is None:
        started, problems = _apply(module, "start")
        if started is None:
            module.fail_json(msg=f"nginx did not start: {problems}", action="started")
        module.exit_json(changed=True, action="started", refused=[], master=started.master)
    reloaded, refused = _apply(module, "reload")
    if reloaded is not None:
        module.exit_json(changed=True, action="reloaded", refused=[], master=reloaded.master)
    reason = "; ".join(refused) or f"no new worker processes within {params['timeout']} s"
    if params["on_refused"] == "fail" or restart_would_fail(refused):
        advice = (
            "A restart would not bind either: free the address or change the configuration, "
            "then run again."
            if restart_would_fail(refused)
            else f"Restart it (systemctl restart {params['service']}) to load it."
        )
        module.fail_json(
            msg=f"nginx refused the new configuration on reload and still serves the previous "
            f"one: {reason}. {advice}",
            action="reload refused",
            refused=refused,
        )
    restarted, problems = _apply(module, "restart")
    if restarted is None:
        module.fail_json(
            msg=f"nginx refused the new configuration on reload ({reason}) and did not come "
            f"back from the restart: {problems}",
            action="restart failed",
            refused=refused,
        )
    module.warn(f"nginx refused the new configuration on reload ({reason}); restarted it")
    module.exit_json(changed=True, action="restarted", refused=refused, master=restarted.master)


if __name__ == "__main__":
    main()
