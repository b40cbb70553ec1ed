"""Run SIPp (Debian package sip-tester) against the lab and read what happened.

Every address involved is on loopback: the lab containers share the host network, each on
its own 127.x address, and SIPp binds to an address of the caller's choosing.
"""

import csv
import ipaddress
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent.parent / "sipp"


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    elapsed_s: float
    output: str
    messages: str

    @property
    def calls_per_second(self) -> float:
        return self.successful / self.elapsed_s if self.elapsed_s else 0.0


def require_loopback(address: str) -> None:
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"{address} is not a loopback address: the lab only uses 127.0.0.0/8")


def credentials(username: str, password: str) -> str:
    """The injection-file field SIPp expands into an Authorization header."""
    return f"[authentication username={username} password={password}]"


def run(
    scenario: str,
    target: str,
    local_ip: str,
    *,
    rows: list[list[str]] | None = None,
    calls: int = 1,
    rate: int = 10,
    local_port: int = 0,
    limit: int | None = None,
    timeout_s: float = 30.0,
    sequential: bool = True,
    background: bool = False,
    extra: list[str] | None = None,
    trace_messages: bool = True,
):
    """Run one SIPp scenario from tests/sipp and return a SippResult.

    ``rows`` fill the injection file ([field0]...), one row per call. With
    ``background=True`` a started process and its work dir are returned instead; pass them
    to :func:`wait` later (used for answering sides).
    """
    host = target.rsplit(":", 1)[0] if target.count(":") == 1 else target
    require_loopback(host)
    require_loopback(local_ip)
    workdir = Path(tempfile.mkdtemp(prefix="sipwave-sipp-"))
    command = [
        "sipp",
        target,
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        local_ip,
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
        "-recv_timeout",
        "5000",
        "-nostdin",
        "-nd",
        "-trace_stat",
        "-stf",
        str(workdir / "stats.csv"),
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
    ]
    if trace_messages:
        # Every message to a file: right for tests, too costly for throughput runs.
        command += ["-trace_msg", "-message_file", str(workdir / "messages.log")]
    if local_port:
        command += ["-p", str(local_port)]
    if limit is not None:
        command += ["-l", str(limit)]
    if rows is not None:
        injection = workdir / "rows.csv"
        header = "SEQUENTIAL" if sequential else "RANDOM"
        injection.write_text(header + "\n" + "".join(";".join(r) + ";\n" for r in rows))
        command += ["-inf", str(injection)]
    command += extra or []
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if background:
        return process, workdir
    return wait(process, workdir, timeout_s + 10, started)


def wait(
    process: subprocess.Popen, workdir: Path, timeout_s: float = 40.0, started: float = 0.0
) -> SippResult:
    """Wait for a SIPp run; ``elapsed_s`` is wall time since ``started`` (monotonic)."""
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    elapsed = time.monotonic() - started if started else 0.0
    successful = failed = 0
    stats = workdir / "stats.csv"
    if stats.exists():
        rows = list(csv.DictReader(stats.open(), delimiter=";"))
        if rows:
            last = rows[-1]
            successful = int(last["SuccessfulCall(C)"])
            failed = int(last["FailedCall(C)"])
    messages = workdir / "messages.log"
    errors = workdir / "errors.log"
    result = SippResult(
        returncode=process.returncode,
        successful=successful,
        failed=failed,
        elapsed_s=elapsed,
        output=output + (errors.read_text() if errors.exists() else ""),
        messages=messages.read_text() if messages.exists() else "",
    )
    # Everything worth keeping is in the result. The injection file holds the test accounts'
    # passwords, and a full test run starts hundreds of SIPp processes.
    shutil.rmtree(workdir, ignore_errors=True)
    return result
