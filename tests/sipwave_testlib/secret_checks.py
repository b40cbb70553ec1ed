"""The two checks every scenario ends with, imported by its tests/test_zz_secrets.py (pytest
collects the imported test functions there, so the file runs them last, in file order):
every playbook run of the scenario, failed and killed ones included, was made at -vvvv, and
no transcript holds one of the scenario's secrets."""

import os
from pathlib import Path

from sipwave_testlib import playbooks, secrets


def test_the_playbooks_of_this_scenario_ran_at_vvvv_with_a_transcript():
    scenario = os.environ["MOLECULE_SCENARIO_NAME"]
    ran = secrets.playbooks_run(playbooks.transcripts())
    missing = [p for p in secrets.playbooks_of_scenario(scenario) if p not in ran]
    assert not missing, f"no -vvvv transcript of {missing}; transcripts of {sorted(ran)}"


def test_no_transcript_holds_a_password_ha1_pin_token_or_site_secret():
    found = secrets.scenario_secrets(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]))
    kinds = {secret.kind for secret in found}
    assert {"password", "HA1", "provisioning token", "site secret"} <= kinds, kinds
    leaks = secrets.find_leaks(found, playbooks.transcripts())
    assert not leaks, f"{len(leaks)} secret(s) in the transcripts:\n" + "\n".join(
        map(str, leaks[:40])
    )
