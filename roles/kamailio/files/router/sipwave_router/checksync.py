"""Answers to the check-sync NOTIFYs the proxy sends to phones (sipwave.platform.check_sync).

The module starts each NOTIFY through tm over RPC (``tm.t_uac_attrs``, without waiting: the
control socket has one handler process, so a waiting call would send one NOTIFY at a time)
with a Call-ID of its own making. The core reply route sees every reply before tm does; a
final reply to one of those NOTIFYs leaves its status in the ``checksync`` htable under the
Call-ID, where the module reads it. A phone that never answers leaves nothing: the module
reports it as timed out at its deadline.

Only a reply tm matches to a transaction it holds is recorded, so a forged reply cannot fill
the table with keys of its own choosing.
"""

import re

import KSR

# Shared with module_utils/check_sync.py of the collection (a unit test holds them equal).
HTABLE_CHECK_SYNC = "checksync"
CALL_ID_PREFIX = "sipwave-checksync-"
CALL_ID = re.compile(re.escape(CALL_ID_PREFIX) + r"[0-9a-f]{32}")
FINAL_STATUS = re.compile(r"[2-6][0-9][0-9]")
# The source address, Call-ID, CSeq method and status of a reply, read in one call (the
# source is for the router's reply route, which strips claims of replies from non-peers).
REPLY_FACTS = "$_s($si\n|$ci\n|$rm\n|$rs)"
FACT_SEPARATOR = "\n|"


def record_answer() -> str | None:
    """Keep the final status of a reply to a check-sync NOTIFY; ignore every other reply.

    Returns the reply's source address, read with the rest; None when the values cannot be
    read (not UTF-8), and the reply is then treated as coming from nobody trusted.
    """
    try:
        facts = KSR.pv.get(REPLY_FACTS)
    except UnicodeDecodeError:
        return None  # not UTF-8: no Call-ID of ours
    if facts is None:
        return None
    source, call_id, method, status = [*facts.split(FACT_SEPARATOR, 3), "", "", ""][:4]
    if method != "NOTIFY" or not CALL_ID.fullmatch(call_id):
        return source
    if not FINAL_STATUS.fullmatch(status):
        return source  # provisional (or malformed): the final answer is still to come
    if KSR.tm.t_check_trans() != 1:
        return source  # no transaction of this proxy's: forged or stray
    KSR.htable.sht_seti(HTABLE_CHECK_SYNC, call_id, int(status))
    return source
