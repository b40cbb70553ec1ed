"""A throwaway PostgreSQL cluster on a Unix socket (no TCP at all) for unit tests; skips the
test where PostgreSQL's server binaries or psycopg2 are missing."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def as_postgres(*command: str) -> list[str]:
    return list(command) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]


def throwaway_cluster(port: int) -> Iterator[str]:
    """Start a cluster (superuser kamailio, trust authentication) listening only on a socket
    in a new directory, yield that directory, then stop and remove it."""
    pytest.importorskip("psycopg2")
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL server binaries are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("runuser is needed to start PostgreSQL as root")
    # Not under pytest's tmp_path: the postgres user cannot enter root's private directory.
    root = Path(tempfile.mkdtemp(prefix="sipwave-pg-"))
    data, socket_dir = root / "data", root / "socket"
    socket_dir.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(socket_dir, "postgres")
    subprocess.run(as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "kamailio",
                               "--auth=trust"), check=True, capture_output=True)  # fmt: skip
    subprocess.run(
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"),
                    "-o", f"-c listen_addresses='' -k {socket_dir} -p {port}", "start"),
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield str(socket_dir)
    finally:
        subprocess.run(as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                   "stop"), check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
