"""`sipwave`: the operators' commands, each one playbook run with progress and a summary.

Exit codes: 0 the run succeeded, 1 the playbook failed, 2 a usage error or a subcommand whose
playbook this checkout does not have.
"""

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import commands, runs
from .progress import Display

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# set_stats keys the playbooks publish: the files a run wrote for the operator (a list, or
# one path).
REPORT_KEYS = ("report_paths", "report_path")
COLUMNS = ("ok", "changed", "failed", "unreachable", "skipped")


def result_object(
    invocation: commands.Invocation, result: runs.RunResult, display: Display
) -> dict[str, Any]:
    """The machine-readable result (--json)."""
    published = dict(display.published)
    reports: set[str] = set()
    for key in REPORT_KEYS:
        value = published.pop(key, [])
        reports.update([value] if isinstance(value, str) else value)
    return {
        "command": invocation.command,
        "playbook": f"playbooks/{invocation.playbook}",
        "rc": result.rc,
        "status": "successful" if result.rc == 0 else "failed",
        "check": invocation.check,
        "hosts": display.stats,
        "reports": sorted(reports),
        "failures": [failure.as_dict() for failure in display.failures],
        "data": published,
        "elapsed_s": round(result.elapsed, 1),
        "output": str(result.output),
    }


def summary(outcome: dict[str, Any]) -> str:
    """A short human summary of a run's result object."""
    state = "ok" if outcome["rc"] == 0 else f"FAILED (exit {EXIT_FAILED})"
    mode = " (check mode: nothing changed)" if outcome["check"] else ""
    lines = [f"sipwave {outcome['command']}: {state}{mode} in {outcome['elapsed_s']} s"]
    if outcome["hosts"]:
        width = max(len(host) for host in outcome["hosts"]) + 2
        lines.append("  " + "host".ljust(width) + "".join(c.rjust(12) for c in COLUMNS))
        for host, counts in outcome["hosts"].items():
            cells = "".join(str(counts[c]).rjust(12) for c in COLUMNS)
            lines.append("  " + host.ljust(width) + cells)
    for failure in outcome["failures"]:
        lines.append(f"  failed: {failure['host']}: {failure['task']}: {failure['message']}")
    if outcome["data"]:
        dumped = yaml.safe_dump(outcome["data"], sort_keys=False, default_flow_style=False)
        lines += ["  " + line for line in dumped.rstrip().splitlines()]
    lines += [f"  report: {path}" for path in outcome["reports"]]
    lines.append(f"  ansible output: {outcome['output']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    cwd = Path.cwd()
    try:
        namespace = commands.parser().parse_args(argv)
        invocation = commands.invocation(namespace, cwd)
        project = runs.find_project(namespace.project, cwd)
        runs.playbook_path(project, invocation)
    except commands.UsageError as error:
        text = str(error)
        print(text if text.startswith("sipwave") else f"sipwave: {text}", file=sys.stderr)
        return EXIT_USAGE
    # With --json, stdout carries the JSON object only: progress goes to stderr.
    display = Display(sys.stderr if namespace.json else stdout)
    result = runs.run(project, invocation, display)
    outcome = result_object(invocation, result, display)
    if namespace.json:
        stdout.write(json.dumps(outcome, indent=2, sort_keys=True) + "\n")
    else:
        stdout.write(summary(outcome) + "\n")
    stdout.flush()
    return EXIT_OK if result.rc == 0 else EXIT_FAILED


def entry() -> None:
    sys.exit(main())
