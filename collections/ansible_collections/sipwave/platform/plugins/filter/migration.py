# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the migration: the phase-2 password of an account that only had an HA1."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    CredentialError,
    generated_password,
)

DOCUMENTATION = r"""
name: phase2_password
short_description: The generated phase-2 password of an account whose export had only an HA1
version_added: 0.2.0
description:
  - Derives the password the wave set for the prefixed phase-2 login from the site secret,
    the same way the C(sipwave.platform.wave) action plugin does, so the notification can send
    it without it being stored anywhere. Use it only in C(no_log) tasks.
  - Only meaningful for accounts whose wave outcome has C(password_generated=true); the others
    keep their own password.
options:
  _input:
    description: The account's legacy login.
    type: str
    required: true
  site_secret:
    description: The site secret given to the wave (C(sipwave_site_secret)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Send the new settings  # the body holds a password
  community.general.mail:
    to: "{{ item.email }}"
    body: "{{ item.login | sipwave.platform.phase2_password(sipwave_site_secret) }}"
  loop: "{{ wave_result.accounts | selectattr('password_generated', 'defined') }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The password (16 characters, no look-alike characters).
  type: str
"""


def phase2_password(login: str, site_secret: str) -> str:
    try:
        return generated_password(site_secret, str(login))
    except CredentialError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self) -> dict:
        return {"phase2_password": phase2_password}
