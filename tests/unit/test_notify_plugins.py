"""Controller-side plugins of the notifications and the lab's legacy platform."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.sipwave.platform.plugins.action.notify import messages_from_outcomes
from ansible_collections.sipwave.platform.plugins.module_utils.e164 import plan_from_dict
from ansible_collections.sipwave.platform.plugins.module_utils.legacy_export import read_export

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
ANSIBLE = str(Path(sys.executable).with_name("ansible"))
PLAN = {"country_code": "48", "national_lengths": [9]}
HEADER = (
    "login,password,ha1,domain,display_name,email,numbers,dialin_numbers,department,"
    "balance,devices,wave\n"
)
ONLY_HA1 = hashlib.md5(b"481200007:ip.tanifon.pl:whatever").hexdigest()
ROWS = (
    "481200000,pw-alpha-123,,ip.tanifon.pl,Anna Nowak,anna@example.test,+48220000000,,sales,"
    "12.50,yealink:T46:00:11:22:33:44:55,wave1\n"
    f"481200007,,{ONLY_HA1},ip.tanifon.pl,Jan Kowalski,jan@example.test,220000007,,sales,"
    "3.00,yealink:T46:00:11:22:33:44:56,wave1\n"
    "481200009,pw-bad-number,,ip.tanifon.pl,Ewa,ewa@example.test,12,,sales,1.00,,wave1\n"
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def write_export(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    path.write_text(HEADER + ROWS, encoding="utf-8")
    return path


def query_legacy_subscribers(export: Path) -> tuple[list[dict], str]:
    """Evaluate the lookup the way a play does; its output is returned for secret searches."""
    result = export.with_name("subscribers.json")
    lookup = f"query('sipwave.platform.legacy_subscribers', '{export}', number_plan={PLAN})"
    completed = subprocess.run(
        [
            ANSIBLE,
            "localhost",
            "-m",
            "ansible.builtin.copy",
            "-a",
            f"dest={result} content={{{{ {lookup} | to_json }}}}",
            "-vvv",
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        },
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return json.loads(result.read_text()), completed.stdout + completed.stderr


def test_legacy_subscribers_are_the_good_rows_as_ha1(tmp_path):
    subscribers, _ = query_legacy_subscribers(write_export(tmp_path))
    assert subscribers == [
        {
            "username": "481200000",
            "domain": "ip.tanifon.pl",
            "ha1": md5("481200000:ip.tanifon.pl:pw-alpha-123"),
            "ha1b": md5("481200000@ip.tanifon.pl:ip.tanifon.pl:pw-alpha-123"),
        },
        {"username": "481200007", "domain": "ip.tanifon.pl", "ha1": ONLY_HA1},
    ]


def test_legacy_subscribers_never_carry_a_password(tmp_path):
    subscribers, _ = query_legacy_subscribers(write_export(tmp_path))
    assert "pw-alpha-123" not in json.dumps(subscribers)


def test_outcome_messages_take_address_and_numbers_from_the_export(tmp_path):
    export = read_export(str(write_export(tmp_path)), plan_from_dict(PLAN))
    outcome = {"login": "481200000", "state": "phase2", "identity": "tnf481200000@sip.x"}
    (message,) = messages_from_outcomes([outcome], export)
    assert message["email"] == "anna@example.test"
    assert message["values"]["numbers"] == ["+48220000000"]
    assert message["values"]["identity"] == "tnf481200000@sip.x"


def test_a_closed_account_without_a_refund_in_this_run_is_owed_its_balance(tmp_path):
    export = read_export(str(write_export(tmp_path)), plan_from_dict(PLAN))
    (message,) = messages_from_outcomes([{"login": "481200007", "state": "closed"}], export)
    assert message["values"]["refund"] == "3.00"


def test_the_refund_of_the_closing_run_wins_over_the_balance(tmp_path):
    export = read_export(str(write_export(tmp_path)), plan_from_dict(PLAN))
    outcome = {"login": "481200007", "state": "closed", "refund": "2.10"}
    (message,) = messages_from_outcomes([outcome], export)
    assert message["values"]["refund"] == "2.10"
