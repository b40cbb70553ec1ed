#!/usr/bin/python3
"""Write sipwave's host metrics for node exporter's textfile collector.

    sipwave_textfile_metrics.py --output FILE [--dialin-settings JSON] [--backup-directory DIR]
                                [--certificate PEM ...]

- ``--dialin-settings``: the dial-in AGI's settings.json (its database, lockout failures and
  window): ``sipwave_dialin_locked_accounts`` (accounts locked out now) and
  ``sipwave_dialin_pin_failures`` (failures within the window).
- ``--backup-directory``: where playbooks/backup.yml leaves the proxy's database copies:
  ``sipwave_backup_newest_timestamp_seconds`` (0 when there is none).
- ``--certificate``: ``sipwave_certificate_expiry_timestamp_seconds{path}``.

A source that cannot be read gives ``sipwave_textfile_source_ok{source} 0`` (1 otherwise)
and a message on stderr naming it. The file is replaced atomically. Standard library only
(the certificate needs python3-cryptography, which community.crypto's hosts have): it runs
with the system Python of the host it describes.
"""

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

LOCKED = "sipwave_dialin_locked_accounts"
FAILURES = "sipwave_dialin_pin_failures"
BACKUP = "sipwave_backup_newest_timestamp_seconds"
CERTIFICATE = "sipwave_certificate_expiry_timestamp_seconds"
SOURCE_OK = "sipwave_textfile_source_ok"
HELP = {
    LOCKED: "Dial-in caller numbers locked out now (wrong PINs within the lockout window).",
    FAILURES: "Wrong dial-in PINs within the lockout window.",
    BACKUP: "When the newest backup of the host was taken (0: none).",
    CERTIFICATE: "When the certificate expires.",
    SOURCE_OK: "Whether the source of these metrics could be read.",
}


def label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dialin(settings_path: Path, now: float) -> dict[str, float]:
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    database = Path(settings["database"])
    if not database.exists():
        return {LOCKED: 0, FAILURES: 0}
    since = now - float(settings["lockout_window_s"])
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        (failures,) = connection.execute(
            "SELECT COUNT(*) FROM failure WHERE at > ?", (since,)
        ).fetchone()
        (locked,) = connection.execute(
            "SELECT COUNT(*) FROM (SELECT d.account_id FROM failure f JOIN dialin_number d"
            " ON d.number = f.caller WHERE f.at > ? GROUP BY d.account_id HAVING COUNT(*) >= ?)",
            (since, int(settings["lockout_failures"])),
        ).fetchone()
    return {LOCKED: locked, FAILURES: failures}


def backup(directory: Path) -> float:
    if not directory.is_dir():
        return 0
    # A copy of backup.yml is a file; a set of the host's backup timer is a directory that
    # counts once its manifest, written last, is there.
    stamps = [
        (entry / "MANIFEST.json").stat().st_mtime if entry.is_dir() else entry.stat().st_mtime
        for entry in directory.iterdir()
        if entry.is_file() or (entry / "MANIFEST.json").is_file()
    ]
    return max(stamps, default=0)


def certificate_expiry(path: Path) -> float:
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.not_valid_after_utc.timestamp()


def collect(args: argparse.Namespace, now: float) -> list[str]:
    samples: list[tuple[str, str, float]] = []
    health: list[tuple[str, bool]] = []

    def source(name: str, read) -> None:
        try:
            read()
        except Exception as error:
            print(f"sipwave_textfile_metrics: {name}: {error}", file=sys.stderr)
            health.append((name, False))
        else:
            health.append((name, True))

    if args.dialin_settings:
        source("dialin", lambda: samples.extend(
            (metric, "", value) for metric, value in dialin(args.dialin_settings, now).items()
        ))  # fmt: skip
    if args.backup_directory:
        source("backup", lambda: samples.append((BACKUP, "", backup(args.backup_directory))))
    for path in args.certificate:
        source(f"certificate {path}", lambda path=path: samples.append(
            (CERTIFICATE, f'{{path="{label(str(path))}"}}', certificate_expiry(path))
        ))  # fmt: skip
    lines = []
    for metric in dict.fromkeys(name for name, _, _ in samples):
        lines += [f"# HELP {metric} {HELP[metric]}", f"# TYPE {metric} gauge"]
        lines += [
            f"{name}{labels} {float(value)!r}" for name, labels, value in samples if name == metric
        ]
    lines += [f"# HELP {SOURCE_OK} {HELP[SOURCE_OK]}", f"# TYPE {SOURCE_OK} gauge"]
    lines += [f'{SOURCE_OK}{{source="{label(name)}"}} {int(ok)}' for name, ok in health]
    return lines


def write_atomically(output: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=output.parent, prefix=".sipwave-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--dialin-settings", type=Path)
    parser.add_argument("--backup-directory", type=Path)
    parser.add_argument("--certificate", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    write_atomically(args.output, "\n".join(collect(args, time.time())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
