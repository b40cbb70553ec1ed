"""The KSR stub only knows what the captured Kamailio API exports."""

import pytest
from ksr_stub import KsrStub, load_api


def test_captured_api_has_the_functions_the_router_uses():
    names = {f"{e['module']}.{e['name']}" for e in load_api()}
    assert {"auth_db.auth_check", "registrar.save", "tm.t_relay", "htable.sht_inc"} <= names


def test_unknown_function_does_not_exist_on_the_stub():
    stub = KsrStub(load_api())
    with pytest.raises(AttributeError):
        stub.tm.t_relay_to_nowhere()


def test_wrong_argument_count_fails():
    stub = KsrStub(load_api())
    with pytest.raises(TypeError, match="takes 3 arguments"):
        stub.auth_db.auth_check("ip.tanifon.pl")
