"""The dial-in AGI script, run as Asterisk runs it, against a scripted AGI peer."""

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import dialin_db

AGI_DIR = Path(__file__).resolve().parents[2] / "roles/asterisk/files/agi"
PIN = "47259381"
SETTINGS = {
    "number_plan": {"country_code": "48", "national_lengths": [9]},
    "pin_tries": 3,
    "lockout_failures": 4,
    "lockout_window_s": 3600,
    "digit_timeout_ms": 1000,
    "blocked_prefixes": ["+48700", "+881"],
    "pinless_allowed_prefixes": ["+48"],
    "pinless_daily_minutes": 60,
    "prompt_pin": "agent-pass",
    "prompt_wrong_pin": "auth-incorrect",
    "prompt_destination": "vm-enter-num-to-call",
    "prompt_blocked": "ss-noservice",
}


@pytest.fixture
def agi(tmp_path):
    for name in ("sipwave_dialin.py", "e164.py", "dialin_db.py", "control_chars.py"):
        shutil.copy(AGI_DIR / name, tmp_path / name)
    database = tmp_path / "dialin.sqlite"
    settings = {**SETTINGS, "database": str(database), "cdr_database": str(tmp_path / "cdr.db")}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    connection = dialin_db.connect(str(database))
    with connection:
        connection.execute(
            "INSERT INTO account (id, department, number, pin_hash, max_calls)"
            " VALUES ('acme', 'sales', '+48221110001', ?, 2)",
            (dialin_db.hash_pin(PIN),),
        )
        connection.execute(
            "INSERT INTO account (id, department, number, pin_hash, max_calls)"
            " VALUES ('beta', 'finance', '+48221110002', NULL, 1)"
        )
        connection.execute("INSERT INTO dialin_number VALUES ('+48601000001', 'acme')")
        connection.execute("INSERT INTO dialin_number VALUES ('+48601000002', 'acme')")
        connection.execute("INSERT INTO dialin_number VALUES ('+48601000003', 'beta')")
    connection.close()
    return tmp_path


