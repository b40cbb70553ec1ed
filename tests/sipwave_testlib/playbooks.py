"""Running the project's playbooks against the hosts of the Molecule scenario under test.

The inventory is the one Molecule wrote for the scenario (MOLECULE_INVENTORY_FILE); the
project's ansible.cfg applies whatever the current directory of the test run is.

Every run is made at -vvvv and leaves its whole output (stdout and stderr) as a transcript
in the scenario's transcript directory, failed and killed runs included: the scenario's
last test (test_zz_secrets.py, sipwave_testlib.secrets) searches all of them for the
scenario's secrets, so the scenario's own runs are the -vvvv runs of its playbooks.
"""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# -vvvv: the most Ansible prints (connections, module invocations, every result).
TRANSCRIPT_VERBOSITY = 4
# Ansible's own log of the runs Molecule makes (create, check, converge, idempotence): a
# scenario sets ANSIBLE_LOG_PATH to it in its provisioner env (and ANSIBLE_VERBOSITY=4).
MOLECULE_RUNS_LOG = "molecule-runs.log"
_fresh_directories: set[Path] = set()

# Ansible's log of every command in this process: testinfra's `ansible-inventory --list`
# (the scenario's hosts for the tests) would write the whole inventory to it, subscriber
# passwords included. Molecule sets it for its own runs; a test process never needs it.
os.environ.pop("ANSIBLE_LOG_PATH", None)


def ephemeral_directory() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def transcript_directory() -> Path:
    """The scenario's transcripts; the first run of a test session empties it, so that the
    runs of an earlier verify against the same containers are not searched again."""
    directory = ephemeral_directory() / "transcripts"
    if directory not in _fresh_directories:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        for old in [*directory.glob("*.log"), *directory.glob("*.vars.json")]:
            old.unlink()
        _fresh_directories.add(directory)
    return directory


def transcripts() -> list[Path]:
    """Every transcript of the scenario, in the order of the runs, Molecule's log last."""
    found = sorted((ephemeral_directory() / "transcripts").glob("*.log"))
    molecule_log = ephemeral_directory() / MOLECULE_RUNS_LOG
    if molecule_log.exists():
        # Ansible creates its log with the umask's mode.
        molecule_log.chmod(0o600)
        found.append(molecule_log)
    return found


def extra_vars_file(extra: dict) -> Path:
    """``extra`` as a JSON file (mode 0600) in the transcript directory, for ``-e @file``.

    Never ``-e '{...}'``: from -vvv on, ansible-playbook echoes its command line options,
    extra vars included, so a PIN or password handed that way lands in the transcript. The
    file name is in the echo, its content is not."""
    fd, name = tempfile.mkstemp(suffix=".vars.json", dir=transcript_directory())
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(extra, handle)
    return Path(name)


def playbook_command(
    name: str,
    *extra_vars: dict,
    verbosity: int = TRANSCRIPT_VERBOSITY,
    check: bool = False,
    options: Sequence[str] = (),
) -> list[str]:
    """ansible-playbook for playbooks/<name>, each dict of ``extra_vars`` as one ``-e @file``
    (see extra_vars_file); never less verbose than -vvvv."""
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    command += [str(PROJECT / "playbooks" / name)]
    for extra in extra_vars:
        command += ["-e", f"@{extra_vars_file(extra)}"]
    command.append("-" + "v" * max(verbosity, TRANSCRIPT_VERBOSITY))
    if check:
        command += ["--check", "--diff"]
    return [*command, *options]


def playbook_env() -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))
    # The runs of the tests have transcripts of their own; Molecule's log is for its runs.
    env.pop("ANSIBLE_LOG_PATH", None)
    return env


