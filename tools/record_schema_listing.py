"""Record the expected schema listings (tests/unit/golden/kamailio_schema/*.json) from what
kamailio_db.schema.ensure() creates on a new SQLite file and in a throwaway PostgreSQL
cluster (Unix socket only). Run it after a schema change and check that the diff of the
listings shows the change and nothing else:

    .venv/bin/python tools/record_schema_listing.py && git diff tests/unit/golden
"""

import json
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "collections"), str(ROOT / "tests" / "unit")]

from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db import (  # noqa: E402
    schema,
)
from ansible_collections.sipwave.platform.plugins.module_utils.kamailio_db.connection import (  # noqa: E402
    Database,
)
from pg_cluster import throwaway_cluster  # noqa: E402
from schema_listing import postgres_listing, sqlite_listing  # noqa: E402

GOLDEN = ROOT / "tests" / "unit" / "golden" / "kamailio_schema"
PG_PORT = 5439


def write(backend: str, listing: dict) -> None:
    (GOLDEN / f"{backend}.json").write_text(json.dumps(listing, indent=1) + "\n")
    print(f"recorded {GOLDEN / f'{backend}.json'}")


def record_sqlite() -> None:
    with tempfile.TemporaryDirectory() as directory:
        connection = sqlite3.connect(Path(directory) / "proxy.sqlite")
        try:
            with connection:
                schema.ensure(Database("sqlite", connection, sqlite3.Error), connection.cursor())
            write("sqlite", sqlite_listing(connection))
        finally:
            connection.close()


def record_postgres() -> None:
    import psycopg2

    cluster = throwaway_cluster(PG_PORT)
    socket_dir = next(cluster)
    try:
        connection = psycopg2.connect(host=socket_dir, port=PG_PORT, dbname="postgres",
                                      user="kamailio")  # fmt: skip
        try:
            with connection, connection.cursor() as cursor:
                schema.ensure(Database("postgres", connection, psycopg2.Error), cursor)
            write("postgres", postgres_listing(connection))
        finally:
            connection.close()
    finally:
        cluster.close()


if __name__ == "__main__":
    record_sqlite()
    record_postgres()
