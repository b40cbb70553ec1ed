"""Entry point loaded by Kamailio's app_python3s module (``modparam("app_python3s", "load")``).

app_python3s imports this file as a module and calls its module-level ``ksr_*`` functions.
On ``kamcmd app_python3s.reload`` it re-executes this module only, so the router package is
dropped from ``sys.modules`` and imported again here: a reload then picks up whatever release
the ``current`` symlink points at, without restarting Kamailio.
"""

import importlib
import sys
from pathlib import Path

PACKAGE = "sipwave_router"
# Not resolved on purpose: the path goes through the release's ``current`` symlink.
SETTINGS_FILE = Path(__file__).parent / "settings.json"


def _import_fresh_router_package():
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    return importlib.import_module(PACKAGE)


_package = _import_fresh_router_package()
ROUTER = _package.Router(_package.load_settings(SETTINGS_FILE))


# Called by app_python3s without arguments for every request: the bound method itself, so
# that no wrapper frame sits between Kamailio and the router.
ksr_request_route = ROUTER.request_route
# tm failure route of requests relayed to the legacy platform (routing.LEGACY_FAILURE_ROUTE).
ksr_failure_legacy = ROUTER.failure_route_legacy
# Record-routed requests (routing.DIALOG_BRANCH_ROUTE): each branch's dialog token.
ksr_branch_dialog = ROUTER.branch_route_dialog
# Carriers (telephony.CARRIER_BRANCH_ROUTE, CARRIER_FAILURE_ROUTE): caller ID per carrier,
# failover to the next carrier.
ksr_branch_carrier = ROUTER.branch_route_carrier
ksr_failure_carrier = ROUTER.failure_route_carrier
# tm reply route of a subscriber's BYE (telephony.CALL_END_REPLY_ROUTE): the end of a call.
ksr_reply_call_end = ROUTER.reply_route_call_end
# xhttp's event_callback (only loaded with kamailio_metrics_enabled): every HTTP request.
ksr_xhttp_event = ROUTER.xhttp_event

# Core reply route: every reply, before tm; records the answers to check-sync NOTIFYs.
ksr_reply_route = ROUTER.reply_route
