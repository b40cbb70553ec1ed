"""Adding staff members (playbooks/user_add.yml, `sipwave user add`) on the real proxy,
provisioning host and Postfix: the account registers with the derived password, the numbers
come from the staff inventory one each, the phone's files are served over HTTPS and TFTP, the
settings mail arrives once, a second run changes nothing, check mode shows the plan, and bad
input is refused naming the value. Runs after the other tests (file order): its phones are
rendered by every later provisioning run."""

from __future__ import annotations

import base64
import email
import email.policy
import re

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils.credentials import (
    device_token,
    ha1,
    ha1b,
    staff_password,
)
from ansible_collections.sipwave.platform.plugins.module_utils.provisioning import file_names
from conftest import (
    NEW_DOMAIN,
    PROV_CONTAINER,
    PROXY,
    PROXY_CONTAINER,
    SITE_SECRET,
    Client,
    in_container,
    tftp_get,
)
from sipwave_testlib import sipp
from sipwave_testlib.playbooks import run_playbook, run_sipwave
from sipwave_testlib.secrets import record_runtime_secret

DATABASE = "/var/lib/kamailio/sipwave.sqlite"
MAILDIR = "/home/labmail/Maildir/new"
FIRST = {
    "login": "jkowalska",
    "display_name": "Joanna Kowalska",
    "email": "j.kowalska@staff.sipwave.test",
    "department": "support",
    "devices": ["yealink:T54W:80:5E:C0:AB:00:01"],
    "dialin_numbers": ["601 234 567"],
}
SECOND = ["anowak", "--name", "Adam Nowak", "--email", "a.nowak@staff.sipwave.test",
          "--phone", "snom:D785:00:04:13:ab:00:02"]  # fmt: skip


def recap_changed(output: str) -> dict[str, int]:
    return {host: int(n) for host, n in re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)",
                                                   output, re.MULTILINE)}  # fmt: skip


# The proxy's database read with the container's own Python (no sqlite3 CLI there).
SQL = (
    "import sqlite3, sys\n"
    "rows = sqlite3.connect(sys.argv[1]).execute(sys.argv[2])\n"
    "print('\\n'.join('|'.join(map(str, row)) for row in rows))"
)


def sql(query: str) -> str:
    result = in_container(PROXY_CONTAINER, "python3", "-c", SQL, DATABASE, query)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def mails() -> list[email.message.EmailMessage]:
    each = f'for f in {MAILDIR}/*; do [ -f "$f" ] && base64 -w0 "$f" && echo; done; true'
    raw = in_container(PROV_CONTAINER, "sh", "-c", each)
    return [email.message_from_bytes(base64.b64decode(line), policy=email.policy.default)
            for line in raw.stdout.split()]  # fmt: skip


def password(login: str) -> str:
    value = staff_password(SITE_SECRET, login)
    for kind, secret in (("staff password", value), ("staff HA1", ha1(login, NEW_DOMAIN, value)),
                         ("staff HA1b", ha1b(login, NEW_DOMAIN, value))):  # fmt: skip
        record_runtime_secret(kind, f"staff member {login}", secret)
    return value


@pytest.fixture(scope="module")
def added():
    """Postfix on the provisioning host, a check-mode run, then the real run and a second."""
    password(FIRST["login"])
    password(SECOND[0])
    mail_server = run_playbook("mail_server.yml")
    assert mail_server.returncode == 0, mail_server.stdout[-3000:]
    planned = run_playbook("user_add.yml", FIRST, check=True)
    first = run_playbook("user_add.yml", FIRST)
    again = run_playbook("user_add.yml", FIRST)
    return planned, first, again


def test_check_mode_shows_the_plan_and_writes_nothing(added):
    planned, first, _again = added
    assert planned.returncode == 0, planned.stdout[-3000:]
    assert "+48225558000" in planned.stdout and "jkowalska@sip.sipwave.test" in planned.stdout
    assert re.search(r"credentials\W+set", planned.stdout)
    secret = password(FIRST["login"])
    assert secret not in planned.stdout and ha1(FIRST["login"], NEW_DOMAIN, secret) not in (
        planned.stdout
    )
    # The check run wrote nothing: the real run after it still had everything to do.
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap_changed(first.stdout)[PROXY_CONTAINER] > 0
    assert recap_changed(first.stdout)[PROV_CONTAINER] > 0


