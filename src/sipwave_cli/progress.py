"""Live progress of a playbook run from ansible-runner's event stream, and what the run ended
with (per-host counts, failures, the values the playbook published with set_stats).

On a terminal a rich progress bar follows the hosts of the running task; anywhere else each
play, each finished task and each failure is one plain line (no control codes). Ansible's
events do not say how many tasks a play has, so tasks are counted as they finish.
"""

import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

# ansible-runner's names for a host's result of a task (loop items are counted per task).
RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
# playbook_on_stats keys -> the summary's names.
STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}
MESSAGE_LIMIT = 400


@dataclass
class Failure:
    host: str
    task: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"host": self.host, "task": self.task, "message": self.message}


@dataclass
class _Task:
    number: int
    name: str
    started: float
    hosts_started: set[str] = field(default_factory=set)
    results: dict[str, str] = field(default_factory=dict)  # host -> outcome
    changed: set[str] = field(default_factory=set)

    def line(self, play_hosts: int) -> str:
        counts = {}
        for outcome in self.results.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        parts = [f"{outcome} {counts[outcome]}" for outcome in
                 ("ok", "failed", "unreachable", "skipped") if counts.get(outcome)]  # fmt: skip
        if self.changed:
            parts.insert(1, f"changed {len(self.changed)}")
        took = time.monotonic() - self.started
        return (
            f"  task {self.number} (hosts {len(self.results)}/{max(play_hosts, 1)}) "
            f"{self.name}: {', '.join(parts)} ({took:.1f} s)"
        )


def failure_message(result: Any) -> str:
    """A failed or unreachable result's message, on one line (no_log results are censored by
    Ansible before they reach the event stream)."""
    if not isinstance(result, dict):
        return ""
    message = ""
    for key in ("msg", "reason", "stderr", "censored"):
        if result.get(key):
            message = str(result[key])
            break
    message = " ".join(message.split())
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


class Display:
    """ansible-runner's event_handler: shows progress and keeps what the summary needs."""

    def __init__(self, stream: TextIO, tty: bool | None = None):
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.plays = 0
        self.tasks_done = 0
        self.play_hosts: set[str] = set()
        self.task: _Task | None = None
        self.failures: list[Failure] = []
        self.stats: dict[str, dict[str, int]] = {}
        self.published: dict[str, Any] = {}
        self._bar: Progress | None = None
        self._bar_task = None
        if self.tty:
            console = Console(file=stream, force_terminal=True)
            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("hosts"), TimeElapsedColumn(),
                console=console, transient=True,
            )  # fmt: skip

    # -- output ---------------------------------------------------------------------------------

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _finish_task(self) -> None:
        task, self.task = self.task, None
        if task is None or not task.results:
            return
        self.tasks_done += 1
        self._print(task.line(len(self.play_hosts)))

    def _show_task(self) -> None:
        if self._bar is None or self.task is None:
            return
        description = f"play {self.plays} · task {self.tasks_done + 1}: {self.task.name}"
        total = max(len(self.task.hosts_started), len(self.task.results), 1)
        if self._bar_task is None:
            self._bar.start()
            self._bar_task = self._bar.add_task(description, total=total)
        self._bar.update(
            self._bar_task, description=description, total=total,
            completed=len(self.task.results),
        )  # fmt: skip

    def close(self) -> None:
        self._finish_task()
        if self._bar is not None:
            self._bar.stop()

    # -- events ---------------------------------------------------------------------------------

    def __call__(self, event: dict) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self._finish_task()
            self.plays += 1
            self.play_hosts = set()
            self._print(f"play {self.plays}: {data.get('name') or data.get('pattern', '')}")
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self._finish_task()
            self.task = _Task(self.tasks_done + 1, data.get("task", ""), time.monotonic())
            self._show_task()
        elif kind == "runner_on_start" and self.task is not None:
            self.task.hosts_started.add(data.get("host", ""))
            self.play_hosts.add(data.get("host", ""))
            self._show_task()
        elif kind in RESULT_EVENTS:
            self._result(RESULT_EVENTS[kind], data)
        elif kind == "playbook_on_stats":
            self._finish_task()
            self._final_stats(data)
        return True  # keep the event in the run's artifacts

    def _result(self, outcome: str, data: dict) -> None:
        host = data.get("host", "")
        result = data.get("res") or {}
        if outcome == "failed" and data.get("ignore_errors"):
            outcome = "ok"
        if outcome in ("failed", "unreachable"):
            failure = Failure(host, data.get("task", ""), failure_message(result))
            self.failures.append(failure)
            self._print(f"  {outcome.upper()} {host}: {failure.task}: {failure.message}")
        if self.task is None:
            return
        self.play_hosts.add(host)
        self.task.results[host] = outcome
        if isinstance(result, dict) and result.get("changed"):
            self.task.changed.add(host)
        self._show_task()

    def _final_stats(self, data: dict) -> None:
        hosts = set(data.get("processed") or {})
        for key in STATS_KEYS:
            hosts |= set(data.get(key) or {})
        self.stats = {
            host: {name: int((data.get(key) or {}).get(host, 0)) for key, name in
                   STATS_KEYS.items()}
            for host in sorted(hosts)
        }  # fmt: skip
        self.published = dict(data.get("artifact_data") or {})
