"""Runs last (file order): the scenario's secret checks of sipwave_testlib.secret_checks."""

from sipwave_testlib.secret_checks import (  # noqa: F401 (collected by pytest from here)
    test_no_transcript_holds_a_password_ha1_pin_token_or_site_secret,
    test_the_playbooks_of_this_scenario_ran_at_vvvv_with_a_transcript,
)
