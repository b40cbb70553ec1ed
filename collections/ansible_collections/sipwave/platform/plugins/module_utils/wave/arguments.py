# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wave module's arguments (documented in modules/wave.py), the database's come from
kamailio_db.connection.database_argument_spec()."""

WAVE_ARGUMENTS = {
    "operation": {"type": "str", "default": "apply", "choices": ["apply", "rollback", "consent"]},
    "wave": {"type": "raw"},
    "phase": {"type": "int", "default": 1, "choices": [1, 2]},
    "accounts_file": {"type": "path"},
    "limit_to": {"type": "list", "elements": "str"},
    "rejected": {"type": "list", "elements": "dict", "default": []},
    "consent": {"type": "list", "elements": "dict", "default": []},
    "new_domain": {"type": "str", "required": True},
    "login_prefix": {"type": "str", "default": "tnf"},
    "grace_days": {"type": "int", "default": 14},
    "closure_numbers": {
        "type": "str",
        "default": "kept_for_porting",
        "choices": ["kept_for_porting", "released"],
    },
    "temporary_numbers": {"type": "list", "elements": "dict", "default": []},
    "carriers": {"type": "list"},
    "sites": {"type": "list"},
    "temporary_quarantine_days": {"type": "int", "default": 30},
    "force_after_cutover": {"type": "str"},
    "decide_by": {"type": "str"},
    "undecided_policy": {"type": "str", "default": "stay", "choices": ["stay", "close"]},
    "today": {"type": "str"},
    "run_id": {"type": "str"},
}
