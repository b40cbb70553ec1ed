"""The health filters: a certificate's expiry as ok, warning or down, and the worst of several
states (playbooks/health.yml, the provisioning role's health tasks)."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sipwave.platform.plugins.filter.health import (
    certificate_health,
    worst_health,
)

NOW = "20261204120000Z"


@pytest.mark.parametrize(
    ("not_after", "state", "detail"),
    [
        ("20270301120000Z", "ok", "certificate expires 2027-03-01T12:00:00Z (87 days left)"),
        ("20261224120000Z", "warning", "(20 days left)"),
        ("20261204130000Z", "warning", "(0 days left)"),
        ("20261204110000Z", "down", "certificate expired 2026-12-04T11:00:00Z"),
        ("2026-12-24", "down", "certificate expiry '2026-12-24' cannot be read"),
    ],
)
def test_a_certificate_is_ok_then_a_warning_then_down(not_after, state, detail):
    found = certificate_health(not_after, 21, 0, now=NOW)

    assert found["state"] == state
    assert detail in found["detail"]


def test_down_days_make_a_certificate_down_before_it_expires():
    assert certificate_health("20261210120000Z", 21, 7, now=NOW)["state"] == "down"
    assert certificate_health("20261212120000Z", 21, 7, now=NOW)["state"] == "warning"


@pytest.mark.parametrize(("warn", "down"), [(7, 21), (-1, 0), ("21", 0)])
def test_bad_thresholds_are_refused(warn, down):
    with pytest.raises(AnsibleFilterError, match="0 <= down_days <= warn_days"):
        certificate_health("20270301120000Z", warn, down, now=NOW)


def test_the_worst_state_wins_and_every_detail_is_kept():
    found = worst_health([{"state": "ok", "detail": "systemd: active"},
                          {"state": "warning", "detail": "certificate expires soon"}])  # fmt: skip

    assert found == {"state": "warning",
                     "detail": "systemd: active; certificate expires soon"}  # fmt: skip
    assert worst_health([{"state": "warning"}, {"state": "down"}])["state"] == "down"


@pytest.mark.parametrize("bad", [[], [{"state": "fine"}], "ok", [None]])
def test_worst_health_refuses_what_is_no_list_of_states(bad):
    with pytest.raises(AnsibleFilterError):
        worst_health(bad)
