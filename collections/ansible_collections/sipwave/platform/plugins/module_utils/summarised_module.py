# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An AnsibleModule that never logs or echoes its bulk, secret-bearing list arguments.

Declaring every secret of a 100,000-entry list ``no_log`` makes AnsibleModule scrub every
string of the result against every secret, which is quadratic and takes hours. Modules built
on this class instead replace such lists by a count in the logged invocation and in the
echoed arguments, and take care that none of their own messages contains a secret.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

MASKED = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


class SummarisedModule(AnsibleModule):
    #: Parameters holding lists of entries with secrets: shown as a count only.
    summarised_lists: tuple[str, ...] = ()
    #: Scalar secret parameters: shown masked.
    masked_params: tuple[str, ...] = ()

    def summarised_params(self) -> dict:
        params = dict(self.params)
        for name in self.masked_params:
            if params.get(name) is not None:
                params[name] = MASKED
        for name in self.summarised_lists:
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
