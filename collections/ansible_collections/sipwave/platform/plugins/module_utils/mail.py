# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Customer mail of the notify module: the sent-log (one JSON line per message sent, so that
no customer gets a message twice), the messages rendered from sandboxed Jinja2 templates, and
the SMTP connection."""

from __future__ import annotations

import json
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from ansible_collections.sipwave.platform.plugins.module_utils.control_chars import printable

try:
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment
except ImportError:  # pragma: no cover - reported by the module
    SandboxedEnvironment = None

HEADER = "X-Sipwave-Notification"


def recipient(message: dict) -> str:
    return f"{message['login']} <{message['email']}>"


def read_sent(path: str, notification: str, wave: str) -> set[str]:
    """Logins the sent-log holds for this notification of this wave."""
    if not os.path.exists(path):
        return set()
    sent = set()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
            if entry.get("notification") == notification and entry.get("wave") == wave:
                sent.add(entry["login"])
    return sent


def render_all(params: dict, messages: list[dict]) -> list[EmailMessage]:
    # Values (names, departments... from the export) lose their control characters: in the
    # subject or a header a line break would start a header of its own.
    environment = SandboxedEnvironment(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=printable,
    )
    subject = environment.from_string(params["subject"])
    body = environment.from_string(params["body"])
    rendered = []
    for message in messages:
        values = {
            **params["context"],
            "login": message["login"],
            "email": message["email"],
            "display_name": message["display_name"],
            **message["values"],
            **message["secrets"],
        }
        try:
            subject_text = " ".join(subject.render(values).split())
            body_text = body.render(values)
        except TemplateError as exc:
            # The message names the template construct, never a value.
            raise ValueError(f"template error for login {message['login']}: {exc}") from None
        sender = message.get("sender") or params["sender"]
        mail = EmailMessage()
        mail["Subject"] = subject_text
        mail["From"] = sender
        mail["To"] = formataddr((printable(message["display_name"]), printable(message["email"])))
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">") or None)
        mail[HEADER] = f"{params['notification']}; wave={params['wave']}; login={message['login']}"
        mail.set_content(body_text)
        rendered.append(mail)
    return rendered


def connect(params: dict) -> smtplib.SMTP:
    host, port, timeout = params["smtp_host"], params["smtp_port"], params["smtp_timeout"]
    if params["smtp_security"] == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
        if params["smtp_security"] == "starttls":
            smtp.starttls(context=ssl.create_default_context())
    if params["smtp_username"]:
        smtp.login(params["smtp_username"], params["smtp_password"] or "")
    return smtp


def append_sent(log, entry: dict) -> None:
    # One line per message, on disk before the next one goes out: a crash loses nothing.
    log.write(json.dumps(entry, sort_keys=True) + "\n")
    log.flush()
    os.fsync(log.fileno())


def open_sent_log(path: str):
    """The sent-log opened for appending before anything is sent: if it cannot be written,
    no message goes out (it would be sent again by the next run)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return open(path, "a", encoding="utf-8")
