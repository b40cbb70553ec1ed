"""sipwave.platform.notify: one e-mail per account, through SMTP, never twice, never a secret.

A small SMTP server on 127.0.0.1 receives what the module sends (the Molecule scenario
`migration` does the same against postfix).
"""

import email
import email.policy
import json
import socketserver
import threading
from pathlib import Path

import pytest
from module_runner import run_module_file

MODULE = (
    Path(__file__).resolve().parents[2]
    / "collections/ansible_collections/sipwave/platform/plugins/modules/notify.py"
)
NEW_PASSWORD = "Gen-Pw-7Qx9-Zk2m"
ACCOUNTS = [
    {"login": "221234567", "email": "anna@example.net", "display_name": "Anna Nowak"},
    {"login": "221234568", "email": "jan@example.net", "display_name": "Jan Kowalski"},
    {"login": "221234569", "email": "ewa@example.net", "display_name": "Ewa Zielińska"},
]


class SmtpSink(socketserver.ThreadingTCPServer):
    """Accepts mail like an MTA; ``refuse_after`` messages it answers 451 to every DATA."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, refuse_after: int | None = None):
        super().__init__(("127.0.0.1", 0), SmtpSession)
        self.messages: list[email.message.EmailMessage] = []
        self.refuse_after = refuse_after


class SmtpSession(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ESMTP")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250 sink")
            elif verb == "DATA":
                refuse = (
                    self.server.refuse_after is not None
                    and len(self.server.messages) >= self.server.refuse_after
                )
                if refuse:
                    self.reply("451 try later")
                    continue
                self.reply("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.server.messages.append(
                    email.message_from_bytes(data, policy=email.policy.default)
                )
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp():
    servers = []

    def start(refuse_after=None):
        server = SmtpSink(refuse_after)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def args(tmp_path, server, **overrides):
    values = {
        "notification": "phase2",
        "wave": "w1",
        "subject": "Your new SIP settings, {{ display_name }}",
        "body": (
            "Login: {{ new_login }}@{{ new_domain }}\n"
            "{% if new_password is defined %}Password: {{ new_password }}\n{% endif %}"
        ),
        "context": {"new_domain": "sip.sipwave.test"},
        "messages": [
            {**account, "values": {"new_login": "tnf" + account["login"]}} for account in ACCOUNTS
        ],
        "sender": "migration@sipwave.test",
        "smtp_host": "127.0.0.1",
        "smtp_port": server.server_address[1],
        "smtp_security": "none",
        "sent_log": str(tmp_path / "sent.jsonl"),
    }
    values["messages"][0]["secrets"] = {"new_password": NEW_PASSWORD}
    return {**values, **overrides}


def run(tmp_path, module_args, **flags):
    completed = run_module_file(MODULE, tmp_path, module_args, **flags)
    return json.loads(completed.stdout), completed.stdout


def test_each_account_gets_its_own_rendered_message(tmp_path, smtp):
    server = smtp()
    result, _ = run(tmp_path, args(tmp_path, server))
    assert result["changed"] is True
    assert result["counts"] == {"sent": 3, "already_sent": 0}
    by_login = {m["X-Sipwave-Notification"].split("login=")[1]: m for m in server.messages}
    assert sorted(by_login) == [a["login"] for a in ACCOUNTS]
    third = by_login["221234569"]
    assert third["To"].addresses[0].addr_spec == "ewa@example.net"
    assert third["Subject"] == "Your new SIP settings, Ewa Zielińska"
    assert third.get_content().splitlines() == ["Login: tnf221234569@sip.sipwave.test"]


def test_a_generated_password_goes_only_into_its_own_message(tmp_path, smtp):
    server = smtp()
    _, stdout = run(tmp_path, args(tmp_path, server), diff=True)
    bodies = {m["To"].addresses[0].addr_spec: m.get_content() for m in server.messages}
    assert f"Password: {NEW_PASSWORD}" in bodies["anna@example.net"]
    assert all(
        NEW_PASSWORD not in body for address, body in bodies.items() if "anna" not in address
    )
    assert NEW_PASSWORD not in stdout
    assert NEW_PASSWORD not in (tmp_path / "sent.jsonl").read_text()


def test_a_second_run_sends_nothing(tmp_path, smtp):
    server = smtp()
    run(tmp_path, args(tmp_path, server))
    result, _ = run(tmp_path, args(tmp_path, server))
    assert result["changed"] is False
    assert result["counts"] == {"sent": 0, "already_sent": 3}
    assert len(server.messages) == 3


def test_another_notification_of_the_same_wave_is_sent(tmp_path, smtp):
    server = smtp()
    run(tmp_path, args(tmp_path, server))
    result, _ = run(tmp_path, args(tmp_path, server, notification="closure"))
    assert result["counts"]["sent"] == 3


def test_check_mode_lists_recipients_and_sends_nothing(tmp_path, smtp):
    server = smtp()
    result, _ = run(tmp_path, args(tmp_path, server), check=True, diff=True)
    assert result["changed"] is True
    assert result["sent"][0] == "221234567 <anna@example.net>"
    assert "phase2 to 221234568 <jan@example.net>" in result["diff"]["after"]
    assert server.messages == []
    assert not (tmp_path / "sent.jsonl").exists()


def test_a_template_error_sends_nothing_and_names_the_login(tmp_path, smtp):
    server = smtp()
    broken = args(tmp_path, server, body="{{ new_login }} {{ no_such_value }}")
    result, stdout = run(tmp_path, broken)
    assert result["failed"] is True
    assert "login 221234567" in result["msg"] and "no_such_value" in result["msg"]
    assert server.messages == []
    assert NEW_PASSWORD not in stdout


def test_after_an_smtp_failure_half_way_a_rerun_sends_only_the_rest(tmp_path, smtp):
    flaky = smtp(refuse_after=1)
    result, _ = run(tmp_path, args(tmp_path, flaky))
    assert result["failed"] is True
    assert "1 of 3 sent" in result["msg"]
    healthy = smtp()
    result, _ = run(tmp_path, args(tmp_path, healthy))
    assert result["counts"] == {"sent": 2, "already_sent": 1}
    delivered = [m["X-Sipwave-Notification"] for m in flaky.messages + healthy.messages]
    assert sorted(delivered) == sorted(f"phase2; wave=w1; login={a['login']}" for a in ACCOUNTS)


def test_duplicate_logins_are_refused(tmp_path, smtp):
    server = smtp()
    module_args = args(tmp_path, server)
    module_args["messages"].append(dict(ACCOUNTS[1]))
    result, _ = run(tmp_path, module_args)
    assert result["failed"] is True
    assert "221234568" in result["msg"]
    assert server.messages == []


def test_the_sent_log_directory_is_created(tmp_path, smtp):
    server = smtp()
    log = tmp_path / "reports" / "new" / "sent.jsonl"
    result, _ = run(tmp_path, args(tmp_path, server, sent_log=str(log)))
    assert result["counts"]["sent"] == 3
    assert len(log.read_text().splitlines()) == 3


def test_an_unwritable_sent_log_sends_nothing(tmp_path, smtp):
    server = smtp()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result, _ = run(tmp_path, args(tmp_path, server, sent_log=str(blocker / "sent.jsonl")))
    assert result["failed"] is True
    assert "sent-log" in result["msg"]
    assert server.messages == []


def test_control_characters_in_values_start_no_header_or_line(tmp_path, smtp):
    server = smtp()
    hostile = {
        "login": "221234570",
        "email": "eve@example.net",
        "display_name": "Eve\r\nBcc: everyone@example.net",
        "values": {"new_login": "tnf221234570\nPassword: 1234"},
    }
    module_args = args(tmp_path, server, messages=[hostile])
    result, _ = run(tmp_path, module_args)
    assert result["counts"] == {"sent": 1, "already_sent": 0}
    (mail,) = server.messages
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Your new SIP settings, Eve Bcc: everyone@example.net"
    assert mail["To"].addresses[0].addr_spec == "eve@example.net"
    assert mail.get_content().splitlines() == [
        "Login: tnf221234570 Password: 1234@sip.sipwave.test"
    ]


def test_a_message_with_its_own_sender_goes_out_from_it(tmp_path, smtp):
    """The notify action names each message's operator (message_rules): the module writes
    it into From, the others keep the module's sender."""
    server = smtp()
    module_args = args(tmp_path, server)
    module_args["messages"][0]["sender"] = "sipwave <migration@sip.sipwave.test>"
    result, _ = run(tmp_path, module_args)
    assert result["changed"], result
    senders = {m["To"].addresses[0].addr_spec: str(m["From"]) for m in server.messages}
    assert senders["anna@example.net"] == "sipwave <migration@sip.sipwave.test>"
    assert senders["jan@example.net"] == module_args["sender"]
    anna = next(m for m in server.messages if "anna" in str(m["To"]))
    assert anna["Message-ID"].endswith("@sip.sipwave.test>")
