#!/usr/bin/python3
"""Dial-in authorisation, run by Asterisk as an AGI script for every dial-in call.

Why an AGI script and not dialplan + func_odbc: PINs are checked against salted scrypt
hashes, the lockout counts failures in a sliding window, and dialled destinations are
normalised by the shared E.164 module; all three are code, not SQL. The script reads the
authorisation database on every call, so a changed list applies to the next call without a
reload, and calls already in progress are never touched.

``lookup`` (before the call is answered) finds the account of the caller number the proxy
established (channel variable SIPWAVE_CALLER) and refuses unknown callers and accounts locked
out (wrong PINs are counted per account, over all its dial-in numbers).
``authorise`` (after answer) asks for the PIN when the account has one, then for the
destination, and refuses blocked prefixes. A caller number can be forged from the PSTN, so
an account without a PIN may call only its allowed prefixes (the site default: national
numbers) and only its minutes per day; the call is cut when they are used up. Results go
back in channel variables (SIPWAVE_RESULT ok/refused, SIPWAVE_REASON, SIPWAVE_ACCOUNT...).
The PIN is read with GET DATA and compared here: it never enters a channel variable, the
dialplan, a CDR or a log line.
"""

import json
import sqlite3
import sys
import time
from pathlib import Path

from control_chars import printable
from dialin_db import SQLITE_BUSY_TIMEOUT_MS, pin_matches, split_prefixes
from e164 import normalise_or_none, plan_from_dict

SETTINGS_FILE = Path(__file__).with_name("settings.json")


