"""The alert rules of the monitoring role under `promtool test rules` (Prometheus' own rule
evaluator, from Debian's prometheus package: `make unit` extracts it to .cache/tools)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "roles/monitoring/files/sipwave.rules.yml"
RULE_TESTS = Path(__file__).with_name("prometheus") / "sipwave.rules.test.yml"


def promtool() -> str | None:
    candidates = (
        os.environ.get("SIPWAVE_PROMTOOL"),
        str(ROOT / ".cache/tools/usr/bin/promtool"),
        shutil.which("promtool"),
    )
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def expectations() -> list[dict]:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    return [case for test in tests for case in test.get("alert_rule_test", [])]


@pytest.mark.skipif(
    promtool() is None, reason="promtool is missing: `make unit` extracts it to .cache/tools"
)
def test_every_alert_rule_passes_its_promtool_tests():
    result = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.skipif(
    promtool() is None, reason="promtool is missing: `make unit` extracts it to .cache/tools"
)
def test_the_rules_file_passes_promtools_check():
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    firing = {c["alertname"] for c in expectations() if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in expectations() if not c.get("exp_alerts")}
    assert firing == alert_names()
    # Where an alert has other series in its test that do not fire, its firing case proves
    # quiet too (exp_alerts lists every alert, so one more would fail it): the certificate.
    assert alert_names() - quiet <= {"SipwaveCertificateExpiring"}
