"""roles/monitoring/files/sipwave_textfile_metrics.py on a real dial-in database (the
project's schema), real backup files and real certificates, run as the timer runs it."""

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.sipwave.platform.plugins.module_utils import dialin_db
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

COLLECTOR = (
    Path(__file__).resolve().parents[2] / "roles/monitoring/files/sipwave_textfile_metrics.py"
)
NOW = time.time()


def collect(tmp_path: Path, *args: str) -> tuple[dict[str, float], subprocess.CompletedProcess]:
    output = tmp_path / "sipwave.prom"
    run = subprocess.run(
        [sys.executable, str(COLLECTOR), "--output", str(output), *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    samples = {}
    for line in output.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples, run


def dialin_settings(
    tmp_path: Path, failures: dict[str, list[float]], numbers: dict[str, str] | None = None
) -> Path:
    """A dial-in database with these failures (caller: ages in seconds); each caller is a
    dial-in number of the account ``numbers`` names (by default an account of its own)."""
    database = tmp_path / "dialin.sqlite"
    connection = dialin_db.connect(str(database))
    numbers = numbers or {caller: f"account-{caller}" for caller in failures}
    with connection:
        for caller, account in numbers.items():
            connection.execute(
                "INSERT OR IGNORE INTO account (id, department, number, max_calls)"
                " VALUES (?, 'sales', '+48221110001', 1)",
                (account,),
            )
            connection.execute(
                "INSERT INTO dialin_number (number, account_id) VALUES (?, ?)", (caller, account)
            )
        for caller, ages in failures.items():
            connection.executemany(
                "INSERT INTO failure (caller, at) VALUES (?, ?)", [(caller, NOW - a) for a in ages]
            )
    connection.close()
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(
        {"database": str(database), "lockout_failures": 4, "lockout_window_s": 3600}
    ))  # fmt: skip
    return settings


def certificate(tmp_path: Path, name: str, not_after: datetime.datetime) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prov.sipwave.test")])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_after - datetime.timedelta(days=90)).not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = tmp_path / name
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_locked_accounts_are_those_at_the_limit_within_the_window(tmp_path):
    settings = dialin_settings(tmp_path, {
        "+48601000001": [10, 20, 30, 40],      # four within the hour: locked
        "+48601000002": [10, 20],              # two: not locked
        "+48601000003": [4000, 5000, 6000, 7000, 8000],  # old failures: not counted
    })  # fmt: skip
    samples, _ = collect(tmp_path, "--dialin-settings", str(settings))
    assert samples["sipwave_dialin_locked_accounts"] == 1
    assert samples["sipwave_dialin_pin_failures"] == 6
    assert samples['sipwave_textfile_source_ok{source="dialin"}'] == 1


def test_an_account_locked_through_several_of_its_numbers_counts_once(tmp_path):
    numbers = {"+48601000001": "acme", "+48601000002": "acme", "+48601000003": "beta"}
    settings = dialin_settings(tmp_path, {
        "+48601000001": [10, 20],
        "+48601000002": [30, 40],                # acme: four in all, locked
        "+48601000003": [10, 20, 30],            # beta: three, not locked
    }, numbers)  # fmt: skip
    samples, _ = collect(tmp_path, "--dialin-settings", str(settings))
    assert samples["sipwave_dialin_locked_accounts"] == 1
    assert samples["sipwave_dialin_pin_failures"] == 7


def test_a_pbx_without_a_dialin_database_yet_has_no_lockout(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "database": str(tmp_path / "absent.sqlite"),
                "lockout_failures": 4,
                "lockout_window_s": 3600,
            }
        )
    )
    samples, _ = collect(tmp_path, "--dialin-settings", str(settings))
    assert samples["sipwave_dialin_locked_accounts"] == 0


def test_the_newest_backup_copy_gives_the_time(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    for name, age in (("sipwave-1.sqlite", 7200), ("sipwave-2.sqlite", 60)):
        (backups / name).write_bytes(b"copy")
        os.utime(backups / name, (NOW - age, NOW - age))
    samples, _ = collect(tmp_path, "--backup-directory", str(backups))
    assert samples["sipwave_backup_newest_timestamp_seconds"] == pytest.approx(NOW - 60, abs=1)


def test_a_backup_set_counts_once_its_manifest_is_written(tmp_path):
    backups = tmp_path / "backups"
    (backups / "sipwave-backup-20261204T031500Z").mkdir(parents=True)
    (backups / "sipwave-backup-20261204T031500Z" / "db.sqlite").write_bytes(b"copy")
    samples, _ = collect(tmp_path, "--backup-directory", str(backups))
    assert samples["sipwave_backup_newest_timestamp_seconds"] == 0
    manifest = backups / "sipwave-backup-20261204T031500Z" / "MANIFEST.json"
    manifest.write_text("{}")
    os.utime(manifest, (NOW - 30, NOW - 30))
    samples, _ = collect(tmp_path, "--backup-directory", str(backups))
    assert samples["sipwave_backup_newest_timestamp_seconds"] == pytest.approx(NOW - 30, abs=1)


def test_no_backup_reads_as_zero(tmp_path):
    samples, _ = collect(tmp_path, "--backup-directory", str(tmp_path / "none"))
    assert samples["sipwave_backup_newest_timestamp_seconds"] == 0


def test_certificates_give_their_expiry_and_a_broken_one_is_named(tmp_path):
    not_after = datetime.datetime(2027, 1, 15, 12, 0, tzinfo=datetime.UTC)
    good = certificate(tmp_path, "server.crt", not_after)
    broken = tmp_path / 'odd "name".crt'
    broken.write_text("not a certificate")
    samples, run = collect(tmp_path, "--certificate", str(good), "--certificate", str(broken))
    assert samples[f'sipwave_certificate_expiry_timestamp_seconds{{path="{good}"}}'] == (
        not_after.timestamp()
    )
    assert samples[f'sipwave_textfile_source_ok{{source="certificate {good}"}}'] == 1
    escaped = str(broken).replace('"', '\\"')
    assert samples[f'sipwave_textfile_source_ok{{source="certificate {escaped}"}}'] == 0
    assert f"certificate {broken}" in run.stderr
