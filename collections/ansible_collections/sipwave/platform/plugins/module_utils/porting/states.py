# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A port request's states and the only transitions between them.

    requested --> validated --> donor_notified --> donor_accepted --> scheduled --> ported
        |             |               |    |              |               |
        |             |               |    +--> donor_rejected(reason)    +--> failed(reason)
        +--> failed   +--> cancelled  +--> cancelled      +--> cancelled  +--> cancelled
                                           donor_rejected(secret_code) --> validated  (a new
                                           secret code, until the request is blocked)
                                           donor_rejected(secret_code) --> failed (blocked)
   donor_rejected(secret_code) --> cancelled

Phase 1 (customer request) ends in ``validated``, phase 2 (preventive communication with the
donor) in ``donor_accepted`` or ``donor_rejected``, phase 3 (technical provisioning) in
``ported`` or ``failed``. While a request is open its numbers are ``porting``; ``ported``
makes them ``active``; a request that ends otherwise gives them back (``legacy``).
"""

from __future__ import annotations

REQUESTED = "requested"
VALIDATED = "validated"
DONOR_NOTIFIED = "donor_notified"
DONOR_ACCEPTED = "donor_accepted"
DONOR_REJECTED = "donor_rejected"
SCHEDULED = "scheduled"
PORTED = "ported"
FAILED = "failed"
CANCELLED = "cancelled"

TRANSITIONS: dict[str, frozenset[str]] = {
    REQUESTED: frozenset({VALIDATED, FAILED, CANCELLED}),
    VALIDATED: frozenset({DONOR_NOTIFIED, CANCELLED}),
    DONOR_NOTIFIED: frozenset({DONOR_ACCEPTED, DONOR_REJECTED, CANCELLED}),
    DONOR_REJECTED: frozenset({VALIDATED, FAILED, CANCELLED}),
    DONOR_ACCEPTED: frozenset({SCHEDULED, CANCELLED}),
    SCHEDULED: frozenset({PORTED, FAILED, CANCELLED}),
    PORTED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}
STATES = tuple(TRANSITIONS)
# A donor's reason for a wrong secret code: the one rejection a request survives (the
# customer gives the code again), WRONG_SECRET_LIMIT times; the next one blocks the request.
SECRET_REASON = "secret_code"
WRONG_SECRET_LIMIT = 3
BLOCKED_REASON = "blocked: too many wrong secret codes"
# Reasons a donor may give (exchange answer records); free text is not accepted.
DONOR_REASONS = (
    SECRET_REASON,
    "unknown_code",
    "blocked",
    "numbers",
    "not_closed",
    "already_ported",
)


class TransitionError(ValueError):
    """A transition the state machine does not have; the message names the request."""


def is_open(state: str, reason: str) -> bool:
    """Whether the request holds its numbers (``porting``): from phase 1's end on, until it
    ends."""
    if state == REQUESTED:
        return False
    if state == DONOR_REJECTED:
        return reason == SECRET_REASON
    return bool(TRANSITIONS[state])


def check(ref: str, before: str, after: str, reason: str = "") -> None:
    if after not in TRANSITIONS.get(before, ()):
        raise TransitionError(f"port request {ref}: {before} cannot become {after}")
    if before == DONOR_REJECTED and reason != SECRET_REASON:
        raise TransitionError(
            f"port request {ref}: rejected by the donor ({reason or 'no reason'}), it has ended"
        )