def test_the_account_registers_with_the_derived_password(added):
    login = FIRST["login"]
    row = [login, NEW_DOMAIN, sipp.credentials(login, password(login)), "127.0.22.131:5099"]
    result = sipp.run("register.xml", PROXY, "127.0.22.131", rows=[row])
    assert result.successful == 1, result.output


def test_a_wrong_password_is_refused(added):
    login = FIRST["login"]
    row = [login, NEW_DOMAIN, sipp.credentials(login, "not-the-password"), "127.0.22.132:5099"]
    result = sipp.run("register_refused.xml", PROXY, "127.0.22.132", rows=[row])
    assert result.successful == 1, result.output


def test_the_number_and_dialin_number_are_stored_and_only_hashes(added):
    rows = sql("SELECT number, kind, state FROM sipwave_number WHERE login = 'jkowalska' "
               "ORDER BY kind")  # fmt: skip
    assert rows.splitlines() == ["+48601234567|dialin|active", "+48225558000|number|active"]
    assert sql("SELECT alias_username, username FROM dbaliases WHERE username = 'jkowalska'") == (
        "48225558000|jkowalska"
    )
    columns = sql("SELECT name FROM pragma_table_info('subscriber')").split()
    assert "password" not in columns


def test_the_phone_files_are_served_over_https_and_tftp_only_the_common_ones(added, tls_context):
    mac = "805ec0ab0001"
    token = device_token(SITE_SECRET, mac)
    name = file_names("yealink", mac)[0][1]
    client = Client("127.0.22.133", tls_context)
    status, body = client.get(f"/p/{token}/{name}")
    client.close()
    assert status == 200
    text = body.decode()
    assert "jkowalska" in text and password("jkowalska") in text
    # TFTP (no TLS) serves the vendor's common file pointing at HTTPS, never the phone's own.
    assert tftp_get("y000000000000.cfg", source="127.0.22.134")[0]
    assert not tftp_get(name, source="127.0.22.134")[0]


def test_the_settings_mail_arrives_once_with_password_and_number(added):
    sent = [m for m in mails() if m["To"] and "j.kowalska@" in m["To"]]
    assert len(sent) == 1
    body = sent[0].get_content()
    assert password("jkowalska") in body and "+48225558000" in body


def test_a_second_run_changes_nothing(added):
    _planned, _first, again = added
    assert again.returncode == 0, again.stdout[-3000:]
    assert set(recap_changed(again.stdout).values()) == {0}, recap_changed(again.stdout)


def test_the_next_member_gets_the_next_number_through_the_sipwave_command(added):
    run = run_sipwave("user", "add", *SECOND)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert sql("SELECT number FROM sipwave_number WHERE login = 'anowak'") == "+48225558001"
    row = ["anowak", NEW_DOMAIN, sipp.credentials("anowak", password("anowak")),
           "127.0.22.135:5099"]  # fmt: skip
    assert sipp.run("register.xml", PROXY, "127.0.22.135", rows=[row]).successful == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"devices": ["yealink:T54W:80:5E:C0:ZZ:00:01"]}, "malformed MAC '80:5E:C0:ZZ:00:01'"),
        ({"devices": ["nokia:3310:80:5E:C0:AB:00:09"]}, "unknown vendor 'nokia'"),
        ({"login": "481200001"}, "login '481200001' is taken by a customer"),
        ({"login": "mwisniewski", "devices": [], "dialin_numbers": [], "number": "+48225559999"},
         "number +48225559999 is not in the staff number inventory"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_value(added, change, named):
    """A taken number, a taken MAC and the other refusals: tests/unit/test_staff_account.py."""
    run = run_playbook("user_add.yml", {**FIRST, **change})
    assert run.returncode != 0
    assert named in run.stdout, run.stdout[-3000:]
