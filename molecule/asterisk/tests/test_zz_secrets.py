"""Runs last (file order): every playbook run of this scenario, failed and killed ones
included, was made at -vvvv and its transcript holds none of the scenario's secrets."""

import os
from pathlib import Path

from sipwave_testlib import playbooks, secrets

SCENARIO = os.environ["MOLECULE_SCENARIO_NAME"]
SCENARIO_DIRECTORY = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])


def test_the_playbooks_of_this_scenario_ran_at_vvvv_with_a_transcript():
    ran = secrets.playbooks_run(playbooks.transcripts())
    missing = [p for p in secrets.playbooks_of_scenario(SCENARIO) if p not in ran]
    assert not missing, f"no -vvvv transcript of {missing}; transcripts of {sorted(ran)}"


def test_no_transcript_holds_a_password_ha1_pin_token_or_site_secret():
    found = secrets.scenario_secrets(SCENARIO_DIRECTORY)
    kinds = {secret.kind for secret in found}
    assert {"password", "HA1", "provisioning token", "site secret"} <= kinds, kinds
    leaks = secrets.find_leaks(found, playbooks.transcripts())
    assert not leaks, f"{len(leaks)} secret(s) in the transcripts:\n" + "\n".join(
        map(str, leaks[:40])
    )
