"""Calls to and from the public network: carriers, caller ID and call records.

Outbound: an authenticated subscriber's INVITE to an E.164 number that no account here
serves goes to the carriers of the number's longest prefix (a dispatcher set, in priority
order); a 408, 5xx or timeout tries the next one. Where the caller's site (by the area of the
account's number) has carriers of its own for that prefix, the call uses those instead of the
carriers of every site. Which number the call presents is decided per carrier, in the branch
route: the account's number (or another of its own numbers that the phone asked for in
P-Preferred-Identity), or a number of the account's CLIP allow-list on carriers that allow
presenting numbers they do not hold. While the account's own numbers are still at the old
operator (it has a temporary number), they are presented only on those carriers, like the
allow-list, and every other carrier gets the temporary number.

Inbound: only a carrier's address may call a number; the call reaches every registered
contact of the number's account at once, 480 when none is registered, 404 for a number not
served here (nothing else is said about it).

Call records: Kamailio's acc writes one row per INVITE transaction (flags below) with the
AVPs set here as extra columns (kamailio.cfg, acc db_extra), among them the site of the
call's account: the caller's for a call to a carrier, the called account's for an inbound
call.
"""

import re
import time

import KSR

from sipwave_router.e164 import normalise_or_none
from sipwave_router.keys import (
    CALLER_NUMBER_KEY,
    CLOSED_NUMBER_KEY,
    CLOSED_NUMBER_REPLIES,
    DEPARTMENT_KEY,
    HTABLE_ROUTING,
    NUMBER_KEY,
    TEMPORARY_NUMBER_KEY,
    USRLOC_TABLE,
)
from sipwave_router.settings import Carrier, uri_host

_sl_send_reply = KSR.sl.sl_send_reply

# acc flags (kamailio.cfg): every call, and failed ones too.
FLAG_ACC = 1
FLAG_ACC_FAILED = 2
ACC_AVPS = {
    "account": "$avp(sipwave_acc_account)",
    "department": "$avp(sipwave_acc_department)",
    "carrier": "$avp(sipwave_acc_carrier)",
    "caller": "$avp(sipwave_acc_caller)",
    "callee": "$avp(sipwave_acc_callee)",
    "direction": "$avp(sipwave_acc_direction)",
    "start": "$avp(sipwave_acc_start)",
    "site": "$avp(sipwave_acc_site)",
}
ACC_TABLE = "acc"
CALL_END_TABLE = "sipwave_call_end"
CALL_END_COMMENT = "200 Call Ended"
CALL_END_REPLY_ROUTE = "ksr_reply_call_end"
# What the branch route needs to present the caller on each carrier's branch.
OWN_NUMBER_AVP = "$avp(sipwave_clip_own)"
FOREIGN_NUMBER_AVP = "$avp(sipwave_clip_foreign)"
CALLED_NUMBER_AVP = "$avp(sipwave_called)"
CARRIER_BRANCH_ROUTE = "ksr_branch_carrier"
CARRIER_FAILURE_ROUTE = "ksr_failure_carrier"
# A carrier that answered none of these (or did not answer) is failed over.
FAILOVER_CODES = frozenset({408}) | frozenset(range(500, 600))
ANONYMOUS_FROM = ("Anonymous", "sip:anonymous@anonymous.invalid")
# The user part of the first URI in a header value (sip:, sips: or tel:).
URI_USER = re.compile(r"(?:sips?|tel):([^@;>\s]+)", re.IGNORECASE)
DIRECTION_OUT = "outbound"
DIRECTION_IN = "inbound"
DIRECTION_INTERNAL = "internal"


