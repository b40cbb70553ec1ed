"""One playbook run through ansible-runner, in a private directory of its own.

Each run gets a directory (mode 0700) under ``<project>/.cache/sipwave/runs/`` (or
``$SIPWAVE_RUNS_DIR``); the newest KEEP_RUNS are kept so that Ansible's full output of a run
(``artifacts/ansible/stdout``, the events in ``job_events/``) can be read afterwards. What could
hold a secret is not kept: the extra variables go to the run as one ``-e @file`` (mode 0600,
never on the command line, which ansible-playbook echoes from -vvv on) that is removed when
the run ends, and ansible-runner's ``command`` artifact, which records the whole process
environment, is rewritten without it. Results of ``no_log`` tasks reach the events and the
output already censored by Ansible.
"""

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ansible_runner

from .commands import Invocation, UsageError
from .progress import Display, Failure

KEEP_RUNS = 20
ARTIFACT_IDENT = "ansible"
ERROR_LINES = 4


@dataclass
class RunResult:
    rc: int
    status: str
    directory: Path
    elapsed: float

    @property
    def output(self) -> Path:
        return self.directory / "artifacts" / ARTIFACT_IDENT / "stdout"


def find_project(explicit: str | None, cwd: Path) -> Path:
    """The sipwave checkout: --project or $SIPWAVE_PROJECT, else the current directory or one
    above it, else the checkout this package was installed from (pip install -e)."""
    named = explicit or os.environ.get("SIPWAVE_PROJECT")
    candidates = [Path(named)] if named else [cwd, *cwd.parents, Path(__file__).parents[2]]
    for candidate in candidates:
        candidate = candidate.resolve()
        if (candidate / "ansible.cfg").is_file() and (candidate / "playbooks").is_dir():
            return candidate
    if named:
        raise UsageError(f"{named} is no sipwave checkout (no ansible.cfg and playbooks/)")
    raise UsageError("no sipwave checkout here or above: run sipwave in one, or give --project")


def playbook_path(project: Path, invocation: Invocation) -> Path:
    path = project / "playbooks" / invocation.playbook
    if not path.is_file():
        raise UsageError(
            f"sipwave {invocation.command}: not available in this release: "
            f"playbooks/{invocation.playbook} is missing"
        )
    return path


def runs_directory(project: Path) -> Path:
    configured = os.environ.get("SIPWAVE_RUNS_DIR")
    runs = Path(configured) if configured else project / ".cache" / "sipwave" / "runs"
    runs.mkdir(mode=0o700, parents=True, exist_ok=True)
    for private in (runs, *([] if configured else [runs.parent])):
        private.chmod(0o700)
    return runs


def _drop_old_runs(runs: Path) -> None:
    kept = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in kept[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _scrub_command_artifact(artifacts: Path) -> None:
    """ansible-runner's ``command`` file holds the process environment: keep the command."""
    command_file = artifacts / "command"
    if not command_file.is_file():
        return
    try:
        recorded = json.loads(command_file.read_text(encoding="utf-8"))
    except ValueError:
        recorded = {}
    command_file.unlink()
    kept = {key: recorded.get(key) for key in ("command", "cwd")}
    _write_private(command_file, json.dumps(kept))


def run(project: Path, invocation: Invocation, display: Display) -> RunResult:
    playbook = playbook_path(project, invocation)
    runs = runs_directory(project)
    slug = invocation.command.replace(" ", "-")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    directory = Path(tempfile.mkdtemp(prefix=f"{stamp}-{slug}-", dir=runs))
    vars_file = directory / "extra-vars.json"
    _write_private(vars_file, json.dumps(invocation.extra_vars))
    options = ["-e", f"@{vars_file}"]
    for path in invocation.extra_var_files:
        options += ["-e", f"@{path}"]
    options += ["--check"] if invocation.check else []
    options += ["--diff"] if invocation.diff else []
    started = time.monotonic()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(directory),
            project_dir=str(project),
            playbook=str(playbook),
            ident=ARTIFACT_IDENT,
            inventory=invocation.inventory,
            limit=invocation.limit,
            verbosity=invocation.verbosity or None,
            cmdline=shlex.join(options),
            envvars={
                # ansible-playbook beside this Python (a virtualenv's bin/), also when the
                # virtualenv is not activated.
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
                "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "true",
            },
            event_handler=display,
            quiet=True,
            suppress_env_files=True,
        )
    finally:
        display.close()
        vars_file.unlink(missing_ok=True)
        _scrub_command_artifact(directory / "artifacts" / ARTIFACT_IDENT)
        _drop_old_runs(runs)
    rc = runner.rc if isinstance(runner.rc, int) else 1
    result = RunResult(rc, str(runner.status), directory, time.monotonic() - started)
    if rc != 0 and not display.failures:
        # Ansible stopped before any task (a syntax error, an inventory it cannot read): its
        # own last words say why.
        lines = [line.strip() for line in _read(result.output).splitlines() if line.strip()]
        display.failures.append(Failure("-", "ansible-playbook", " ".join(lines[-ERROR_LINES:])))
    return result


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
