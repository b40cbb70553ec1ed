"""What each `sipwave` subcommand runs: one table entry per subcommand, naming its playbook and
how its arguments become extra variables, the limit and check mode.

A playbook that another part of the project adds later (health checks, user accounts) gets its
subcommand by one entry here; a subcommand whose playbook is missing from the checkout answers
with a usage error instead of running anything.
"""

import argparse
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class UsageError(Exception):
    """A command line that cannot be run (exit code 2)."""


@dataclass(frozen=True)
class Arg:
    """One argument of a subcommand. ``var`` names the extra variable it sets; ``limit`` makes
    it the run's --limit instead; ``path`` resolves it against the caller's directory (the
    playbook runs in the project directory); ``many`` collects a list."""

    name: str
    help: str
    var: str = ""
    limit: bool = False
    path: bool = False
    many: bool = False
    required: bool = False
    choices: tuple[str, ...] = ()
    metavar: str | None = None

    @property
    def positional(self) -> bool:
        return not self.name.startswith("-")

    @property
    def dest(self) -> str:
        return "arg_" + self.name.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    playbook: str
    help: str
    args: tuple[Arg, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)
    check: bool = False  # always check mode with diff: shows, changes nothing

    @property
    def name(self) -> str:
        return " ".join(self.words)


@dataclass
class Invocation:
    """What one run hands to ansible-runner."""

    command: str
    playbook: str
    extra_vars: dict[str, Any] = field(default_factory=dict)
    extra_var_files: list[str] = field(default_factory=list)
    limit: str | None = None
    check: bool = False
    diff: bool = False
    inventory: str | None = None
    verbosity: int = 0


WAVE = Arg("wave", "the wave's name (sipwave_waves)", var="wave", required=True)
PHASE = Arg("--phase", "run phase 2 of the wave (default: the wave's phase)", var="wave_phase",
            choices=("1", "2"))  # fmt: skip
TODAY = Arg("--today", "the date the run acts on, YYYY-MM-DD", var="sipwave_today",
            metavar="DATE")  # fmt: skip
REFS = Arg("--ref", "a port request's reference (repeatable)", var="refs", many=True)
MAILS = ("notice", "reminder", "decision_reminder", "phase2", "closure")

