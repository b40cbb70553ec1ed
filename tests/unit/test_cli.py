"""The `sipwave` command: its table of subcommands (argument mapping, built without running)
and real runs through ansible-runner of small playbooks on local connections (no network)
and of the project's own read-only playbooks (wave status, backup list)."""

import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from sipwave_cli import commands, main, progress, runs

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "Zq8-secret-of-the-no-log-task"
PYTHON = sys.executable

PLAYBOOK = """
- name: Two hosts at work
  hosts: all
  gather_facts: false
  tasks:
    - name: Wait a moment
      ansible.builtin.command: sleep 0.2
      changed_when: true
    - name: Use the secret
      ansible.builtin.set_fact:
        seen: "{{ secret }}"
      no_log: true
    - name: Show the secret without logging it
      ansible.builtin.debug:
        msg: "the secret is {{ secret }}"
      no_log: true
    - name: Write a report
      ansible.builtin.copy:
        content: "done\\n"
        dest: "{{ report_dir }}/{{ inventory_hostname }}.txt"
        mode: "0600"
    - name: Publish the report's path
      ansible.builtin.set_stats:
        data:
          report_paths: ["{{ report_dir }}/{{ inventory_hostname }}.txt"]
    - name: Break on beta when asked
      ansible.builtin.fail:
        msg: beta refuses
      when: inventory_hostname == 'beta' and break_beta | default(false) | bool
"""


