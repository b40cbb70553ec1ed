"""message_rules: who writes to a customer (legacy operator until the customer consented to
the new one) and when a wave's notice and reminder may go out (their window before the wave
date, never on or after it)."""

from datetime import date

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import message_rules
from ansible_collections.sipwave.platform.plugins.module_utils.message_rules import (
    MessageRuleError,
    check_schedule,
    operators,
    sender_for,
    window,
)

OPERATORS = {
    "legacy": {"name": "Tanifon", "address": "obsluga@ip.tanifon.pl"},
    "new": {"name": "sipwave", "address": "migration@sip.sipwave.test"},
}
WAVE_DATE = date(2026, 12, 7)


def test_a_customer_hears_from_the_new_operator_only_after_consenting():
    senders = operators(OPERATORS)
    assert sender_for("481200001", set(), senders) == "Tanifon <obsluga@ip.tanifon.pl>"
    assert sender_for("481200001", {"481200001"}, senders) == "sipwave <migration@sip.sipwave.test>"
    assert sender_for("481200002", {"481200001"}, senders).startswith("Tanifon")


@pytest.mark.parametrize(
    "bad",
    [
        {"legacy": OPERATORS["legacy"]},
        {**OPERATORS, "new": {"name": "x", "address": "not an address"}},
        {**OPERATORS, "new": {"name": "x\r\nBcc: all@example.net", "address": "a@b.example"}},
        {**OPERATORS, "legacy": "obsluga@ip.tanifon.pl"},
    ],
)
def test_bad_operators_are_refused_naming_the_setting(bad):
    with pytest.raises(MessageRuleError, match="mail operators"):
        operators(bad)


@pytest.mark.parametrize(
    ("notification", "today"),
    [("notice", date(2026, 11, 16)), ("notice", date(2026, 12, 6)),
     ("reminder", date(2026, 12, 2)), ("reminder", date(2026, 12, 6))],
)  # fmt: skip
def test_notice_and_reminder_go_out_in_their_window(notification, today):
    check_schedule(notification, "wave2", WAVE_DATE, today, {})


@pytest.mark.parametrize(
    ("notification", "today", "message"),
    [
        ("notice", date(2026, 12, 7), "never on or after it"),
        ("notice", date(2027, 1, 1), "never on or after it"),
        ("reminder", date(2026, 12, 8), "never on or after it"),
        ("notice", date(2026, 11, 15), "due from 2026-11-16"),
        ("reminder", date(2026, 12, 1), "due from 2026-12-02"),
    ],
)
def test_notice_and_reminder_outside_their_window_are_refused(notification, today, message):
    with pytest.raises(MessageRuleError, match=message):
        check_schedule(notification, "wave2", WAVE_DATE, today, {})


def test_the_windows_are_configurable_and_checked():
    assert window("notice", WAVE_DATE, {"notice": 30}) == (date(2026, 11, 7), WAVE_DATE)
    with pytest.raises(MessageRuleError, match="1 to 365"):
        window("reminder", WAVE_DATE, {"reminder": 0})


def test_other_notifications_have_no_window():
    check_schedule("phase2", "wave2", WAVE_DATE, date(2027, 3, 1), {})
    check_schedule("closure", "wave2", WAVE_DATE, date(2027, 3, 1), {})


DECIDE_BY = date(2026, 12, 14)


@pytest.mark.parametrize("today", [date(2026, 12, 7), date(2026, 12, 14)])
def test_the_decision_reminder_goes_out_in_the_last_days_of_the_window(today):
    message_rules.check_decision_reminder("wave1", DECIDE_BY, today, {})


@pytest.mark.parametrize(
    ("today", "decide_by", "message"),
    [
        (date(2026, 12, 6), DECIDE_BY, r"due from 2026-12-07 \(its window is 2026-12-07 to 2026"),
        (date(2026, 12, 15), DECIDE_BY, "ended on 2026-12-14: its reminder is sent before"),
        (date(2026, 12, 10), None, "wave wave1 has no decide_by"),
    ],
)
def test_the_decision_reminder_is_refused_outside_its_window(today, decide_by, message):
    with pytest.raises(message_rules.MessageRuleError, match=message):
        message_rules.check_decision_reminder("wave1", decide_by, today, {})


def test_the_decision_reminder_window_is_configurable_and_checked():
    message_rules.check_decision_reminder(
        "wave1", DECIDE_BY, date(2026, 12, 1), {"decision_reminder": 14}
    )
    with pytest.raises(message_rules.MessageRuleError, match="1 to 365"):
        message_rules.check_decision_reminder(
            "wave1", DECIDE_BY, DECIDE_BY, {"decision_reminder": 0}
        )
