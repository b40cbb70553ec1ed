"""The entry module Kamailio loads: a reload follows the ``current`` release symlink."""

import importlib
import inspect
import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import ROUTER_SETTINGS

ROUTER_SOURCE = Path(__file__).resolve().parents[2] / "roles" / "kamailio" / "files" / "router"


def make_release(root: Path, name: str, domains: list[str]) -> Path:
    release = root / "releases" / name / "router"
    shutil.copytree(ROUTER_SOURCE, release, ignore=shutil.ignore_patterns("__pycache__"))
    (release / "settings.json").write_text(json.dumps({**ROUTER_SETTINGS, "domains": domains}))
    return release.parent


def point_current(root: Path, name: str) -> None:
    link = root / "current"
    link.unlink(missing_ok=True)
    link.symlink_to(Path("releases") / name)


@pytest.fixture
def entry(ksr, tmp_path, monkeypatch):
    make_release(tmp_path, "r1", ["ip.tanifon.pl"])
    make_release(tmp_path, "r2", ["ip.tanifon.pl", "sip.sipwave.test"])
    point_current(tmp_path, "r1")
    # app_python3s puts the directory of the loaded file first on sys.path.
    monkeypatch.syspath_prepend(str(tmp_path / "current" / "router"))
    monkeypatch.delitem(sys.modules, "sipwave_kemi", raising=False)
    module = importlib.import_module("sipwave_kemi")
    yield module, tmp_path
    sys.modules.pop("sipwave_kemi", None)


def test_entry_loads_the_current_release_settings(entry):
    module, _ = entry
    assert module.ROUTER.settings.domains == {"ip.tanifon.pl"}


def test_reload_picks_up_the_release_current_points_at(entry):
    module, root = entry
    point_current(root, "r2")
    reloaded = importlib.reload(module)
    assert reloaded.ROUTER.settings.domains == {"ip.tanifon.pl", "sip.sipwave.test"}
    assert "releases/r2" in str(Path(sys.modules["sipwave_router"].__file__).resolve())


def test_request_route_is_callable_without_arguments(entry):
    module, _ = entry
    assert inspect.signature(module.ksr_request_route).parameters == {}