@pytest.fixture
def project(tmp_path):
    """A small checkout: ansible.cfg, an inventory of two local hosts, playbooks/backup.yml
    (so `sipwave backup run` runs it); health.yml is missing."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "reports").mkdir()
    (tmp_path / "ansible.cfg").write_text("[defaults]\ninventory = ./hosts.yml\n")
    inventory = {
        "all": {
            "hosts": {name: {"ansible_connection": "local"} for name in ("alpha", "beta")},
            "vars": {"ansible_python_interpreter": PYTHON, "report_dir": str(tmp_path / "reports")},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "playbooks" / "backup.yml").write_text(PLAYBOOK)
    (tmp_path / "secret.json").write_text(json.dumps({"secret": SECRET}))
    return tmp_path


def sipwave(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command as an operator runs it (stdout a pipe, not a terminal)."""
    environment = dict(os.environ, PYTHONPATH=str(PROJECT / "src"), **(env or {}))
    environment.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(
        [PYTHON, "-m", "sipwave_cli", *args], cwd=cwd, env=environment,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def mapped(*argv: str, cwd: Path = PROJECT) -> commands.Invocation:
    return commands.invocation(commands.parser().parse_args(argv), cwd)


# -- the table: arguments to playbook, extra vars, limit, check mode --------------------------


@pytest.mark.parametrize(
    ("argv", "playbook", "extra", "limit", "check"),
    [
        (["wave", "plan", "wave1"], "migrate_wave.yml", {"wave": "wave1"}, None, True),
        (["wave", "run", "wave2", "--phase", "2", "--today", "2026-12-07"], "migrate_wave.yml",
         {"wave": "wave2", "wave_phase": "2", "sipwave_today": "2026-12-07"}, None, False),
        (["wave", "status"], "wave_status.yml", {}, None, False),
        (["wave", "status", "wave1"], "wave_status.yml", {"wave": "wave1"}, None, False),
        (["wave", "rollback", "wave1", "--force-after-cutover", "customer asked"],
         "rollback_wave.yml",
         {"wave": "wave1", "sipwave_force_after_cutover": "customer asked"}, None, False),
        (["wave", "notify", "wave1", "reminder"], "notify_wave.yml",
         {"wave": "wave1", "notification": "reminder"}, None, False),
        (["account", "consent", "--login", "481200001", "--decision", "close"],
         "record_consent.yml", {"login": "481200001", "decision": "close"}, None, False),
        (["account", "consent", "--login", "481200005", "--decision", "migrate",
          "--move-now-in", "wave2"], "record_consent.yml",
         {"login": "481200005", "decision": "migrate", "wave": "wave2"}, None, False),
        (["account", "show", "481200005"], "account_show.yml", {"login": "481200005"}, None,
         False),
        (["account", "move", "481200005", "--wave", "wave2", "--phase", "2"], "migrate_wave.yml",
         {"account": "481200005", "wave": "wave2", "wave_phase": "2"}, None, False),
        (["account", "resend", "481200005", "--wave", "wave2", "--mail", "phase2"],
         "notify_wave.yml",
         {"account": "481200005", "wave": "wave2", "notification": "phase2", "resend": True},
         None, False),
        (["account", "rollback", "481200005", "--wave", "wave2"], "rollback_wave.yml",
         {"account": "481200005", "wave": "wave2"}, None, False),
        (["host", "rollback", "proxy2", "pbx1"], "rollback_host.yml", {}, "proxy2,pbx1", False),
        (["backup", "run", "--limit", "proxy1"], "backup.yml", {}, "proxy1", False),
        (["backup", "list"], "backup_list.yml", {}, None, False),
        (["restore", "proxy2", "--file", "sipwave-backup-20261204T031500Z.tar"], "restore.yml",
         {"backup_file": "sipwave-backup-20261204T031500Z.tar"}, "proxy2", False),
        (["restore", "proxy2", "--set", "sipwave-backup-20261204T031500Z"], "restore.yml",
         {"backup_set": "sipwave-backup-20261204T031500Z"}, "proxy2", False),
        (["health"], "health.yml", {}, None, False),
        (["report", "costs", "--period", "2026-12"], "cost_report.yml", {"period": "2026-12"},
         None, False),
        (["report", "unregistered", "wave1"], "unregistered_report.yml", {"wave": "wave1"},
         None, False),
        (["user", "add", "jan", "--name", "Jan Nowak", "--phone", "yealink:T54W:805ec0000001",
          "--phone", "snom:D785:000413000002", "--dialin", "601234567"], "user_add.yml",
         {"login": "jan", "display_name": "Jan Nowak", "dialin_numbers": ["601234567"],
          "devices": ["yealink:T54W:805ec0000001", "snom:D785:000413000002"]}, None, False),
        (["port", "exchange"], "port.yml", {"port_action": "exchange"}, None, False),
        (["port", "schedule", "--ref", "R1", "--ref", "R2", "--date", "2026-12-20"], "port.yml",
         {"port_action": "schedule", "refs": ["R1", "R2"], "date": "2026-12-20"}, None, False),
        (["port", "complete", "--ref", "R1", "--outcome", "failed", "--reason", "donor down"],
         "port.yml", {"port_action": "complete", "refs": ["R1"], "outcome": "failed",
                      "reason": "donor down"}, None, False),
        (["port", "cancel", "--ref", "R1", "--reason", "customer"], "port.yml",
         {"port_action": "cancel", "refs": ["R1"], "reason": "customer"}, None, False),
        (["port", "show", "--login", "481200001"], "port.yml",
         {"port_action": "show", "login": "481200001"}, None, False),
        (["cutover", "--login", "481200004", "--login", "481200005"], "cutover.yml",
         {"logins": ["481200004", "481200005"]}, None, False),
        (["cutover", "--wave", "wave1", "--check"], "cutover.yml", {"wave": "wave1"}, None, True),
    ],
)  # fmt: skip
def test_each_subcommand_maps_its_arguments_to_its_playbook(argv, playbook, extra, limit, check):
    run = mapped(*argv)
    assert (run.playbook, run.extra_vars, run.limit, run.check) == (playbook, extra, limit, check)
    assert run.diff is (argv[:2] == ["wave", "plan"])


def test_every_subcommand_of_the_table_is_tested_above():
    tested = {
        "wave plan", "wave run", "wave status", "wave rollback", "wave notify",
        "account consent", "account show", "account move", "account rollback", "account resend",
        "host rollback", "backup run", "backup list", "restore", "health",
        "report costs", "report unregistered", "user add", "port exchange", "port schedule",
        "port complete", "port cancel", "port show", "cutover", "port submit",
    }  # fmt: skip
    assert set(commands.by_name()) == tested


def test_every_playbook_of_the_table_exists():
    missing = {c.playbook for c in commands.COMMANDS} - {
        p.name for p in (PROJECT / "playbooks").glob("*.yml")
    }
    assert missing == set()


def test_file_arguments_are_made_absolute_for_the_run_in_the_project(tmp_path):
    (tmp_path / "consent.csv").write_text("login,decision\n")
    run = mapped("account", "consent", "--file", "consent.csv", cwd=tmp_path)
    assert run.extra_vars == {"consent_file": str(tmp_path / "consent.csv")}
    submit = mapped("port", "submit", "--requests-file", "r.csv", "-i", "inv.yml", cwd=tmp_path)
    assert submit.extra_vars["port_requests_file"] == str(tmp_path / "r.csv")
    assert submit.inventory == str(tmp_path / "inv.yml")


def test_extra_vars_pass_through_as_key_value_json_and_files(tmp_path):
    (tmp_path / "secret.yml").write_text("secret_code: x\n")
    run = mapped(
        "wave", "run", "wave1", "-e", "sipwave_today=2026-11-16 a='b c'",
        "-e", '{"logins": ["1", "2"]}', "-e", "@secret.yml", "-v", "-v", cwd=tmp_path,
    )  # fmt: skip
    assert run.extra_vars == {
        "wave": "wave1", "sipwave_today": "2026-11-16", "a": "b c", "logins": ["1", "2"],
    }  # fmt: skip
    assert run.extra_var_files == [str(tmp_path / "secret.yml")]
    assert run.verbosity == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["wave", "run"], "required: WAVE"),
        (["wave", "fly", "wave1"], "invalid choice: 'fly'"),
        (["restore", "proxy2", "--limit", "proxy1"], "not with --limit"),
        (["wave", "run", "wave1", "-e", "novalue"], "is not key=value"),
        (["wave", "run", "wave1", "-e", "@/nonexistent/vars.yml"], "no such file"),
        (["wave", "run", "wave1", "-e", "[1, 2]"], "must be a mapping"),
        (["wave", "notify", "wave1", "gossip"], "invalid choice: 'gossip'"),
    ],
)
def test_a_command_line_that_cannot_run_is_a_usage_error(argv, message):
    with pytest.raises(commands.UsageError, match=message.replace("(", r"\(")):
        mapped(*argv)


