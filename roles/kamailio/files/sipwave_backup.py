#!/usr/bin/python3
"""Take one backup set of this proxy (its database and files) with retention: what the
sipwave-backup timer runs. The set is made by the same code as the module
sipwave.platform.backup_set (the collection's module_utils, installed beside this script by
roles/kamailio); the settings come from a root-only JSON file (--settings):

    {"directory": "/var/backups/sipwave", "keep": 7, "host": "proxy1",
     "paths": ["/etc/kamailio/sipwave"],
     "database": {"backend": "sqlite", "database": "/var/lib/kamailio/sipwave.sqlite"}}

For PostgreSQL, "database" holds backend "postgres", db_host, db_port, db_name, db_user and
db_password (given to pg_dump in its environment, never on its command line). Prints the
set's name; exits 1 with the reason (never a secret) when no set could be taken."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys

LIBRARY = "/usr/local/lib/sipwave/python"
SETTINGS = "/etc/sipwave/backup.json"
DATABASE_KEYS = {
    "backend": str, "database": str, "db_host": str, "db_port": int, "db_name": str,
    "db_user": str, "db_password": str,
}  # fmt: skip


class SettingsError(Exception):
    pass


def load_settings(path: str) -> dict:
    """The settings, each value checked; SettingsError names the file and the reason."""
    try:
        with open(path, encoding="utf-8") as handle:
            settings = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: cannot be read as JSON ({exc.__class__.__name__})") from None
    if not isinstance(settings, dict):
        raise SettingsError(f"{path}: not a JSON object")
    checks = {"directory": str, "keep": int, "host": str, "paths": list, "database": dict}
    for key, kind in checks.items():
        if not isinstance(settings.get(key), kind) or isinstance(settings.get(key), bool):
            raise SettingsError(f"{path}: {key} missing or not a {kind.__name__}")
    if not os.path.isabs(settings["directory"]) or settings["keep"] < 1:
        raise SettingsError(f"{path}: directory must be absolute and keep at least 1")
    if not all(isinstance(p, str) and os.path.isabs(p) for p in settings["paths"]):
        raise SettingsError(f"{path}: paths must be absolute paths")
    database = settings["database"]
    for key, value in database.items():
        kind = DATABASE_KEYS.get(key)
        if kind is None or not isinstance(value, kind) or isinstance(value, bool):
            raise SettingsError(
                f"{path}: database.{key} unknown or not a {getattr(kind, '__name__', 'known key')}"
            )
    if database.get("backend") not in ("sqlite", "postgres"):
        raise SettingsError(f"{path}: database.backend must be sqlite or postgres")
    return settings


def copier(database: dict):
    """Writes the database copy into a set's directory, as the module does."""
    from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.backup import (
        copy_sqlite,
        pg_dump_command,
    )

    def copy(target: str) -> None:
        if database["backend"] == "postgres":
            pg_dump = shutil.which("pg_dump")
            if not pg_dump:
                raise OSError("pg_dump not found (Debian: postgresql-client)")
            command, environ = pg_dump_command(pg_dump, database, os.path.join(target, "db.pgdump"))
            done = subprocess.run(command, env={**os.environ, **environ}, capture_output=True,
                                  text=True, timeout=3600, check=False)  # fmt: skip
            if done.returncode != 0:
                raise OSError(f"pg_dump failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        elif database.get("database"):
            copy_sqlite(database["database"], os.path.join(target, "db.sqlite"))

    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Take one backup set of this proxy.")
    parser.add_argument("--settings", default=SETTINGS)
    parser.add_argument("--library", default=LIBRARY, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, args.library)
    from ansible_collections.sipwave.platform.plugins.module_utils import backup_set

    try:
        settings = load_settings(args.settings)
        name, manifest, removed = backup_set.take(
            settings["directory"], copier(settings["database"]), settings["paths"],
            settings["keep"], settings["host"],
        )  # fmt: skip
        backup_set.verify(os.path.join(settings["directory"], name))
    except (SettingsError, OSError, sqlite3.Error, subprocess.SubprocessError,
            backup_set.BackupSetError) as exc:  # fmt: skip
        print(f"sipwave-backup: no backup set taken: {exc}", file=sys.stderr)
        return 1
    print(f"sipwave-backup: took {name} ({len(manifest['files'])} files, verified); "
          f"removed by retention: {', '.join(removed) or 'none'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
