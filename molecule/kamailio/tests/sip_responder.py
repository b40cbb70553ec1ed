"""A SIP peer of the proxy played by the test: a UDP socket on its own loopback address,
served by a thread, that answers each request as its subclass decides and keeps every request
it received, so that a test checks what the peer saw. Replies and ACKs are taken and dropped.
Used for the legacy platform's registrar (test_attacks) and the carriers (test_telephony)."""

import socket
import threading


class SipResponder:
    def __init__(self, address: tuple[str, int], *, poll_s: float = 0.1):
        self.address = address
        self.poll_s = poll_s
        self.received: list[bytes] = []
        self.sock: socket.socket | None = None
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def answer(self, request: bytes) -> bytes | None:
        """The reply to ``request``; None sends nothing."""
        raise NotImplementedError

    def start(self) -> None:
        """Listen (again, after stop(): a peer that went down and came back)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(self.address)
        self.sock.settimeout(self.poll_s)
        self.stopped.clear()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if data.startswith((b"SIP/2.0", b"ACK ")):
                continue
            self.received.append(data)
            answer = self.answer(data)
            if answer is not None:
                self.sock.sendto(answer, peer)
