"""Fixtures for the router unit tests: a KSR stub from the captured API, and a Router."""

import importlib
import sys

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


def own_route(router, call_id: str, host: str = "127.0.20.11") -> str:
    """The Route URI this proxy's Record-Route gives a dialog with ``call_id``."""
    from sipwave_router.dialogs import token

    return f"sip:{host};lr;swt={token(router._dialog_key, call_id)}"


def recorded_route(router, call_id: str) -> tuple[str]:
    """The arguments of the rr.record_route_params call for a request with ``call_id``."""
    return (own_route(router, call_id).split(";lr", 1)[1],)


@pytest.fixture
def router(ksr):
    package = importlib.import_module("sipwave_router")
    from sipwave_router.settings import settings_from_dict

    return package.Router(settings_from_dict(ROUTER_SETTINGS))