class TelephonyRoutes:
    """Mixed into Router: uses its settings, relay() and identity helpers."""

    # -- call records ---------------------------------------------------------------------

    def start_call_record(self, account: str | None) -> None:
        """Flag an INVITE for acc and note when it arrived and whose call it is."""
        KSR.setflag(FLAG_ACC)
        KSR.setflag(FLAG_ACC_FAILED)
        KSR.pv.sets(ACC_AVPS["start"], time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
        if account:
            KSR.pv.sets(ACC_AVPS["account"], account)
            self.note_department(account)

    def note_called_account(self, account: str, number: str, caller: str | None) -> None:
        """A call to the number of an account served here. From one of its subscribers it
        stays the caller's record (internal); from a peer (the legacy platform forwarding an
        old number, a PBX) nobody here placed it: it is the called account's, inbound."""
        KSR.pv.sets(ACC_AVPS["callee"], number)
        if caller is not None:
            KSR.pv.sets(ACC_AVPS["direction"], DIRECTION_INTERNAL)
            return
        KSR.pv.sets(ACC_AVPS["account"], account)
        KSR.pv.sets(ACC_AVPS["direction"], DIRECTION_IN)
        KSR.pv.sets(ACC_AVPS["caller"], KSR.pv.get("$fU") or "")
        self.note_department(account)
        self.note_called_site(account)

    @staticmethod
    def note_department(account: str) -> None:
        """The account's department, when the routing cache knows it (``d:user@domain``)."""
        department = KSR.htable.sht_get(HTABLE_ROUTING, DEPARTMENT_KEY + account)
        if department:
            KSR.pv.sets(ACC_AVPS["department"], department)

    def note_called_site(self, account: str) -> None:
        """The called account's site, by the rule its own calls choose carriers by."""
        if not self.settings.site_areas:
            return
        first_own = self.first_own_number(account)
        temporary = None
        if first_own is None:
            temporary = KSR.htable.sht_get(HTABLE_ROUTING, TEMPORARY_NUMBER_KEY + account)
        self.note_site(self.settings.site_of_account(first_own, temporary))

    @staticmethod
    def note_site(site: str) -> None:
        if site:
            KSR.pv.sets(ACC_AVPS["site"], site)

    def record_call_end(self, source: str, method: str) -> None:
        """The BYE of a call ends it: a row in sipwave_call_end (Call-ID, From and To tags,
        time), with the carrier that confirmed the end in its carrier column.

        Whoever knows a call's Call-ID and tags (its caller) can write a BYE, send it anywhere
        and have a phone of their own answer it. An end counts for what a call costs only
        when the carrier agrees the call is over: a BYE that a peer sent (a configured
        address), or a 2xx that a carrier sent to a subscriber's BYE (the reply route below).
        A subscriber's BYE answered by anyone else is still recorded, without a carrier.

        acc reads the comment as "code reason"; without a code it writes sip_code NULL, which
        the table refuses (NOT NULL, as Kamailio's acc schema)."""
        if method != "BYE":
            return
        if source in self.settings.trusted_peers:
            self.note_ending_carrier(source)
            KSR.acc.acc_db_request(CALL_END_COMMENT, CALL_END_TABLE)
            return
        KSR.tm.t_on_reply(CALL_END_REPLY_ROUTE)

    def reply_route_call_end(self) -> int:
        """tm reply route of a subscriber's BYE: its final 2xx records the end."""
        status = str(KSR.pv.get("$rs") or "")
        code = int(status) if status.isdigit() else 0
        if 200 <= code < 300:
            self.note_ending_carrier(KSR.pv.get("$si") or "")
            KSR.acc.acc_db_request(f"{code} Call Ended", CALL_END_TABLE)
        return 1

    def note_ending_carrier(self, address: str) -> None:
        carrier = self.settings.carriers.get(address)
        if carrier is not None:
            KSR.pv.sets(ACC_AVPS["carrier"], carrier.name)

    @staticmethod
    def reply_call(code: int, reason: str) -> None:
        """Refuse a call here; an INVITE (flagged for acc) leaves its one row in acc too.

        acc records a transaction's replies, not one that tm generates itself: the row is
        written here (acc reads "code reason" from the comment) and the answer is stateless.
        """
        if KSR.isflagset(FLAG_ACC) > 0:
            KSR.acc.acc_db_request(f"{code} {reason}", ACC_TABLE)
        _sl_send_reply(code, reason)

    # -- outbound -------------------------------------------------------------------------

    def route_to_carrier(self, number: str, identity: str | None) -> bool:
        """Send an authenticated subscriber's call to ``number`` (E.164) to its carriers;
        ``identity`` is the subscriber whose credentials the INVITE carried.

        False when no carrier serves the number or the request is not a subscriber's call
        (a carrier or a PBX never reaches a carrier through the proxy).
        """
        if identity is None or not self.settings.carrier_sets:
            return False
        first_own = self.first_own_number(identity)
        temporary = KSR.htable.sht_get(HTABLE_ROUTING, TEMPORARY_NUMBER_KEY + identity)
        site = self.settings.site_of_account(first_own, temporary)
        setid = self.settings.carrier_set_for(number, site)
        if setid is None:
            return False
        self.note_site(site)
        # Only a number the account holds is ever presented, never one made of its login
        # (a login such as 481234001 would read as someone else's +48481234001).
        own = normalise_or_none(first_own, self.settings.number_plan) if first_own else None
        requested = self.requested_number()
        if requested is not None and self.is_own_number(requested, identity):
            own = requested
        foreign = requested if requested in self.clip_allow_list(identity) else None
        if temporary:
            # The carriers do not hold the account's own numbers yet: its temporary number,
            # unless the carrier presents numbers it does not hold (CLIP no screening).
            foreign = foreign or own
            own = temporary
        if own is None:
            # No number of its own in the inventory: refused rather than presenting a number
            # nobody gave it (the From would be anonymous, the P-Asserted-Identity still not).
            self.reply_call(403, "Caller Number Unknown")
            return True
        KSR.pv.sets(OWN_NUMBER_AVP, own)
        if foreign is not None:
            KSR.pv.sets(FOREIGN_NUMBER_AVP, foreign)
        KSR.pv.sets("$rU", number)
        KSR.pv.sets(CALLED_NUMBER_AVP, number)
        KSR.pv.sets(ACC_AVPS["callee"], number)
        KSR.pv.sets(ACC_AVPS["direction"], DIRECTION_OUT)
        if KSR.dispatcher.ds_select_dst(setid, self.settings.carrier_algorithm) < 0:
            self.reply_call(503, "No Carrier Available")
            return True
        self.relay_to_selected_carrier()
        return True

    def relay_to_selected_carrier(self) -> None:
        carrier = self.selected_carrier()
        if carrier is not None:
            KSR.pv.sets(ACC_AVPS["carrier"], carrier.name)
            KSR.pv.sets(ACC_AVPS["caller"], self.presented_number(carrier))
        KSR.tm.t_on_branch(CARRIER_BRANCH_ROUTE)
        KSR.tm.t_on_failure(CARRIER_FAILURE_ROUTE)
        self.relay()

    def selected_carrier(self) -> Carrier | None:
        return self.settings.carriers.get(uri_host(KSR.pv.get("$du") or ""))

    def caller_number(self, identity: str | None) -> str | None:
        """The number an identity presents (one hash lookup): its account's first own number;
        None without one (never its login, which may read as someone else's number)."""
        if identity is None:
            return None
        return self.first_own_number(identity)

    @staticmethod
    def first_own_number(identity: str) -> str | None:
        """The first own number of the identity's account (``a:``), None when it has none."""
        return KSR.htable.sht_get(HTABLE_ROUTING, CALLER_NUMBER_KEY + identity)

    def requested_number(self) -> str | None:
        """The number the phone asked to present (P-Preferred-Identity), in E.164.

        route_strip_claims has removed the header from what is relayed; its value is still
        readable here, and it is only ever a wish checked against the account's numbers.
        """
        value = KSR.pv.get("$hdr(P-Preferred-Identity)")
        match = URI_USER.search(value or "")
        return normalise_or_none(match[1], self.settings.number_plan) if match else None

    def is_own_number(self, number: str, identity: str) -> bool:
        account = KSR.htable.sht_get(HTABLE_ROUTING, NUMBER_KEY + number.lstrip("+"))
        return account == identity

    def clip_allow_list(self, identity: str) -> frozenset[str]:
        user = identity.rsplit("@", 1)[0]
        login = self.phase2_login(user) or user
        return self.settings.clip_allow.get(login) or self.settings.clip_allow.get(
            user, frozenset()
        )

    @staticmethod
    def presented_number(carrier: Carrier) -> str:
        foreign = KSR.pv.get(FOREIGN_NUMBER_AVP)
        if foreign and carrier.allows_foreign_clip:
            return foreign
        return KSR.pv.get(OWN_NUMBER_AVP) or ""

    def branch_route_carrier(self) -> int:
        """Per carrier branch: request URI, From and P-Asserted-Identity for this carrier.

        ``Privacy: id`` makes the From anonymous; the P-Asserted-Identity still goes to the
        carrier (which withholds it), never to anyone else. The branch is record-routed
        here (it replaces routing's dialog branch route): its token names this carrier.
        """
        self.record_route_branch()
        carrier = self.selected_carrier()
        if carrier is None:
            return 1
        number = self.presented_number(carrier)
        called = KSR.pv.get(CALLED_NUMBER_AVP) or ""
        KSR.pv.sets("$ru", f"sip:{called}@{carrier.address}:{carrier.port}")
        privacy = (KSR.pv.get("$hdr(Privacy)") or "").lower()
        if "id" in re.split(r"[;,\s]+", privacy):
            KSR.uac.uac_replace_from(*ANONYMOUS_FROM)
        else:
            KSR.uac.uac_replace_from("", f"sip:{number}@{self._from_host}")
        KSR.hdr.append(f"P-Asserted-Identity: <sip:{number}@{self._from_host}>\r\n")
        return 1

    def failure_route_carrier(self) -> int:
        """408/5xx or no answer from a carrier: the next carrier of the set, if any."""
        if KSR.tm.t_is_canceled() > 0:
            return 1
        code = KSR.pv.get("$T_reply_code")
        if not isinstance(code, int):
            code = int(code) if str(code).isdigit() else 0
        if code not in FAILOVER_CODES:
            return 1
        if KSR.tm.t_branch_timeout() > 0 and KSR.tm.t_branch_replied() < 0:
            # Silent: inactive until the OPTIONS probe hears from it again.
            KSR.dispatcher.ds_mark_dst_state("ip")
        if KSR.dispatcher.ds_next_dst() > 0:
            self.relay_to_selected_carrier()
        return 1

    # -- inbound --------------------------------------------------------------------------

    def route_from_carrier(self, source: str, called: str, method: str) -> None:
        """A carrier calls a number: the account's phones, 480 or 404."""
        carrier = self.settings.carriers[source]
        number = normalise_or_none(called, self.settings.number_plan)
        if method == "INVITE":
            KSR.pv.sets(ACC_AVPS["carrier"], carrier.name)
            KSR.pv.sets(ACC_AVPS["direction"], DIRECTION_IN)
            KSR.pv.sets(ACC_AVPS["caller"], KSR.pv.get("$fU") or "")
            KSR.pv.sets(ACC_AVPS["callee"], number or called)
        digits = number.lstrip("+") if number is not None else ""
        account = KSR.htable.sht_get(HTABLE_ROUTING, NUMBER_KEY + digits) if digits else None
        if account is None:
            closed = KSR.htable.sht_get(HTABLE_ROUTING, CLOSED_NUMBER_KEY + digits)
            self.reply_call(*CLOSED_NUMBER_REPLIES.get(closed, (404, "Not Found")))
            return
        if method == "INVITE":
            KSR.pv.sets(ACC_AVPS["account"], account)
            self.note_department(account)
            self.note_called_site(account)
        KSR.pv.sets("$ru", "sip:" + account)
        # Every registered contact, forked in parallel by t_relay().
        if KSR.registrar.lookup(USRLOC_TABLE) < 0:
            self.reply_call(480, "Temporarily Unavailable")
            return
        self.relay()
