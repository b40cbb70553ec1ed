# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proxy database: connection (both backends) and schema (every table and view, one
description for SQLite and PostgreSQL)."""
