"""What a proxy database holds, as plain data to compare: the tables, columns, types,
defaults, constraints, indexes, views and rows of the schema (not the data of the tables).

The expected listings under golden/kamailio_schema/ were recorded once from the role's SQL
files (roles/kamailio/files/schema/*.sql, removed when kamailio_db/schema.py replaced them)
and checked to be the same as what schema.ensure() creates, on SQLite and PostgreSQL.
"""

import re

# Rows ensure() writes itself (every other table stays empty).
_SCHEMA_ROWS = {
    "version": "SELECT table_name, table_version FROM version ORDER BY table_name",
    "sipwave_routing_generation": "SELECT id, generation FROM sipwave_routing_generation",
}


def _statement(sql):
    """SQL text without comments and with whitespace collapsed."""
    sql = re.sub(r"--[^\n]*", "", sql)
    return " ".join(sql.split())


def _rows(cursor, query, params=()):
    cursor.execute(query, params)
    return [list(row) for row in cursor.fetchall()]


def sqlite_listing(connection) -> dict:
    cursor = connection.cursor()
    objects = _rows(
        cursor,
        "SELECT type, name, tbl_name FROM sqlite_master ORDER BY type, name",
    )
    listing = {"objects": objects, "tables": {}, "indexes": {}, "views": {}}
    for kind, name, _table in objects:
        if kind == "table":
            listing["tables"][name] = _rows(cursor, f"PRAGMA table_info({name})")
        elif kind == "index":
            (unique,) = [row[2] for row in _rows(cursor, f"PRAGMA index_list({_table})")
                         if row[1] == name]  # fmt: skip
            columns = [row[2] for row in _rows(cursor, f"PRAGMA index_info({name})")]
            listing["indexes"][name] = {"table": _table, "unique": unique, "columns": columns}
        elif kind == "view":
            (sql,) = cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (name,)
            ).fetchone()
            listing["views"][name] = {
                "columns": _rows(cursor, f"PRAGMA table_info({name})"),
                "sql": _statement(sql),
            }
    listing["rows"] = {table: _rows(cursor, query) for table, query in _SCHEMA_ROWS.items()}
    return listing


def postgres_listing(connection) -> dict:
    cursor = connection.cursor()
    return {
        "relations": _rows(
            cursor,
            """
            SELECT c.relname, c.relkind::text, pg_get_userbyid(c.relowner) = current_user,
                   c.relacl::text
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' ORDER BY c.relname""",
        ),
        "columns": _rows(
            cursor,
            """
            SELECT table_name, ordinal_position, column_name, data_type,
                   character_maximum_length, numeric_precision, is_nullable, column_default
            FROM information_schema.columns WHERE table_schema = 'public'
            ORDER BY table_name, ordinal_position""",
        ),
        "constraints": _rows(
            cursor,
            """
            SELECT c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid)
            FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' ORDER BY c.relname, k.conname""",
        ),
        "indexes": _rows(
            cursor,
            """
            SELECT tablename, indexname, indexdef FROM pg_indexes
            WHERE schemaname = 'public' ORDER BY tablename, indexname""",
        ),
        "sequences": _rows(
            cursor,
            """
            SELECT sequence_name, data_type, start_value, increment
            FROM information_schema.sequences WHERE sequence_schema = 'public'
            ORDER BY sequence_name""",
        ),
        "views": _rows(
            cursor,
            """
            SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'v' ORDER BY c.relname""",
        ),
        "rows": {table: _rows(cursor, query) for table, query in _SCHEMA_ROWS.items()},
    }
