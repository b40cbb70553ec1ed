# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An AnsibleModule for bulk modules whose list arguments carry secrets (passwords, HA1s)."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

MASKED = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


class QuietBulkModule(AnsibleModule):
    """AnsibleModule that keeps the secrets of its bulk arguments out of results and logs.

    The secret-bearing lists are deliberately not declared no_log: AnsibleModule would then
    scrub every string of the result against every secret, which is quadratic and takes hours
    for 100,000 accounts. Instead the echoed arguments and the logged invocation only count
    the entries of ``summarised`` lists, and no message of the module contains a secret.
    """

    def __init__(self, *args, summarised: tuple[str, ...] = (), **kwargs) -> None:
        self._summarised = summarised
        super().__init__(*args, **kwargs)

    def summarised_params(self) -> dict:
        params = dict(self.params)
        if params.get("db_password") is not None:
            params["db_password"] = MASKED
        for name in self._summarised:
            entries = params.get(name)
            if entries is not None:
                count = len(entries) if isinstance(entries, list) else 1
                params[name] = f"<{count} entries, not shown>"
        return params

    def _log_invocation(self) -> None:
        # The stock implementation logs every argument, secrets included.
        params = self.summarised_params()
        self.log("Invoked with " + " ".join(f"{name}={value}" for name, value in params.items()))

    def exit_json(self, **kwargs):
        kwargs.setdefault("invocation", {"module_args": self.summarised_params()})
        super().exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs.setdefault("invocation", {"module_args": self.summarised_params()})
        super().fail_json(msg, **kwargs)
