"""What the benchmarks share: paths, the error type, logging, playbook runs, lab containers.

Imported by name from the benchmark modules (bench/run.py puts this directory on sys.path,
and a module run on its own finds it beside itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
RESULTS = BENCH / "results"
# The virtualenv's, also when the bench is started without the virtualenv on PATH.
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
IMAGE = "localhost/sipwave-lab:latest"
# `make bench` removes leftovers of a crashed run by this label (lab-clean-bench).
LAB_LABEL = "io.sipwave.lab=bench"
BOOT_TIMEOUT_S = 120


class BenchError(Exception):
    """A benchmark cannot produce a meaningful figure; the message says why."""


def logger(name: str) -> Callable[[str], None]:
    """A log function whose lines carry the benchmark's name and the time."""
    prefix = f"bench {name}".rstrip()

    def log(message: str) -> None:
        print(f"[{prefix} {time.strftime('%H:%M:%S')}] {message}", flush=True)

    return log


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, capturing its output; BenchError with the output's tail on failure."""
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(command[:6])} ... failed ({result.returncode}):\n"
            + (result.stdout + result.stderr)[-3000:]
        )
    return result


def recap_counts(stdout: str) -> dict[str, int]:
    """The PLAY RECAP counters (ok, changed, failed, ...), summed over its hosts."""
    counts: dict[str, int] = {}
    for part in stdout.rsplit("PLAY RECAP", 1)[-1].split():
        key, _, value = part.partition("=")
        if value.isdigit():
            counts[key] = counts.get(key, 0) + int(value)
    return counts


def playbook(
    name: str,
    extra_vars: dict,
    workdir: Path,
    *,
    inventory: str = "localhost,",
    local: bool = True,
) -> tuple[float, dict[str, int], str]:
    """Run bench/<name>; its wall time, the PLAY RECAP counts and its output.

    The extra vars go through a file in ``workdir`` (they may hold bench passwords, which
    then never appear on a command line). ``local`` runs on the controller with this
    interpreter.
    """
    vars_file = workdir / f"{name}-vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    command = [ANSIBLE_PLAYBOOK, "-i", inventory, str(BENCH / name), "-e", f"@{vars_file}"]
    if local:
        command += ["-e", f"ansible_python_interpreter={sys.executable}", "-c", "local"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))
    started = time.monotonic()
    completed = subprocess.run(
        command, capture_output=True, text=True, cwd=PROJECT, env=env, check=False
    )
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        raise BenchError(f"{name} failed:\n{(completed.stdout + completed.stderr)[-3000:]}")
    return elapsed, recap_counts(completed.stdout), completed.stdout


def write_results(name: str, results: dict) -> Path:
    """bench/results/<name>.json; the path relative to the project, for the log line."""
    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / f"{name}.json"
    output.write_text(json.dumps(results, indent=2) + "\n")
    return output.relative_to(PROJECT)


def remove_lab_container(name: str) -> None:
    """Remove the bench container of this name, and only if it carries the bench label."""
    found = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"name=^{name}$", "--filter", f"label={LAB_LABEL}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if found:
        run(["podman", "rm", "-f", "-t", "5", *found])


def start_lab_container(name: str, options: list[str] = ()) -> None:
    """Start a lab container (host network, systemd as PID 1) and wait until it has booted.

    ``options`` are further ``podman run`` options (CPU pinning, limits).
    """
    cgroup_source = os.environ.get("SIPWAVE_CGROUP_SOURCE")
    if not cgroup_source:
        raise BenchError("SIPWAVE_CGROUP_SOURCE is not set: source lab/env.sh (make bench does)")
    run(
        [
            "podman", "run", "-d", "--name", name, "--hostname", name, "--label", LAB_LABEL,
            "--network", "host", "--privileged", "--systemd", "always", "--cgroupns", "host",
            "-v", f"{cgroup_source}:/sys/fs/cgroup:rw", *options, IMAGE, "/sbin/init",
        ]
    )  # fmt: skip
    # systemctl cannot reach PID 1 during the first moments of the boot: ask again.
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["podman", "exec", name, "systemctl", "is-system-running", "--wait"],
            capture_output=True,
            text=True,
            timeout=BOOT_TIMEOUT_S,
            check=False,
        ).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise BenchError(f"systemd in {name} did not boot: {state!r}")


def run_in_container(
    name: str, container: str, benchmark: Callable[[Path], dict], what_failed: str
) -> int:
    """The life of a benchmark that runs in a lab container: a fresh container, the
    benchmark (given a private work directory), the container removed (kept with
    SIPWAVE_BENCH_KEEP=1), the results written to bench/results/<name>.json. Exit code 1
    when the benchmark could not measure, or when any of its ``what_failed`` failed (the
    results' per-instance ``summary[...]["failed"]``)."""
    log = logger("")
    if not os.environ.get("SIPWAVE_CGROUP_SOURCE"):
        print("bench: source lab/env.sh first (make bench does)", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    remove_lab_container(container)
    try:
        with tempfile.TemporaryDirectory(prefix="sipwave-bench-") as workdir:
            results = benchmark(Path(workdir))
    except (BenchError, subprocess.TimeoutExpired) as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    finally:
        if os.environ.get("SIPWAVE_BENCH_KEEP"):
            log(f"SIPWAVE_BENCH_KEEP is set: {container} is left running")
        else:
            log(f"removing {container}")
            remove_lab_container(container)
    results["runtime_s"] = round(time.monotonic() - started, 1)
    log(f"results written to {write_results(name, results)} ({results['runtime_s']:.0f} s)")
    failed = sum(s["failed"] for s in results["summary"].values())
    if failed:
        print(f"bench failed: {failed} {what_failed} failed", file=sys.stderr)
        return 1
    return 0
