# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of every module that opens the proxy database (kamailio_db.connection)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  backend:
    description: Database engine holding Kamailio's tables.
    type: str
    choices: [sqlite, postgres]
    default: sqlite
  database:
    description: Path of the SQLite database file. Required when O(backend=sqlite).
    type: path
  db_host:
    description: PostgreSQL host name or socket directory.
    type: str
  db_port:
    description: PostgreSQL port.
    type: int
    default: 5432
  db_name:
    description: PostgreSQL database name. Required when O(backend=postgres).
    type: str
  db_user:
    description: PostgreSQL user.
    type: str
  db_password:
    description: PostgreSQL password (never logged).
    type: str
"""