class Session:
    """What the script asked for and what it set, from one run."""

    def __init__(self, directory: Path, mode: str, caller: str, digits: list[str]):
        process = subprocess.Popen(
            [sys.executable, str(directory / "sipwave_dialin.py"), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        process.stdin.write("agi_channel: PJSIP/sipwave-proxy-00000001\nagi_arg_1: x\n\n")
        process.stdin.flush()
        self.variables: dict[str, str] = {}
        self.commands: list[str] = []
        pending = list(digits)
        for line in process.stdout:
            command = line.strip()
            self.commands.append(command)
            if command.startswith("GET VARIABLE"):
                reply = f"200 result=1 ({caller})"
            elif command.startswith("SET VARIABLE"):
                _, _, name, value = command.split(" ", 3)
                self.variables[name] = value.strip('"')
                reply = "200 result=1"
            elif command.startswith("GET DATA"):
                entry = pending.pop(0) if pending else None
                # a callable stands for what happens elsewhere while the caller types
                entry = entry() if callable(entry) else entry
                reply = f"200 result={entry}" if entry is not None else "200 result= (timeout)"
            else:
                reply = "200 result=0"
            process.stdin.write(reply + "\n")
            process.stdin.flush()
        process.wait(timeout=10)

    @property
    def result(self) -> str:
        return self.variables.get("SIPWAVE_RESULT", "")


def failures(directory: Path) -> int:
    with sqlite3.connect(directory / "dialin.sqlite") as connection:
        return connection.execute("SELECT count(*) FROM failure").fetchone()[0]


def test_lookup_gives_the_account_of_an_authorised_caller(agi):
    session = Session(agi, "lookup", "+48601000001", [])
    assert session.result == "ok"
    assert session.variables["SIPWAVE_ACCOUNT"] == "acme"
    assert session.variables["SIPWAVE_DEPARTMENT"] == "sales"
    assert session.variables["SIPWAVE_NUMBER"] == "+48221110001"
    assert session.variables["SIPWAVE_MAX_CALLS"] == "2"


@pytest.mark.parametrize("caller", ["+48609999999", ""])
def test_lookup_refuses_unknown_callers(agi, caller):
    assert Session(agi, "lookup", caller, []).result == "refused"


def test_right_pin_then_national_destination(agi):
    session = Session(agi, "authorise", "+48601000001", [PIN, "123456789"])
    assert session.result == "ok"
    assert session.variables["SIPWAVE_DESTINATION"] == "+48123456789"
    assert failures(agi) == 0


def test_account_without_pin_is_asked_only_for_the_destination(agi):
    session = Session(agi, "authorise", "+48601000003", ["0048221234567"])
    assert session.variables["SIPWAVE_DESTINATION"] == "+48221234567"
    assert sum(c.startswith("GET DATA") for c in session.commands) == 1
    # No call today yet: the whole daily allowance, as Dial's L() limit.
    assert session.variables["SIPWAVE_DIAL_OPTIONS"] == f"L({60 * 60 * 1000})"


def set_account(directory: Path, account: str, **columns) -> None:
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with sqlite3.connect(directory / "dialin.sqlite") as connection:
        connection.execute(
            f"UPDATE account SET {assignments} WHERE id = ?", (*columns.values(), account)
        )


CDR_TABLE = "CREATE TABLE IF NOT EXISTS cdr (calldate, account, billsec, end_epoch, talk_ms)"


def billed_today(directory: Path, account: str, seconds: int) -> None:
    """CDR rows as cdr_sqlite3_custom writes them (text columns, local time): a call that
    talked `seconds` to the carrier today (after a 20 s PIN phase billsec counts too), and one
    of two days ago."""
    with sqlite3.connect(directory / "cdr.db") as connection:
        connection.execute(CDR_TABLE)
        connection.execute(
            "INSERT INTO cdr VALUES (datetime('now', 'localtime'), ?, ?, '1764800000.5', ?)",
            (account, str(seconds + 20), str(seconds * 1000)),
        )
        connection.execute(
            "INSERT INTO cdr VALUES (datetime('now', 'localtime', '-2 days'), ?, '86400',"
            " '1764600000.0', '86400000')",
            (account,),
        )


def test_the_pin_phase_and_refused_calls_use_no_daily_minutes(agi):
    """30 wrong-PIN calls today, each answered 16 s for the prompts and never dialled out:
    billsec 480 in all, talk time none; the account's 10 minutes are all left."""
    set_account(agi, "beta", daily_minutes=10)
    with sqlite3.connect(agi / "cdr.db") as connection:
        connection.execute(CDR_TABLE)
        connection.executemany(
            "INSERT INTO cdr VALUES"
            " (datetime('now', 'localtime'), 'beta', '16', '1764800000.1', '')",
            [()] * 30,
        )
    session = Session(agi, "authorise", "+48601000003", ["221234567"])
    assert session.result == "ok"
    assert session.variables["SIPWAVE_DIAL_OPTIONS"] == f"L({10 * 60 * 1000})"


def test_a_cdr_row_of_an_older_release_counts_its_billsec(agi):
    """Rows written before the hangup handler have no end_epoch: their billsec counts."""
    set_account(agi, "beta", daily_minutes=10)
    with sqlite3.connect(agi / "cdr.db") as connection:
        connection.execute(CDR_TABLE)
        connection.execute(
            "INSERT INTO cdr VALUES (datetime('now', 'localtime'), 'beta', '240', NULL, NULL)"
        )
    session = Session(agi, "authorise", "+48601000003", ["221234567"])
    assert session.variables["SIPWAVE_DIAL_OPTIONS"] == f"L({6 * 60 * 1000})"


@pytest.mark.parametrize("dialled", ["00441234567890", "0012025550123", "004930123456"])
def test_without_a_pin_international_destinations_are_refused(agi, dialled):
    session = Session(agi, "authorise", "+48601000003", [dialled])
    assert session.result == "refused"
    assert "not allowed without a PIN" in session.variables["SIPWAVE_REASON"]
    assert "SIPWAVE_DESTINATION" not in session.variables


def test_an_accounts_own_allowed_prefixes_replace_the_site_default(agi):
    set_account(agi, "beta", allowed_prefixes="+44,+4822")
    assert Session(agi, "authorise", "+48601000003", ["00441234567890"]).result == "ok"
    assert Session(agi, "authorise", "+48601000003", ["0048221234567"]).result == "ok"
    assert Session(agi, "authorise", "+48601000003", ["0048581234567"]).result == "refused"
    assert Session(agi, "authorise", "+48601000003", ["004930123456"]).result == "refused"


def test_an_allowed_prefix_at_least_as_long_lifts_a_block_for_that_account_only(agi):
    set_account(agi, "beta", allowed_prefixes="+48700")
    assert Session(agi, "authorise", "+48601000003", ["700123456"]).result == "ok"
    refused = Session(agi, "authorise", "+48601000001", [PIN, "700123456"])
    assert "blocked prefix" in refused.variables["SIPWAVE_REASON"]


def test_an_account_with_a_pin_may_call_abroad_uncapped(agi):
    billed_today(agi, "acme", 24 * 3600)
    session = Session(agi, "authorise", "+48601000001", [PIN, "00441234567890"])
    assert session.result == "ok"
    assert session.variables["SIPWAVE_DIAL_OPTIONS"] == ""


def test_the_daily_minutes_left_limit_the_call(agi):
    billed_today(agi, "beta", 45 * 60)
    session = Session(agi, "authorise", "+48601000003", ["221234567"])
    assert session.result == "ok"
    assert session.variables["SIPWAVE_DIAL_OPTIONS"] == f"L({15 * 60 * 1000})"


@pytest.mark.parametrize(("own_minutes", "used_s"), [(None, 3600), (10, 600), (0, 0)])
def test_used_up_daily_minutes_refuse_the_call(agi, own_minutes, used_s):
    set_account(agi, "beta", daily_minutes=own_minutes)
    billed_today(agi, "beta", used_s)
    session = Session(agi, "authorise", "+48601000003", ["221234567"])
    assert session.result == "refused"
    assert "daily minutes" in session.variables["SIPWAVE_REASON"]


def test_a_database_of_an_older_release_reads_as_the_site_defaults(agi):
    with sqlite3.connect(agi / "dialin.sqlite") as connection:
        connection.execute("ALTER TABLE account DROP COLUMN allowed_prefixes")
        connection.execute("ALTER TABLE account DROP COLUMN daily_minutes")
    assert Session(agi, "authorise", "+48601000003", ["221234567"]).result == "ok"
    assert Session(agi, "authorise", "+48601000003", ["00441234567890"]).result == "refused"


def test_three_wrong_pins_refuse_and_count(agi):
    session = Session(agi, "authorise", "+48601000001", ["1111", "2222", "3333", "123456789"])
    assert session.result == "refused"
    assert "SIPWAVE_DESTINATION" not in session.variables
    assert failures(agi) == 3


def test_lockout_after_the_limit_even_with_the_right_pin(agi):
    Session(agi, "authorise", "+48601000001", ["1111", "2222", "3333"])
    Session(agi, "authorise", "+48601000001", ["4444"])
    assert Session(agi, "lookup", "+48601000001", []).variables["SIPWAVE_REASON"] == "locked out"


def test_wrong_pins_from_all_of_an_accounts_numbers_count_together(agi):
    """A caller number can be forged: guesses spread over an account's dial-in numbers lock
    the account, whichever number calls next, and a call already past lookup is stopped."""
    Session(agi, "authorise", "+48601000001", ["1111", "2222", "3333"])
    waiting = Session(agi, "lookup", "+48601000002", [])
    assert waiting.result == "ok"
    fourth = Session(agi, "authorise", "+48601000002", ["4444"])
    assert fourth.variables["SIPWAVE_REASON"] == "wrong PIN, now locked out"
    for caller in ("+48601000001", "+48601000002"):
        assert Session(agi, "lookup", caller, []).variables["SIPWAVE_REASON"] == "locked out"
        right_pin = Session(agi, "authorise", caller, [PIN, "123456789"])
        assert right_pin.variables["SIPWAVE_REASON"] == "locked out"
    # another account's caller is not touched
    assert Session(agi, "lookup", "+48601000003", []).result == "ok"


@pytest.mark.parametrize("dialled", ["700123456", "0088123456789"])
def test_blocked_prefixes_are_refused(agi, dialled):
    session = Session(agi, "authorise", "+48601000001", [PIN, dialled])
    assert session.result == "refused"
    assert "blocked prefix" in session.variables["SIPWAVE_REASON"]


def test_the_pin_is_never_sent_back_to_asterisk(agi):
    session = Session(agi, "authorise", "+48601000001", [PIN, "123456789"])
    wrong = Session(agi, "authorise", "+48601000001", ["98765432", PIN, "123"])
    for command in session.commands + wrong.commands:
        assert PIN not in command and "98765432" not in command


@pytest.mark.parametrize(
    ("department", "sent"),
    [
        ("sales\nEXEC Dial PJSIP/+4420@sipwave-carrier",
         '"sales EXEC Dial PJSIP/+4420@sipwave-carrier"'),
        ('sales" 1\r\nHANGUP', '"sales\\" 1  HANGUP"'),
        ("back\\slash\u2028", '"back\\\\slash "'),
    ],
)  # fmt: skip
def test_a_department_never_produces_a_second_agi_command(agi, department, sent):
    # A row written before departments were checked, or by hand: the AGI script is the
    # last line of defence.
    with sqlite3.connect(agi / "dialin.sqlite") as connection:
        connection.execute("UPDATE account SET department = ? WHERE id = 'beta'", (department,))
    session = Session(agi, "lookup", "+48601000003", [])
    assert session.result == "ok"
    verbs = [" ".join(command.split()[:2]) for command in session.commands]
    assert set(verbs) == {"GET VARIABLE", "SET VARIABLE", 'VERBOSE "sipwave'}
    assert f"SET VARIABLE SIPWAVE_DEPARTMENT {sent}" in session.commands


def test_the_right_pin_is_refused_once_a_parallel_call_locked_the_account(agi):
    """Calls in parallel: while this caller types the right PIN, another call from one of the
    account's numbers uses up the tries; the right PIN then gets nothing."""

    def parallel_guesses() -> str:
        with sqlite3.connect(agi / "dialin.sqlite") as connection:
            connection.executemany(
                "INSERT INTO failure (caller, at) VALUES ('+48601000002', ?)",
                [(time.time(),)] * SETTINGS["lockout_failures"],
            )
        return PIN

    session = Session(agi, "authorise", "+48601000001", [parallel_guesses, "123456789"])
    assert session.variables["SIPWAVE_REASON"] == "locked out"
    assert "SIPWAVE_DESTINATION" not in session.variables
