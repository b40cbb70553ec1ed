#!/usr/bin/python
# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: notify
short_description: Render and send one e-mail per account through an SMTP server, once
version_added: 0.1.0
description:
  - Renders a subject and a body template (Jinja2, sandboxed) for every account of a batch and
    sends the messages through one SMTP connection.
  - A sent-log on the host running the module remembers each (notification, wave, login)
    that was sent, so a re-run, also after a crash half-way, sends only what is missing.
  - Every template is rendered before the first message goes out, so a template error sends
    nothing. Messages are never returned, logged or shown in a diff; values given in
    O(messages[].secrets) (a generated password) only go into the message itself.
  - Run it where the SMTP server is reachable and the sent-log should live (the controller).
author:
  - sipwave developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Lists who would get the notification; nothing is rendered into a message or sent.
  diff_mode:
    support: full
    details: One recipient per line (login and address), never a message.
  platform:
    platforms: posix
requirements:
  - jinja2 (present wherever Ansible runs).
options:
  notification:
    description:
      - What is sent, e.g. C(notice), C(reminder), C(phase2), C(closure).
      - Part of the sent-log key.
    type: str
    required: true
  wave:
    description: The wave the notification belongs to. Part of the sent-log key.
    type: str
    required: true
  subject:
    description: Jinja2 template of the subject line.
    type: str
    required: true
  body:
    description:
      - Jinja2 template of the plain-text body.
      - Sees O(context), then the message's C(login), C(email), C(display_name),
        O(messages[].values) and O(messages[].secrets).
    type: str
    required: true
  context:
    description: Values common to every message (wave date, domains, support address).
    type: dict
    default: {}
  messages:
    description: One entry per account.
    type: list
    elements: dict
    default: []
    suboptions:
      login:
        description: The account's legacy login; identifies it in the sent-log.
        type: str
        required: true
      email:
        description: Recipient address.
        type: str
        required: true
      display_name:
        description: Recipient name.
        type: str
        default: ""
      sender:
        description: This message's From (the operator writing to this customer); O(sender)
          when omitted.
        type: str
      values:
        description: Per-account values for the templates (numbers, new login, refund...).
        type: dict
        default: {}
      secrets:
        description: Per-account secrets for the templates (a generated password). Never shown.
        type: dict
        default: {}
  accounts:
    description:
      - Controller side (action plugin). Per-account outcomes of a wave run
        (O(sipwave.platform.wave#module:accounts)); each becomes a message whose template
        values are the outcome's fields, completed from O(export) when given.
    type: list
    elements: dict
  export:
    description:
      - Controller side (action plugin). The legacy export. Without O(accounts) the messages
        go to the accounts O(wave) (then an entry of C(sipwave_waves)) selects in it.
    type: path
  number_plan:
    description: Controller side (action plugin). Country plan the export is read with.
    type: dict
  site_secret:
    description:
      - Controller side (action plugin). Secret the wave engine derives generated phase-2
        passwords from; accounts whose outcome says C(password_generated) get theirs as the
        template value C(new_password), in their own message only.
      - Values with C(issued_code) (module C(port_donor)) get its C(secret_code) the same way.
      - Values with C(staff_password) (playbooks/user_add.yml) get the staff member's SIP
        password as C(password) the same way.
    type: str
  operators:
    description:
      - Controller side (action plugin). The legacy and the new operator, each C(name) and
        C(address). Every message goes out from the legacy operator, unless its login is in
        O(consented); then from the new operator (module_utils/message_rules.py).
    type: dict
  consented:
    description: Controller side (action plugin). Logins that consented to the new operator.
    type: list
    elements: str
  decided:
    description:
      - Controller side (action plugin). Logins with a recorded decision; a
        C(decision_reminder) skips them.
    type: list
    elements: str
  only:
    description:
      - Controller side (action plugin). Write only to these logins (customer care, one
        account); a login that is not among the notification's recipients is refused.
    type: list
    elements: str
  resend:
    description:
      - Send again to recipients the sent-log already holds (recorded as a resend). For one
        account at a time (O(only)); the playbook refuses it otherwise.
    type: bool
    default: false
  today:
    description:
      - Controller side (action plugin). The day of the run (C(YYYY-MM-DD)). With a wave entry
        as O(wave), a C(notice) or C(reminder) outside its window is refused.
    type: str
  days_before:
    description:
      - Controller side (action plugin). Days before the wave date each window opens, as
        C(notice) (21) and C(reminder) (5). A window closes the day before the wave date.
      - C(decision_reminder) (7) counts back from the wave's C(decide_by), the last day of
        its decision window, included.
    type: dict
  sender:
    description: The From address of messages that name none of their own.
    type: str
    required: true
  smtp_host:
    description: SMTP server.
    type: str
    required: true
  smtp_port:
    description: SMTP port.
    type: int
    default: 25
  smtp_security:
    description: C(starttls) upgrades the connection, C(ssl) connects over TLS, C(none) neither.
    type: str
    choices: [none, starttls, ssl]
    default: starttls
  smtp_username:
    description: SMTP login; no authentication when omitted.
    type: str
  smtp_password:
    description: SMTP password.
    type: str
  smtp_timeout:
    description: Seconds to wait for the SMTP server.
    type: int
    default: 30
  sent_log:
    description: JSON-lines file (created when missing) recording every message sent.
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Tell the wave's customers what happens on the wave date
  sipwave.platform.notify:
    notification: notice
    wave: "{{ wave }}"
    subject: "{{ lookup('ansible.builtin.file', 'mail/notice.subject.j2') }}"
    body: "{{ lookup('ansible.builtin.file', 'mail/notice.body.j2') }}"
    context: {date: "2026-12-01", legacy_domain: ip.tanifon.pl}
    messages:
      - {login: "221234567", email: anna@example.net, display_name: Anna Nowak}
    sender: migration@sipwave.example
    smtp_host: smtp.example.net
    sent_log: "{{ playbook_dir }}/../reports/notifications.jsonl"
  delegate_to: localhost
"""

RETURN = r"""
sent:
  description: Recipients sent to (or that would be sent to in check mode), as C(login <email>).
  returned: always
  type: list
  elements: str
  sample: ["221234567 <anna@example.net>"]
already_sent:
  description: Recipients skipped because the sent-log already holds their message.
  returned: always
  type: list
  elements: str
  sample: []
counts:
  description: Number of recipients per outcome.
  returned: always
  type: dict
  sample: {"sent": 1, "already_sent": 0}
"""

# Ansible wants imports after the documentation (validate-modules: import-before-documentation).
import smtplib  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from ansible_collections.sipwave.platform.plugins.module_utils.mail import (  # noqa: E402
    SandboxedEnvironment,
    append_sent,
    connect,
    open_sent_log,
    read_sent,
    recipient,
    render_all,
)
from ansible_collections.sipwave.platform.plugins.module_utils.quiet_module import (  # noqa: E402
    QuietBulkModule,
)


def main() -> None:
    module = QuietBulkModule(
        summarised=("messages",),
        argument_spec={
            "notification": {"type": "str", "required": True},
            "wave": {"type": "str", "required": True},
            "subject": {"type": "str", "required": True},
            "body": {"type": "str", "required": True},
            "context": {"type": "dict", "default": {}},
            "messages": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "no_log": False,  # summarised by QuietBulkModule, see there why
                "options": {
                    "login": {"type": "str", "required": True},
                    "email": {"type": "str", "required": True},
                    "display_name": {"type": "str", "default": ""},
                    "sender": {"type": "str"},
                    "values": {"type": "dict", "default": {}},
                    "secrets": {"type": "dict", "default": {}, "no_log": False},
                },
            },
            "sender": {"type": "str", "required": True},
            "smtp_host": {"type": "str", "required": True},
            "smtp_port": {"type": "int", "default": 25},
            "smtp_security": {
                "type": "str",
                "default": "starttls",
                "choices": ["none", "starttls", "ssl"],
            },
            "smtp_username": {"type": "str"},
            "smtp_password": {"type": "str", "no_log": True},
            "smtp_timeout": {"type": "int", "default": 30},
            "sent_log": {"type": "path", "required": True},
            "resend": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    if SandboxedEnvironment is None:
        module.fail_json(msg="the notify module needs the jinja2 Python package")
    messages = params["messages"]
    logins = [m["login"] for m in messages]
    duplicates = sorted({login for login in logins if logins.count(login) > 1})
    if duplicates:
        module.fail_json(msg=f"messages list these logins more than once: {', '.join(duplicates)}")
    try:
        already = read_sent(params["sent_log"], params["notification"], params["wave"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read the sent-log: {exc}")
    # A resend (customer care, one account) goes out again although the sent-log has it.
    todo = [m for m in messages if params["resend"] or m["login"] not in already]
    skipped = [recipient(m) for m in messages if m not in todo]
    result = {
        "changed": bool(todo),
        "sent": [recipient(m) for m in todo],
        "already_sent": skipped,
        "counts": {"sent": len(todo), "already_sent": len(skipped)},
    }
    if module._diff:
        result["diff"] = {
            "before": "",
            "after": "".join(f"{params['notification']} to {recipient(m)}\n" for m in todo),
        }
    if not todo or module.check_mode:
        module.exit_json(**result)

    try:
        rendered = render_all(params, todo)
    except ValueError as exc:
        module.fail_json(msg=str(exc), **{**result, "changed": False, "sent": []})
    sent: list[str] = []
    try:
        log = open_sent_log(params["sent_log"])
    except OSError as exc:
        module.fail_json(msg=f"cannot write the sent-log: {exc}", **{**result, "changed": False})
    try:
        with log:
            smtp = connect(params)
            try:
                for message, mail in zip(todo, rendered, strict=True):
                    smtp.send_message(mail)
                    append_sent(
                        log,
                        {
                            "notification": params["notification"],
                            "wave": params["wave"],
                            "login": message["login"],
                            "email": message["email"],
                            "message_id": mail["Message-ID"],
                            "sender": str(mail["From"]),
                            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
                            **({"resend": True} if params["resend"] else {}),
                        },
                    )
                    sent.append(recipient(message))
            finally:
                smtp.quit()
    except (OSError, smtplib.SMTPException) as exc:
        module.fail_json(
            msg=f"SMTP {params['smtp_host']}:{params['smtp_port']}: {exc}; "
            f"{len(sent)} of {len(todo)} sent (a re-run sends the rest)",
            changed=bool(sent),
            sent=sent,
            already_sent=skipped,
            counts={"sent": len(sent), "already_sent": len(skipped)},
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