def quoted(value: object) -> str:
    """One AGI argument in double quotes. A line break would end the command and start
    another, so control characters become spaces; quotes and backslashes are escaped, as
    Asterisk's AGI argument parser reads them."""
    text = printable(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class Agi:
    """The AGI protocol on stdin/stdout: environment first, then one command per line."""

    def __init__(self) -> None:
        self.env = {}
        for line in iter(sys.stdin.readline, ""):
            line = line.strip()
            if not line:
                break
            key, _, value = line.partition(":")
            self.env[key.strip()] = value.strip()

    def command(self, text: str) -> str:
        # Arguments from the database are quoted(); this keeps any other line one command.
        sys.stdout.write(printable(text) + "\n")
        sys.stdout.flush()
        reply = sys.stdin.readline().strip()
        if not reply.startswith("200"):
            raise ConnectionError(f"AGI command failed: {reply or 'channel gone'}")
        return reply

    @staticmethod
    def _result(reply: str) -> str:
        return reply.split("result=", 1)[1].split(" ", 1)[0] if "result=" in reply else ""

    def get(self, name: str) -> str:
        reply = self.command(f"GET VARIABLE {name}")
        return reply.split("(", 1)[1].rsplit(")", 1)[0] if "(" in reply else ""

    def set(self, name: str, value: object) -> None:
        self.command(f"SET VARIABLE {name} {quoted(value)}")

    def digits(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        """Digits pressed (ended by #, max_digits or the timeout); empty on timeout."""
        result = self._result(self.command(f"GET DATA {prompt} {timeout_ms} {max_digits}"))
        return result if result.isdigit() else ""

    def play(self, prompt: str) -> None:
        self.command(f'STREAM FILE {prompt} ""')

    def log(self, message: str) -> None:
        self.command(f"VERBOSE {quoted('sipwave dial-in: ' + message)} 1")


class Dialin:
    def __init__(self, agi: Agi, settings: dict) -> None:
        self.agi = agi
        self.settings = settings
        self.plan = plan_from_dict(settings["number_plan"])
        self.db = sqlite3.connect(settings["database"], timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)

    def refuse(self, caller: str, reason: str) -> None:
        self.agi.set("SIPWAVE_RESULT", "refused")
        self.agi.set("SIPWAVE_REASON", reason)
        self.agi.log(f"caller {caller or '?'} refused: {reason}")

    def failures(self, account: str) -> int:
        """Wrong PINs within the window from any of the account's dial-in numbers: a caller
        number can be forged, so spreading guesses over an account's numbers (or calls in
        parallel) buys no more of them."""
        since = time.time() - self.settings["lockout_window_s"]
        (count,) = self.db.execute(
            "SELECT count(*) FROM failure f JOIN dialin_number d ON d.number = f.caller"
            " WHERE d.account_id = ? AND f.at > ?",
            (account, since),
        ).fetchone()
        return count

    def record_failure(self, caller: str, account: str) -> int:
        with self.db:
            self.db.execute("INSERT INTO failure (caller, at) VALUES (?, ?)", (caller, time.time()))
            # Old rows are never counted again: keep the table small.
            self.db.execute(
                "DELETE FROM failure WHERE at < ?",
                (time.time() - 2 * self.settings["lockout_window_s"],),
            )
        return self.failures(account)

    def locked(self, account: str) -> bool:
        return self.failures(account) >= self.settings["lockout_failures"]

    def account_of(self, caller: str):
        """(id, department, number, max_calls, pin_hash, allowed_prefixes, daily_minutes)."""
        try:
            return self.db.execute(
                "SELECT a.id, a.department, a.number, a.max_calls, a.pin_hash,"
                " a.allowed_prefixes, a.daily_minutes"
                " FROM dialin_number d JOIN account a ON a.id = d.account_id WHERE d.number = ?",
                (caller,),
            ).fetchone()
        except sqlite3.OperationalError:
            # The role releases this script before it upgrades the database: until then
            # every account has the site's defaults.
            row = self.db.execute(
                "SELECT a.id, a.department, a.number, a.max_calls, a.pin_hash"
                " FROM dialin_number d JOIN account a ON a.id = d.account_id WHERE d.number = ?",
                (caller,),
            ).fetchone()
            return None if row is None else (*row, None, None)

    def minutes_used_today(self, account: str) -> float:
        """Minutes the account talked to the carrier since local midnight, from the CDRs.

        The carrier leg's talk time (talk_ms, written by the dialplan's hangup handler),
        not the CDR's billsec: that counts from the answer before the PIN prompt, so the
        PIN phase and refused calls (wrong PIN, blocked destination) would use up minutes.
        A row without end_epoch was written before the hangup handler existed; its billsec
        is the only measure it has and counts whole (more, never less, than was talked).
        """
        try:
            with sqlite3.connect(
                f"file:{self.settings['cdr_database']}?mode=ro", uri=True, timeout=5
            ) as cdr:
                (seconds,) = cdr.execute(
                    "SELECT COALESCE(SUM(CASE WHEN COALESCE(end_epoch, '') = ''"
                    " THEN CAST(billsec AS INTEGER)"
                    " ELSE COALESCE(CAST(NULLIF(talk_ms, '') AS INTEGER), 0) / 1000.0 END), 0)"
                    " FROM cdr WHERE account = ? AND calldate >= date('now', 'localtime')",
                    (account,),
                ).fetchone()
        except sqlite3.OperationalError:
            return 0.0  # no CDR written yet
        return seconds / 60

    def lookup(self) -> None:
        caller = self.agi.get("SIPWAVE_CALLER")
        if not caller:
            return self.refuse(caller, "no caller number")
        row = self.account_of(caller)
        if row is None:
            return self.refuse(caller, "not authorised")
        account, department, number, max_calls = row[:4]
        if self.locked(account):
            return self.refuse(caller, "locked out")
        for name, value in (
            ("SIPWAVE_ACCOUNT", account),
            ("SIPWAVE_DEPARTMENT", department),
            ("SIPWAVE_NUMBER", number),
            ("SIPWAVE_MAX_CALLS", max_calls),
            ("SIPWAVE_RESULT", "ok"),
        ):
            self.agi.set(name, value)
        self.agi.log(f"caller {caller} is account {account}")
        return None

    def authorise(self) -> None:
        caller = self.agi.get("SIPWAVE_CALLER")
        # Read again: the list may have changed while the caller was waiting.
        row = self.account_of(caller) if caller else None
        if row is None:
            return self.refuse(caller, "not authorised")
        account, pin_hash, allowed, daily_minutes = row[0], row[4], row[5], row[6]
        # Again: another call from one of the account's numbers may have used up its tries
        # while this caller listened to the prompt.
        if self.locked(account):
            return self.refuse(caller, "locked out")
        if pin_hash is not None and not self.pin_accepted(caller, account, pin_hash):
            return None
        destination = self.destination(caller, split_prefixes(allowed), pin_hash is None)
        if destination is None:
            return None
        if daily_minutes is None and pin_hash is None:
            daily_minutes = self.settings["pinless_daily_minutes"]
        options = ""
        if daily_minutes is not None:
            left_s = int(daily_minutes * 60 - self.minutes_used_today(account) * 60)
            if left_s < 1:
                self.agi.play(self.settings["prompt_blocked"])
                return self.refuse(caller, f"daily minutes ({daily_minutes}) used up")
            options = f"L({left_s * 1000})"
        self.agi.set("SIPWAVE_DIAL_OPTIONS", options)
        self.agi.set("SIPWAVE_DESTINATION", destination)
        self.agi.set("SIPWAVE_RESULT", "ok")
        self.agi.log(f"caller {caller} (account {row[0]}) calls {destination}")
        return None

    def pin_accepted(self, caller: str, account: str, pin_hash: str) -> bool:
        tries = self.settings["pin_tries"]
        for attempt in range(1, tries + 1):
            entered = self.agi.digits(
                self.settings["prompt_pin"], self.settings["digit_timeout_ms"], 12
            )
            # Calls in parallel (up to max_calls) guess at the same time: one may have locked
            # the account while this caller typed, and then even the right PIN is refused.
            if self.locked(account):
                self.refuse(caller, "locked out")
                return False
            if entered and pin_matches(entered, pin_hash):
                return True
            if self.record_failure(caller, account) >= self.settings["lockout_failures"]:
                self.refuse(caller, "wrong PIN, now locked out")
                return False
            if attempt < tries:
                self.agi.play(self.settings["prompt_wrong_pin"])
        self.refuse(caller, f"wrong PIN {self.settings['pin_tries']} times")
        return False

    def destination(
        self, caller: str, allowed: tuple[str, ...] | None, pinless: bool
    ) -> str | None:
        dialled = self.agi.digits(
            self.settings["prompt_destination"], self.settings["digit_timeout_ms"], 16
        )
        destination = normalise_or_none(dialled, self.plan)
        if destination is None:
            # The dialled digits are not logged: a caller may have typed the PIN here.
            self.refuse(caller, "the destination is not a number")
            return None
        blocked = longest_prefix(destination, self.settings["blocked_prefixes"])
        exception = longest_prefix(destination, allowed or ())
        if blocked and len(exception) < len(blocked):
            self.agi.play(self.settings["prompt_blocked"])
            self.refuse(caller, f"destination {destination} has a blocked prefix")
            return None
        if pinless and not longest_prefix(
            destination, self.settings["pinless_allowed_prefixes"] if allowed is None else allowed
        ):
            self.agi.play(self.settings["prompt_blocked"])
            self.refuse(caller, f"destination {destination} is not allowed without a PIN")
            return None
        return destination


def longest_prefix(number: str, prefixes) -> str:
    """The longest of ``prefixes`` that ``number`` starts with; empty when none does."""
    return max((p for p in prefixes if number.startswith(p)), key=len, default="")


def main() -> int:
    agi = Agi()
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    settings = json.loads(SETTINGS_FILE.read_text())
    dialin = Dialin(agi, settings)
    agi.set("SIPWAVE_RESULT", "refused")
    try:
        if mode == "lookup":
            dialin.lookup()
        elif mode == "authorise":
            dialin.authorise()
        else:
            dialin.refuse("", f"unknown mode {mode!r}")
    except ConnectionError:
        return 0  # the caller hung up
    return 0


if __name__ == "__main__":
    sys.exit(main())
