"""roles/kamailio/files/sip_options_probe.py against a UDP responder on loopback."""

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[2] / "roles/kamailio/files/sip_options_probe.py"
ADDRESS = "127.0.0.1"


def responder(answers: list[bytes]) -> tuple[int, threading.Thread, list[bytes]]:
    """Answers the first request with each of ``answers`` in turn; the requests it got."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ADDRESS, 0))
    sock.settimeout(5)
    received: list[bytes] = []

    def serve() -> None:
        with sock:
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                return
            received.append(data)
            head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
            for status in answers:
                sock.sendto(b"SIP/2.0 " + status + b"\r\n" + b"\r\n".join(head) + b"\r\n\r\n", peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock.getsockname()[1], thread, received


def probe(port: int, timeout: str = "1") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROBE), ADDRESS, str(port), timeout],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "code", "shown"),
    [
        ([b"100 Trying", b"200 Keepalive"], 0, "SIP/2.0 200 Keepalive"),
        ([b"404 Not Found"], 1, "SIP/2.0 404 Not Found"),
        ([], 2, "no answer from 127.0.0.1"),
    ],
)
def test_the_probe_reports_the_final_answer(answers, code, shown):
    port, thread, received = responder(answers)
    completed = probe(port)
    thread.join(6)
    assert completed.returncode == code, completed.stdout + completed.stderr
    assert shown in completed.stdout
    request = received[0].decode()
    assert request.startswith(f"OPTIONS sip:{ADDRESS}:{port} SIP/2.0\r\n")
    assert "\r\nCSeq: 1 OPTIONS\r\n" in request and request.endswith("\r\n\r\n")
