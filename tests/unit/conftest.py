"""Fixtures for the router unit tests: a KSR stub from the captured API, and a Router."""

import importlib
import sys
import time

import pytest
from ksr_stub import KsrStub, load_api

ROUTER_SETTINGS = {
    "domains": ["ip.tanifon.pl", "sip.sipwave.test"],
    "trusted_peers": ["127.0.20.21"],
    "prefix_routes": [
        {"name": "pbx", "prefix": "800", "destination": "sip:127.0.20.21:5080"},
        {"name": "pbx-fax", "prefix": "8009", "destination": "sip:127.0.20.22:5080"},
    ],
    "auth_failure_limit": 3,
    "max_forwards": 10,
    "scanner_user_agents": ["friendly-scanner", "sipvicious", "sipcli"],
}


@pytest.fixture
def ksr(monkeypatch):
    stub = KsrStub(load_api())
    monkeypatch.setitem(sys.modules, "KSR", stub)
    for name in [n for n in sys.modules if n.startswith("sipwave_router")]:
        monkeypatch.delitem(sys.modules, name)
    return stub


# The ends of the dialogs the router tests build by default: the phone that sends the
# in-dialog request (test_router.SUBSCRIBER) and the host of request()'s request URI.
DIALOG_ENDS = ("10.0.0.1", "ip.tanifon.pl")


def own_route(
    router,
    call_id: str,
    ends: tuple[str, str] = DIALOG_ENDS,
    host: str = "127.0.20.11",
    age_s: float = 0,
) -> str:
    """The Route URI this proxy's Record-Route gives a branch of the dialog of ``call_id``
    between ``ends``, issued ``age_s`` seconds ago."""
    from sipwave_router.dialogs import token

    value = token(router._dialog_key, call_id, *ends, time.time() - age_s)
    return f"sip:{host};lr;swt={value}"


def recorded_token(ksr, router, **branch) -> str:
    """Run the dialog branch route for a branch (``branch``: pseudo-variables such as $ru
    and $du) and give the token its Record-Route carries."""
    before = len(ksr.called("rr.record_route_params"))
    ksr.pvars.update(branch)
    router.branch_route_dialog()
    (params,) = ksr.called("rr.record_route_params")[before:]
    (value,) = params
    name, _, token = value.partition("=")
    assert name == ";swt", value
    return token


def joins(router, call_id: str, token: str, first: str, second: str) -> bool:
    """Whether ``token`` lets each of two hosts reach the other in the dialog of ``call_id``
    (and not a third one)."""
    from sipwave_router.dialogs import follows

    def follow(source: str, next_hop: str) -> bool:
        return follows(
            router._dialog_key, call_id, f"sip:127.0.20.11;lr;swt={token}", source, next_hop,
            peers=frozenset(), now=time.time(), lifetime=60,
        )  # fmt: skip

    return (
        follow(first, second)
        and follow(second, first)
        and not follow(first, "192.0.2.1")
        and not follow("192.0.2.1", second)
    )


@pytest.fixture
def router(ksr):
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    return package.Router(settings_from_dict(ROUTER_SETTINGS))
