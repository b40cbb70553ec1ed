# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: legacy_subscribers
short_description: The legacy export's accounts as Kamailio subscribers (HA1 only)
version_added: 0.1.0
description:
  - Reads a legacy export (CSV contract in docs/contracts.md) on the controller and returns one
    subscriber per good row, in the form O(sipwave.platform.kamailio_subscribers#module:subscribers)
    takes - C(username), C(domain), C(ha1) and C(ha1b).
  - Passwords are hashed here, so no plaintext leaves the controller. Bad rows are left out
    (the wave report names them with file, line and reason).
  - Meant for a lab's legacy platform, which holds every legacy account before any wave.
options:
  _terms:
    description: Path of the export on the controller.
    required: true
    type: list
    elements: path
  number_plan:
    description:
      - Country plan the export's numbers are read with (C(country_code), C(national_lengths)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Load every legacy account into the lab's legacy platform
  sipwave.platform.kamailio_subscribers:
    database: /var/lib/kamailio/sipwave.sqlite
    subscribers: "{{ query('sipwave.platform.legacy_subscribers', sipwave_legacy_export,
                   number_plan=sipwave_number_plan) }}"
"""

RETURN = r"""
_raw:
  description:
    - One dict per good row - username, domain, ha1 (and ha1b when the export has the password).
    - Secret - never display it.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (  # noqa: E402
    ha1,
    ha1b,
)
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import (  # noqa: E402
    NumberError,
    plan_from_dict,
)
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import (  # noqa: E402
    ExportError,
)
from ansible_collections.sipwave.platform.plugins.plugin_utils.controller import read_export_once  # noqa: E402


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        try:
            plan = plan_from_dict(self.get_option("number_plan"))
            subscribers = []
            for path in terms:
                for account in read_export_once(path, plan).accounts.values():
                    identity = (account.login, account.domain)
                    subscriber = {
                        "username": account.login,
                        "domain": account.domain,
                        "ha1": account.ha1 or ha1(*identity, account.password),
                    }
                    if account.password:
                        subscriber["ha1b"] = ha1b(*identity, account.password)
                    subscribers.append(subscriber)
        except (ExportError, NumberError) as exc:
            raise AnsibleLookupError(str(exc)) from exc
        return subscribers
