"""Names shared by the router's modules: the routing cache's keys, the usrloc table, the ban
table and how several values are read at once."""

HTABLE_ROUTING = "routing"
IDENTITY_KEY = "i:"
NUMBER_KEY = "n:"
CLOSED_ACCOUNT_KEY = "c:"
CLOSED_NUMBER_KEY = "p:"
CALLER_NUMBER_KEY = "a:"
# The temporary number of the account behind an identity, while its own numbers are still
# at the old operator (t:user@domain -> +digits).
TEMPORARY_NUMBER_KEY = "t:"
# On the legacy platform: a number forwarded to an account's temporary number (f:digits ->
# +digits), during the parallel run.
FORWARDING_KEY = "f:"
# The department of the account behind an identity, for the call records, when the routing
# cache carries it (d:user@domain); calls are recorded without one otherwise.
DEPARTMENT_KEY = "d:"
USRLOC_TABLE = "location"
# What a call to a closed account's number gets, by what the closure did with the number
# (sipwave_closure_numbers): kept for porting it may come back elsewhere, released it is gone.
CLOSED_NUMBER_REPLIES = {
    "kept_for_porting": (480, "Number Kept For Porting"),
    "released": (410, "Number Released"),
}
# Source addresses dropped without answer (htable, kamailio.cfg).
HTABLE_BANNED = "ipban"
# Several values read in one crossing into Kamailio ($_s(...)) are separated by a line feed
# followed by "|", which no value can hold (routing.REQUEST_FACTS says why); pv prints an
# absent value as "<null>".
FACT_SEPARATOR = "\n|"
PV_NULL = "<null>"