COMMANDS: tuple[Command, ...] = (
    Command(("wave", "plan"), "migrate_wave.yml",
            "show what a wave run would change (check mode with diff); changes nothing",
            (WAVE, PHASE, TODAY), check=True),
    Command(("wave", "run"), "migrate_wave.yml", "migrate a wave's accounts", (WAVE, PHASE, TODAY)),
    Command(("wave", "status"), "wave_status.yml",
            "a wave's state from its newest report (all waves without a name); changes nothing",
            (Arg("wave", "the wave's name (default: every wave)", var="wave"),)),
    Command(("wave", "rollback"), "rollback_wave.yml",
            "put a wave's accounts back as they were before its first run",
            (WAVE, Arg("--force-after-cutover", "roll back accounts past their cutover, for this "
                       "reason (audited)", var="sipwave_force_after_cutover", metavar="REASON"))),
    Command(("wave", "notify"), "notify_wave.yml", "write to a wave's customers (each mail once)",
            (WAVE, Arg("notification", "which mail", var="notification", required=True,
                       choices=MAILS))),
    Command(("account", "consent"), "record_consent.yml",
            "record customers' phase-2 decisions (a CSV of login,decision, or one customer)",
            (Arg("--file", "the decisions' CSV", var="consent_file", path=True),
             Arg("--login", "one customer's legacy login", var="login"),
             Arg("--decision", "that customer's decision", var="decision",
                 choices=("migrate", "close")),
             Arg("--move-now-in", "move that customer at once, in this wave (phase 2 alone)",
                 var="wave", metavar="WAVE"))),
    Command(("account", "show"), "account_show.yml",
            "one account: state, numbers, registrations, history, export row, mails; "
            "changes nothing",
            (Arg("login", "the account's legacy login", var="login", required=True),)),
    Command(("account", "move"), "migrate_wave.yml",
            "move one account of a wave on its own (e.g. phase 2 as soon as it consented)",
            (Arg("login", "the account's legacy login", var="account", required=True),
             Arg("--wave", "the account's wave", var="wave", required=True), PHASE, TODAY)),
    Command(("account", "resend"), "notify_wave.yml",
            "send one customer a wave's mail again (same sender and window rules as the wave's)",
            (Arg("login", "the account's legacy login", var="account", required=True),
             Arg("--wave", "the account's wave", var="wave", required=True),
             Arg("--mail", "which mail", var="notification", required=True, choices=MAILS),
             TODAY),
            fixed={"resend": True}),
    Command(("account", "rollback"), "rollback_wave.yml",
            "put one account of a wave back as it was before the wave; the others stay",
            (Arg("login", "the account's legacy login", var="account", required=True),
             Arg("--wave", "the account's wave", var="wave", required=True))),
    Command(("host", "rollback"), "rollback_host.yml",
            "put proxies or PBXs back on their previous release, one host at a time",
            (Arg("hosts", "hosts, groups or patterns to roll back", limit=True, many=True,
                 required=True),)),
    Command(("backup", "run"), "backup.yml",
            "take a backup set of every proxy and copy it to the controller"),
    Command(("backup", "list"), "backup_list.yml",
            "the newest backup of each proxy on the controller; changes nothing"),
    Command(("restore",), "restore.yml",
            "put one proxy's database back from a backup set (-e restore_before_cutover=true "
            "for a set older than its last cutover)",
            (Arg("host", "the proxy to restore", limit=True, required=True),
             Arg("--file", "a copy on the controller (default: the newest)", var="backup_file"),
             Arg("--set", "a set on the host instead (e.g. of its backup timer)",
                 var="backup_set"))),
    Command(("health",), "health.yml", "check that every service answers"),
    Command(("report", "costs"), "cost_report.yml",
            "what each department's calls cost in a month",
            (Arg("--period", "the month, YYYY-MM (default: this month)", var="period"),)),
    Command(("report", "unregistered"), "unregistered_report.yml",
            "a wave's phase-2 accounts without a registration since (CSV for customer care)",
            (WAVE,)),
    Command(("user", "add"), "user_add.yml",
            "add a staff member: SIP account, number, phones, dial-in numbers, settings mail",
            (Arg("login", "the staff member's SIP login", var="login", required=True),
             Arg("--name", "the name on the phone and in the mail", var="display_name"),
             Arg("--email", "where the settings mail goes", var="email"),
             Arg("--department", "cost centre of the calls", var="department"),
             Arg("--phone", "a phone, vendor:model:mac (repeatable)", var="devices", many=True),
             Arg("--number", "the number to give (default: the lowest free one)", var="number"),
             Arg("--dialin", "a caller number allowed to use dial-in (repeatable)",
                 var="dialin_numbers", many=True))),
    Command(("port", "submit"), "port.yml",
            "port requests from a CSV (or -e @request.yml): phase 1, then to the donors",
            (Arg("--requests-file", "ref,login,migration_code,secret_code,numbers,"
                 "requested_date", var="port_requests_file", path=True),),
            fixed={"port_action": "submit"}),
    Command(("port", "exchange"), "port.yml", "apply the donors' answers, send waiting requests",
            fixed={"port_action": "exchange"}),
    Command(("port", "schedule"), "port.yml", "give accepted requests their porting date",
            (REFS, Arg("--date", "the porting date, YYYY-MM-DD", var="date")),
            fixed={"port_action": "schedule"}),
    Command(("port", "complete"), "port.yml", "record the technical porting's outcome",
            (REFS, Arg("--outcome", "the outcome", var="outcome", choices=("ported", "failed")),
             Arg("--reason", "why it failed", var="reason")),
            fixed={"port_action": "complete"}),
    Command(("port", "cancel"), "port.yml", "cancel port requests (their numbers are freed)",
            (REFS, Arg("--reason", "why", var="reason", required=True)),
            fixed={"port_action": "cancel"}),
    Command(("port", "show"), "port.yml", "port requests and their states; changes nothing",
            (Arg("--login", "one customer's requests", var="login"),),
            fixed={"port_action": "show"}),
    Command(("cutover",), "cutover.yml",
            "the point of no return for accounts whose numbers are ported",
            (Arg("--wave", "every account the wave's newest report shows served", var="wave"),
             Arg("--login", "an account's login (repeatable)", var="logins", many=True))),
)  # fmt: skip


def by_name() -> dict[str, Command]:
    return {command.name: command for command in COMMANDS}


# -- the command line --------------------------------------------------------------------------


PROJECT_HELP = (
    "the sipwave checkout (default: the current directory or one above it, else the one this "
    "program was installed from)"
)