def test_the_console_script_is_the_entry_of_the_package():
    scripts = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"sipwave": "sipwave_cli.main:entry"}
    assert callable(main.entry)


# -- usage errors and missing playbooks: exit 2, nothing run -----------------------------------


def test_a_subcommand_whose_playbook_is_missing_says_so_and_exits_2(project):
    run = sipwave("health", cwd=project)
    assert run.returncode == 2
    assert "not available in this release: playbooks/health.yml is missing" in run.stderr
    assert not (project / ".cache").exists()  # nothing was run


def test_an_unknown_subcommand_exits_2(project):
    run = sipwave("teleport", cwd=project)
    assert run.returncode == 2 and "invalid choice: 'teleport'" in run.stderr


def test_outside_a_checkout_the_command_says_where_it_looked(tmp_path):
    run = sipwave("backup", "run", "--project", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 2 and "no sipwave checkout" in run.stderr


# -- real runs through ansible-runner ----------------------------------------------------------


@pytest.fixture
def successful_run(project):
    return sipwave("backup", "run", "-e", "@secret.json", cwd=project)


def test_without_a_terminal_progress_is_plain_lines_per_play_and_task(successful_run, project):
    assert successful_run.returncode == 0, successful_run.stdout + successful_run.stderr
    out = successful_run.stdout
    assert "\x1b" not in out
    lines = out.splitlines()
    assert lines[0] == "play 1: Two hosts at work"
    assert any(
        line.startswith("  task 1 (hosts 2/2) Wait a moment: ok 2, changed 2 (") for line in lines
    )
    assert any(line.startswith("  task 6 (hosts 2/2) Break on beta when asked: skipped 2") for
               line in lines)  # fmt: skip
    assert "sipwave backup run: ok in " in out
    assert f"  report: {project}/reports/alpha.txt" in lines
    assert any(line.split() == ["alpha", "5", "2", "0", "0", "1"] for line in lines)


def test_json_prints_one_object_with_stats_reports_and_no_failure(project):
    run = sipwave("backup", "run", "--json", "-e", "@secret.json", cwd=project)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["command"] == "backup run" and result["playbook"] == "playbooks/backup.yml"
    assert (result["rc"], result["status"], result["failures"]) == (0, "successful", [])
    assert result["hosts"]["beta"] == {
        "ok": 5, "changed": 2, "failed": 0, "unreachable": 0, "skipped": 1, "rescued": 0,
        "ignored": 0,
    }  # fmt: skip
    assert result["reports"] == [f"{project}/reports/alpha.txt", f"{project}/reports/beta.txt"]
    assert all(Path(path).is_file() for path in result["reports"])
    assert "play 1: Two hosts at work" in run.stderr  # progress beside the JSON, on stderr


def test_a_failing_task_exits_1_and_names_host_task_and_message(project):
    run = sipwave("backup", "run", "--json", "-e", "@secret.json", "-e", "break_beta=yes",
                  cwd=project)  # fmt: skip
    assert run.returncode == 1
    result = json.loads(run.stdout)
    assert result["status"] == "failed" and result["rc"] != 0
    assert result["failures"] == [
        {"host": "beta", "task": "Break on beta when asked", "message": "beta refuses"}
    ]
    assert result["hosts"]["beta"]["failed"] == 1 and result["hosts"]["alpha"]["failed"] == 0
    human = sipwave("backup", "run", "-e", "@secret.json", "-e", "break_beta=yes", cwd=project)
    assert human.returncode == 1
    assert "FAILED beta: Break on beta when asked: beta refuses" in human.stdout
    assert "sipwave backup run: FAILED (exit 1)" in human.stdout


def test_check_mode_reaches_the_playbook(project):
    run = sipwave("backup", "run", "--check", "--json", "-e", "@secret.json", cwd=project)
    result = json.loads(run.stdout)
    assert run.returncode == 0 and result["check"] is True
    assert not (project / "reports" / "alpha.txt").exists()


def test_a_no_log_secret_is_in_no_output_or_artifact_and_the_run_directory_is_private(
    project, successful_run
):
    assert successful_run.returncode == 0
    assert SECRET not in successful_run.stdout + successful_run.stderr
    runs = project / ".cache" / "sipwave" / "runs"
    (run_directory,) = runs.iterdir()
    for private in (runs.parent, runs, run_directory):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    files = [p for p in run_directory.rglob("*") if p.is_file()]
    assert any(p.name == "stdout" for p in files) and any(p.parent.name == "job_events"
                                                          for p in files)  # fmt: skip
    for path in files:
        assert SECRET not in path.read_text(errors="replace"), path
    # The extra variables' file is gone; the command artifact keeps no environment.
    assert not (run_directory / "extra-vars.json").exists()
    command = json.loads((run_directory / "artifacts" / "ansible" / "command").read_text())
    assert set(command) == {"command", "cwd"}


def test_verbose_runs_keep_ansible_output_without_the_secret(project):
    run = sipwave("backup", "run", "-vvvv", "-e", "@secret.json", cwd=project,
                  env={"SIPWAVE_RUNS_DIR": str(project / "runs")})  # fmt: skip
    assert run.returncode == 0
    (output,) = (project / "runs").glob("*/artifacts/ansible/stdout")
    text = output.read_text()
    assert "PLAY [Two hosts at work]" in text and "<alpha> ESTABLISH LOCAL CONNECTION" in text
    assert SECRET not in text and SECRET not in run.stdout


def test_on_a_terminal_a_progress_bar_follows_the_hosts_of_the_task():
    stream = io.StringIO()
    display = progress.Display(stream, tty=True)
    display({"event": "playbook_on_play_start", "event_data": {"name": "Migrate"}})
    display({"event": "playbook_on_task_start", "event_data": {"task": "Apply the wave"}})
    for host in ("proxy1", "proxy2"):
        display({"event": "runner_on_start", "event_data": {"host": host}})
    display({"event": "runner_on_ok", "event_data": {"host": "proxy1", "res": {"changed": 1}}})
    assert display._bar is not None
    (bar,) = display._bar.tasks
    assert (bar.completed, bar.total) == (1, 2)
    display({"event": "runner_on_ok", "event_data": {"host": "proxy2", "res": {}}})
    display({"event": "playbook_on_stats", "event_data": {"ok": {"proxy1": 1, "proxy2": 1},
                                                          "changed": {"proxy1": 1}}})  # fmt: skip
    display.close()
    assert "task 1 (hosts 2/2) Apply the wave: ok 2, changed 1" in stream.getvalue()
    assert display.stats["proxy1"]["changed"] == 1


# -- the project's own read-only playbooks ------------------------------------------------------


def wave_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sipwave_account (login TEXT PRIMARY KEY, state TEXT, "
                   "current_username TEXT, current_domain TEXT)")  # fmt: skip
        db.executemany(
            "INSERT INTO sipwave_account VALUES (?, ?, ?, ?)",
            [("1001", "phase1", "1001", "old"), ("1002", "phase1", "1002", "old"),
             ("1003", "closed", None, None)],
        )  # fmt: skip


def test_wave_status_shows_the_newest_report_and_the_database_states(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    for run_id, complete in (("20261116T080000Z-aaaaaa", False), ("20261117T080000Z-bbbbbb", True)):
        report = {"wave": "wave1", "run_id": run_id, "operation": "apply", "phase": 1,
                  "complete": complete, "incomplete_because": [] if complete else ["proxy2"],
                  "counts": {"states": {"phase1": 2, "closed": 1}},
                  "reconciliation": {"ok": True}, "refunds": {"total": "10.00"}}  # fmt: skip
        (reports / f"wave1-{run_id}.json").write_text(json.dumps(report))
    (reports / "wave1-extra-20261118T080000Z-cccccc.json").write_text("{}")  # another wave's
    wave_database(tmp_path / "proxy.sqlite")
    inventory = {"all": {
        "vars": {"ansible_python_interpreter": PYTHON, "sipwave_report_dir": str(reports),
                 "sipwave_waves": [{"name": "wave1", "date": "2026-11-16", "phase": 1},
                                   {"name": "wave2", "date": "2026-12-07", "phase": 1}]},
        "children": {"proxies": {"hosts": {"proxy1": {
            "ansible_connection": "local",
            "kamailio_db_sqlite_path": str(tmp_path / "proxy.sqlite")}}}},
    }}  # fmt: skip
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    run = sipwave("wave", "status", "--json", "-i", "hosts.yml", "--project", str(PROJECT),
                  cwd=tmp_path, env={"SIPWAVE_RUNS_DIR": str(tmp_path / "runs")})  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["reports"] == [str(reports / "wave1-20261117T080000Z-bbbbbb.json")]
    wave1, wave2 = result["data"]["wave_status"]
    assert (wave1["last_run"], wave1["complete"], wave1["states"]) == (
        "20261117T080000Z-bbbbbb",
        True,
        {"phase1": 2, "closed": 1},
    )
    assert (wave2["wave"], wave2["report"], wave2["last_run"]) == ("wave2", None, "(not run yet)")
    assert result["data"]["database_states"] == {"proxy1": {"phase1": 2, "closed": 1}}
    assert all(counts["changed"] == 0 for counts in result["hosts"].values())
    one = sipwave("wave", "status", "wave2", "-i", "hosts.yml", "--project", str(PROJECT),
                  cwd=tmp_path, env={"SIPWAVE_RUNS_DIR": str(tmp_path / "runs")})  # fmt: skip
    assert one.returncode == 0 and "last_run: (not run yet)" in one.stdout
    assert "wave1" not in one.stdout.split("sipwave wave status: ok")[1]


def test_docs_list_every_subcommand_with_its_playbook():
    rows = [
        line for line in (PROJECT / "docs" / "cli.md").read_text().splitlines()
        if line.startswith("| `")
    ]  # fmt: skip
    for command in commands.COMMANDS:
        row = next((r for r in rows if r.startswith(f"| `{command.name}")), None)
        assert row is not None, f"docs/cli.md: no row for sipwave {command.name}"
        assert f"| `{command.playbook}` |" in row, row


def test_reports_published_as_a_list_or_as_one_path_are_both_listed(tmp_path):
    display = progress.Display(io.StringIO(), tty=False)
    display.published = {"report_paths": ["/r/a.csv", "/r/b.csv"], "report_path": "/r/c.html",
                         "wave_result": {"states": {"phase1": 3}}}  # fmt: skip
    invocation = commands.Invocation(command="report costs", playbook="cost_report.yml")
    outcome = main.result_object(
        invocation, runs.RunResult(0, "successful", tmp_path, 1.0), display
    )
    assert outcome["reports"] == ["/r/a.csv", "/r/b.csv", "/r/c.html"]
    assert outcome["data"] == {"wave_result": {"states": {"phase1": 3}}}
    text = main.summary(outcome)
    assert "  report: /r/c.html" in text and "      phase1: 3" in text