def _open_transcript(name: str, extra_vars: Sequence[dict], options: Sequence[str]):
    """A new transcript file (mode 0600) with a header naming the run: the playbook, the
    names of its extra variables (never their values) and its options."""
    directory = transcript_directory()
    index = len(list(directory.glob("*.log")))
    while True:
        index += 1
        path = directory / f"{index:04d}-{Path(name).stem}.log"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        handle = os.fdopen(fd, "w", encoding="utf-8")
        names = sorted({key for extra in extra_vars for key in extra})
        handle.write(f"# playbook: {name}\n# extra vars: {', '.join(names) or '-'}\n")
        handle.write(f"# options: {' '.join(options) or '-'}\n")
        handle.flush()
        return handle


def run_playbook(
    name: str,
    *extra_vars: dict,
    verbosity: int = TRANSCRIPT_VERBOSITY,
    check: bool = False,
    options: Sequence[str] = (),
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run playbooks/<name> to its end; its output is captured and kept as a transcript."""
    run_options = [*(["--check", "--diff"] if check else []), *options]
    command = playbook_command(name, *extra_vars, verbosity=verbosity, options=run_options)
    with _open_transcript(name, extra_vars, run_options) as transcript:
        try:
            run = subprocess.run(
                command, capture_output=True, text=True, env=playbook_env(), cwd=PROJECT,
                check=False, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as expired:
            for part in (expired.stdout, expired.stderr):
                text = part.decode(errors="replace") if isinstance(part, bytes) else part
                transcript.write(text or "")
            transcript.write(f"\n# timed out after {timeout} s\n")
            raise
        transcript.write(run.stdout)
        transcript.write("\n# stderr\n")
        transcript.write(run.stderr)
        transcript.write(f"\n# exit code {run.returncode}\n")
    return run


def start_playbook(name: str, *extra_vars: dict, options: Sequence[str] = ()) -> subprocess.Popen:
    """Start playbooks/<name> in its own process group (a test may kill it); stdout and
    stderr go to a transcript only."""
    command = playbook_command(name, *extra_vars, options=options)
    with _open_transcript(name, extra_vars, options) as transcript:
        transcript.write("# started in the background; a test may kill it\n")
        transcript.flush()
        # Unbuffered: a killed run's transcript ends where the run was killed.
        return subprocess.Popen(
            command, stdout=transcript, stderr=subprocess.STDOUT, cwd=PROJECT,
            env=dict(playbook_env(), PYTHONUNBUFFERED="1"), start_new_session=True,
        )  # fmt: skip


def run_sipwave(*args: str, timeout: float | None = 300) -> subprocess.CompletedProcess:
    """The `sipwave` command of this checkout (``python -m sipwave_cli``, what the console
    script runs) with ``args`` against the scenario's inventory, at -vvvv and with --json.

    Its transcript holds what the command printed and everything the run left in its
    ansible-runner directory (Ansible's whole output, the events), so that the scenario's
    secret search covers them too."""
    runs = ephemeral_directory() / "sipwave-runs"
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    verbose = "-" + "v" * TRANSCRIPT_VERBOSITY
    command = [sys.executable, "-m", "sipwave_cli", *args, "-i", inventory, verbose, "--json"]
    env = dict(playbook_env(), PYTHONPATH=str(PROJECT / "src"), SIPWAVE_RUNS_DIR=str(runs))
    before = set(runs.iterdir()) if runs.is_dir() else set()
    name = "sipwave-" + "-".join(a for a in args if not a.startswith("-"))[:60]
    with _open_transcript(name, (), args) as transcript:
        run = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=PROJECT, check=False,
            timeout=timeout,
        )  # fmt: skip
        for directory in sorted(set(runs.iterdir()) - before):
            for artifact in sorted(p for p in directory.rglob("*") if p.is_file()):
                transcript.write(f"\n# {artifact.relative_to(directory)}\n")
                transcript.write(artifact.read_text(encoding="utf-8", errors="replace"))
        transcript.write(f"\n# stdout\n{run.stdout}\n# stderr\n{run.stderr}")
        transcript.write(f"\n# exit code {run.returncode}\n")
    return run