def _common_options(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand takes (after its name), kept apart from its own arguments."""
    group = parser.add_argument_group("run options")
    # Also before the subcommand (sipwave --project DIR ...): not set here, not overwritten.
    group.add_argument("--project", default=argparse.SUPPRESS, help=PROJECT_HELP)
    group.add_argument("-i", "--inventory", help="inventory (default: ansible.cfg's)")
    group.add_argument("-l", "--limit", help="run on these hosts only (Ansible's --limit)")
    group.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                       help="extra variables: key=value, JSON/YAML, or @file (secrets only in "
                       "a file); repeatable")  # fmt: skip
    group.add_argument("-C", "--check", action="store_true", help="change nothing (check mode)")
    group.add_argument("-D", "--diff", action="store_true", help="show what changes")
    group.add_argument("--json", action="store_true",
                       help="print one JSON object with the result on stdout")  # fmt: skip
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="Ansible's verbosity of the run's full output (kept in the run's "
                       "directory)")  # fmt: skip


def _add_arg(parser: argparse.ArgumentParser, arg: Arg) -> None:
    options: dict[str, Any] = {"help": arg.help}
    if arg.choices:
        options["choices"] = arg.choices
    if arg.positional:
        options["metavar"] = arg.metavar or arg.name.upper()
        if arg.many:
            options["nargs"] = "+" if arg.required else "*"
        elif not arg.required:
            options["nargs"] = "?"
        parser.add_argument(arg.dest, **options)
        return
    if arg.metavar:
        options["metavar"] = arg.metavar
    if arg.many:
        options["action"] = "append"
    parser.add_argument(arg.name, dest=arg.dest, required=arg.required, **options)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="sipwave",
        description="Run sipwave's playbooks with progress and a summary. Every subcommand is "
        "one playbook of playbooks/ (see docs/cli.md); ansible-playbook runs them just as well.",
    )
    top.add_argument("--project", help=PROJECT_HELP)
    groups: dict[str, argparse._SubParsersAction] = {}
    first = top.add_subparsers(dest="word0", metavar="COMMAND", parser_class=_Parser)
    first.required = True
    for command in COMMANDS:
        head, *rest = command.words
        if not rest:
            sub = first.add_parser(head, help=command.help, description=command.help)
        else:
            if head not in groups:
                group_parser = first.add_parser(head, help=f"{head} commands")
                groups[head] = group_parser.add_subparsers(dest="word1", metavar="ACTION",
                                                           parser_class=_Parser)  # fmt: skip
                groups[head].required = True
            sub = groups[head].add_parser(rest[0], help=command.help, description=command.help)
        sub.set_defaults(command=command.name)
        for arg in command.args:
            _add_arg(sub, arg)
        _common_options(sub)
    return top


# -- arguments to a run ------------------------------------------------------------------------


def parse_extra_vars(values: Sequence[str], cwd: Path) -> tuple[dict[str, Any], list[str]]:
    """-e values as ansible-playbook reads them: ``@file`` (kept as a file, its path made
    absolute), a JSON or YAML mapping, or ``key=value`` words."""
    inline: dict[str, Any] = {}
    files: list[str] = []
    for value in values:
        text = value.strip()
        if text.startswith("@"):
            path = (cwd / text[1:]).resolve()
            if not path.is_file():
                raise UsageError(f"-e {value}: no such file")
            files.append(str(path))
        elif text.startswith(("{", "[")):
            try:
                loaded = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise UsageError(f"-e: not JSON or YAML: {error.__class__.__name__}") from None
            if not isinstance(loaded, dict):
                raise UsageError("-e: a JSON or YAML value must be a mapping")
            inline.update(loaded)
        else:
            for word in shlex.split(text):
                key, sep, item = word.partition("=")
                if not sep or not key.isidentifier():
                    raise UsageError(f"-e: {key!r} is not key=value")
                inline[key] = item
    return inline, files


def invocation(namespace: argparse.Namespace, cwd: Path) -> Invocation:
    """The run a parsed command line asks for (nothing is run or checked on disk here except
    the -e @files)."""
    command = by_name()[namespace.command]
    extra: dict[str, Any] = dict(command.fixed)
    limit = namespace.limit
    for arg in command.args:
        value = getattr(namespace, arg.dest)
        if value is None or value == []:
            continue
        if arg.path:
            value = [str((cwd / v).resolve()) for v in value] if arg.many else str(
                (cwd / value).resolve())  # fmt: skip
        if arg.limit:
            if namespace.limit:
                raise UsageError(f"sipwave {command.name}: name the hosts as arguments, not "
                                 "with --limit")  # fmt: skip
            limit = ",".join(value) if arg.many else value
        else:
            extra[arg.var] = value
    passed, files = parse_extra_vars(namespace.extra_vars, cwd)
    extra.update(passed)
    inventory = namespace.inventory
    if inventory and "," not in inventory:
        inventory = str((cwd / inventory).resolve())
    return Invocation(
        command=command.name,
        playbook=command.playbook,
        extra_vars=extra,
        extra_var_files=files,
        limit=limit,
        check=command.check or namespace.check,
        diff=command.check or namespace.diff,
        inventory=inventory,
        verbosity=namespace.verbose,
    )
