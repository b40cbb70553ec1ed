"""The router import check the kamailio role runs before a release goes live."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROUTER_SETTINGS

ROLE_FILES = Path(__file__).resolve().parents[2] / "roles" / "kamailio" / "files"
CHECKER = ROLE_FILES / "check_kemi_router.py"


@pytest.fixture
def router(tmp_path) -> Path:
    """A staged router as the role stages it: the package, the entry file, settings.json."""
    staged = tmp_path / "staging" / "router"
    shutil.copytree(ROLE_FILES / "router", staged, ignore=shutil.ignore_patterns("__pycache__"))
    (staged / "settings.json").write_text(json.dumps(ROUTER_SETTINGS))
    return staged


def run_check(router: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-B", str(CHECKER), str(router / "sipwave_kemi.py")],
        capture_output=True,
        text=True,
        check=False,
    )


def append(path: Path, text: str) -> int:
    """Append ``text`` as the last line of ``path``; return that line's number."""
    source = path.read_text()
    path.write_text(source + text + "\n")
    return source.count("\n") + 1


def verdict(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_the_real_router_with_real_settings_passes(router):
    result = run_check(router)
    assert result.returncode == 0, result.stderr
    assert "ksr_request_route" in result.stdout


def test_no_byte_code_is_written_into_the_staged_router(router):
    run_check(router)
    assert sorted(router.rglob("__pycache__")) == []


def test_ksr_functions_bound_at_import_time_are_accepted(router):
    append(router / "sipwave_router" / "routing.py", "_pv_get = KSR.pv.get\n_info = KSR.info")
    result = run_check(router)
    assert result.returncode == 0, result.stderr


def test_an_import_error_names_file_line_and_reason(router):
    routing = router / "sipwave_router" / "routing.py"
    line = append(routing, "import nonexistent_module_x")
    result = run_check(router)
    assert result.returncode == 1
    assert verdict(result) == (
        f"KEMI router check failed: {routing} line {line}: importing sipwave_kemi.py failed: "
        "ModuleNotFoundError: No module named 'nonexistent_module_x'"
    )


def test_a_name_error_at_module_level_names_file_line_and_reason(router):
    routing = router / "sipwave_router" / "routing.py"
    line = append(routing, "DEFAULT_ROUTE = undefined_constant")
    result = run_check(router)
    assert result.returncode == 1
    assert f"{routing} line {line}: " in verdict(result)
    assert verdict(result).endswith("NameError: name 'undefined_constant' is not defined")


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({key: v for key, v in ROUTER_SETTINGS.items() if key != "domains"}, "KeyError: 'domains'"),
        ({**ROUTER_SETTINGS, "prefix_routes": [{"prefix": "800"}]}, "KeyError: 'destination'"),
        ({**ROUTER_SETTINGS, "max_forwards": "ten"}, "ValueError: invalid literal for int()"),
    ],
    ids=["no-domains", "route-without-destination", "max-forwards-not-a-number"],
)
def test_settings_the_router_rejects_name_file_line_and_reason(router, settings, reason):
    (router / "settings.json").write_text(json.dumps(settings))
    result = run_check(router)
    assert result.returncode == 1
    assert f"{router / 'sipwave_router' / 'settings.py'} line " in verdict(result)
    assert reason in verdict(result)


def test_unreadable_settings_json_names_the_router_line_that_read_it(router):
    (router / "settings.json").write_text("{")
    result = run_check(router)
    assert result.returncode == 1
    assert f"(from {router / 'sipwave_router' / 'settings.py'} line " in verdict(result)
    assert "JSONDecodeError" in verdict(result)


def test_a_request_route_that_needs_an_argument_fails(router):
    entry = router / "sipwave_kemi.py"
    line = append(entry, "def ksr_request_route(msg):\n    return 1")
    result = run_check(router)
    assert result.returncode == 1
    assert f"{entry} line {line}: ksr_request_route cannot be called without arguments" in (
        verdict(result)
    )


def test_a_script_without_request_route_fails(router):
    entry = router / "sipwave_kemi.py"
    append(entry, "del ksr_request_route")
    result = run_check(router)
    assert result.returncode == 1
    assert verdict(result) == f"KEMI router check failed: {entry}: defines no ksr_request_route"


def test_a_missing_script_fails(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 1
    assert "no such file" in verdict(result)
