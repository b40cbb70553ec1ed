#!/usr/bin/python3
"""Does a SIP server answer? One OPTIONS over UDP, as a monitoring probe sends it.

    sip_options_probe.py ADDRESS PORT [TIMEOUT_SECONDS]

Sent from an ephemeral port of ADDRESS itself (the lab's and a proxy's listen addresses are
the host's own). Prints the status line of the answer and exits 0 for a final answer of
2xx; 1 for any other answer, 2 for none within the timeout. Standard library only: it runs
with the system Python of the host that is being checked.
"""

import secrets
import socket
import sys


def probe(address: str, port: int, timeout_s: float) -> str | None:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET,
                       socket.SOCK_DGRAM) as sock:  # fmt: skip
        sock.bind((address, 0))
        sock.settimeout(timeout_s)
        local_port = sock.getsockname()[1]
        host = f"[{address}]" if ":" in address else address
        tag, branch, call_id = (secrets.token_hex(6) for _ in range(3))
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{local_port};rport;branch=z9hG4bK{branch}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{host}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {call_id}@{host}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "User-Agent: sipwave-probe\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (address, port))
        while True:
            try:
                data, _peer = sock.recvfrom(65535)
            except TimeoutError:
                return None
            status = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
            if not status.startswith("SIP/2.0 1"):  # provisional answers are waited past
                return status


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    timeout_s = float(argv[3]) if len(argv) == 4 else 2.0
    status = probe(argv[1], int(argv[2]), timeout_s)
    if status is None:
        print(f"no answer from {argv[1]}:{argv[2]} within {timeout_s:g} s")
        return 2
    print(status)
    return 0 if status.split(" ", 2)[1].startswith("2") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
